package handshake

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"io"

	"golang.org/x/crypto/curve25519"

	"tinytor/tor/errfmt"
)

// Sizes of the ntor v3 handshake messages (proposal 332; tor-spec
// "The ntor-v3 handshake").
const (
	// NtorV3Type is the CREATE2/EXTEND2 HTYPE of ntor v3.
	NtorV3Type = 0x0003
	// NtorV3ClientOverhead is the size of the client handshake without its
	// encrypted message: NODEID(32) | KEYID(32) | CLIENT_PK(32) | MAC(32).
	// The CREATE2 HLEN is NtorV3ClientOverhead + len(client message).
	NtorV3ClientOverhead = 4 * 32
	// NtorV3ServerOverhead is the size of the server handshake without its
	// encrypted message: Y(32) | AUTH(32). The server message is whatever
	// follows, up to HLEN.
	NtorV3ServerOverhead = 2 * 32
)

// NtorV3CircuitVerification is the verification string VER that C tor
// and Arti use for circuit extension (C tor's NTOR3_CIRC_VERIFICATION).
const NtorV3CircuitVerification = "circuit extend"

const ntorV3ProtoID = "ntor3-curve25519-sha3_256-1"

// Tweak strings t_* of proposal 332 A.1.
var (
	ntorV3TMsgKDF  = []byte(ntorV3ProtoID + ":kdf_phase1")
	ntorV3TMsgMAC  = []byte(ntorV3ProtoID + ":msg_mac")
	ntorV3TKeySeed = []byte(ntorV3ProtoID + ":key_seed")
	ntorV3TVerify  = []byte(ntorV3ProtoID + ":verify")
	ntorV3TFinal   = []byte(ntorV3ProtoID + ":kdf_final")
	ntorV3TAuth    = []byte(ntorV3ProtoID + ":auth_final")
)

// ErrNtorV3Auth is wrapped by the error Finish returns when the relay's
// AUTH does not match: a wrong onion key or identity, a different
// verification string, or a reply that was tampered with.
var ErrNtorV3Auth = errors.New("ntor v3: server AUTH does not match")

// NtorV3Client is the client state of an ntor v3 handshake. It is used
// once: Finish may be called a single time.
type NtorV3Client struct {
	id     [32]byte // relay Ed25519 identity (NODEID)
	b      [32]byte // relay ntor onion key B (KEYID)
	x      [32]byte // our ephemeral secret x
	pubX   [32]byte // our ephemeral public key X
	bx     [32]byte // EXP(B, x)
	msgMAC [32]byte // the MAC we sent
	ver    []byte   // verification string
	used   bool
}

// NewNtorV3 starts an ntor v3 circuit-extension handshake with the relay
// whose Ed25519 identity is id and whose ntor onion key is b, carrying
// the client message msg (for circuit extension an extension list, see
// NtorV3Request). It returns the client state and the CREATE2 handshake
// data NODEID | KEYID | CLIENT_PK | ENC(msg) | MAC of
// NtorV3ClientOverhead+len(msg) bytes, to send with HTYPE NtorV3Type.
//
// msg is encrypted to b but is not forward-secret. A C tor relay parses
// it as an extension list and refuses the handshake if it is not one, so
// even a client that asks for nothing sends the byte 00 (NtorV3Request{}).
func NewNtorV3(rand io.Reader, id, b [32]byte, msg []byte) (*NtorV3Client, []byte, error) {
	var x [32]byte
	if _, err := io.ReadFull(rand, x[:]); err != nil {
		return nil, nil, errfmt.Errorf("ntor v3: reading random key: %w", err)
	}
	c, skin, err := newNtorV3WithKey(id, b, x, []byte(NtorV3CircuitVerification), msg)
	zero(x[:])
	return c, skin, err
}

func newNtorV3WithKey(id, b, x [32]byte, ver, msg []byte) (*NtorV3Client, []byte, error) {
	if id == ([32]byte{}) {
		return nil, nil, errors.New("ntor v3: the relay's Ed25519 identity is unknown (all zero)")
	}
	c := &NtorV3Client{id: id, b: b, x: x, ver: append([]byte(nil), ver...)}
	pub, err := curve25519.X25519(c.x[:], curve25519.Basepoint)
	if err != nil {
		return nil, nil, errfmt.Errorf("ntor v3: computing X: %w", err)
	}
	copy(c.pubX[:], pub)
	// Bx = EXP(B, x); X25519 refuses an all-zero result (a B of low order).
	bx, err := curve25519.X25519(c.x[:], c.b[:])
	if err != nil {
		return nil, nil, errfmt.Errorf("ntor v3: EXP(B,x) with the relay's onion key: %w", err)
	}
	copy(c.bx[:], bx)
	zero(bx)

	// phase1_keys = KDF_msgkdf(Bx | ID | X | B | PROTOID | ENCAP(VER)),
	// split into ENC_K1 (32) and MAC_K1 (32).
	var k1 [64]byte
	xof := sha3.NewSHAKE256()
	encapXOF(xof, ntorV3TMsgKDF)
	xof.Write(c.bx[:])
	xof.Write(c.id[:])
	xof.Write(c.pubX[:])
	xof.Write(c.b[:])
	xof.Write([]byte(ntorV3ProtoID))
	encapXOF(xof, c.ver)
	xof.Read(k1[:])
	defer zero(k1[:])

	skin := make([]byte, NtorV3ClientOverhead+len(msg))
	copy(skin[0:32], c.id[:])
	copy(skin[32:64], c.b[:])
	copy(skin[64:96], c.pubX[:])
	enc := skin[96 : 96+len(msg)]
	if err := aes256CTR(k1[:32], enc, msg); err != nil {
		return nil, nil, err
	}
	// msg_mac = MAC_msgmac(MAC_K1, ID | B | X | encrypted_msg)
	h := sha3.New256()
	encapHash(h, ntorV3TMsgMAC)
	encapHash(h, k1[32:64])
	h.Write(skin[:96+len(msg)])
	h.Sum(c.msgMAC[:0])
	copy(skin[96+len(msg):], c.msgMAC[:])
	return c, skin, nil
}

// Finish takes the server handshake data of the CREATED2 or EXTENDED2
// message (exactly its HLEN bytes: Y | AUTH | ENC(server message)),
// verifies AUTH and returns the hop's keys and the decrypted server
// message (for circuit extension an extension list, see
// ParseNtorV3Reply). The keys are the first KeyMaterialLen bytes of the
// KEYSTREAM, Df | Db | Kf | Kb | KH, as C tor splits them.
func (c *NtorV3Client) Finish(reply []byte) (*KeyMaterial, []byte, error) {
	k, sm, err := c.FinishKeys(reply, KeyMaterialLen)
	if err != nil {
		return nil, nil, err
	}
	defer zero(k)
	km, err := KeyMaterialFromRFC5869(k)
	if err != nil {
		return nil, nil, errfmt.Errorf("ntor v3: %w", err)
	}
	return km, sm, nil
}

// FinishKeys is Finish returning the first n bytes of the raw KEYSTREAM
// (after ENC_KEY) instead of tor1 key material, for relay cryptography
// that needs another amount.
func (c *NtorV3Client) FinishKeys(reply []byte, n int) (keys, serverMsg []byte, err error) {
	if c.used {
		return nil, nil, errors.New("ntor v3: handshake already finished")
	}
	c.used = true
	defer zero(c.x[:])
	if n < 0 {
		return nil, nil, errfmt.Errorf("ntor v3: cannot produce %d key bytes", n)
	}
	if len(reply) < NtorV3ServerOverhead {
		return nil, nil, errfmt.Errorf("ntor v3: server handshake of %d bytes, want at least %d", len(reply), NtorV3ServerOverhead)
	}
	y := reply[0:32]
	auth := reply[32:64]
	encMsg := reply[64:]

	// Yx = EXP(Y, x); X25519 refuses an all-zero result.
	yx, err := curve25519.X25519(c.x[:], y)
	if err != nil {
		return nil, nil, errfmt.Errorf("ntor v3: EXP(Y,x): %w", err)
	}
	// secret_input = Yx | Bx | ID | B | X | Y | PROTOID | ENCAP(VER);
	// ntor_key_seed = H_key_seed(secret_input); verify = H_verify(...).
	var keySeed, verify [32]byte
	hs := sha3.New256()
	hv := sha3.New256()
	encapHash(hs, ntorV3TKeySeed)
	encapHash(hv, ntorV3TVerify)
	for _, p := range [...][]byte{yx, c.bx[:], c.id[:], c.b[:], c.pubX[:], y, []byte(ntorV3ProtoID)} {
		hs.Write(p)
		hv.Write(p)
	}
	encapHash(hs, c.ver)
	encapHash(hv, c.ver)
	hs.Sum(keySeed[:0])
	hv.Sum(verify[:0])
	zero(yx)
	defer zero(keySeed[:])
	defer zero(verify[:])

	// auth_input = verify | ID | B | Y | X | MAC | ENCAP(MSG) | PROTOID | "Server"
	var want [32]byte
	ha := sha3.New256()
	encapHash(ha, ntorV3TAuth)
	ha.Write(verify[:])
	ha.Write(c.id[:])
	ha.Write(c.b[:])
	ha.Write(y)
	ha.Write(c.pubX[:])
	ha.Write(c.msgMAC[:])
	encapHash(ha, encMsg)
	ha.Write([]byte(ntorV3ProtoID))
	ha.Write([]byte("Server"))
	ha.Sum(want[:0])
	if subtle.ConstantTimeCompare(want[:], auth) != 1 {
		return nil, nil, errfmt.Errorf("%w (wrong onion key or identity, or a tampered reply)", ErrNtorV3Auth)
	}

	// RAW_KEYSTREAM = KDF_final(ntor_key_seed) = ENC_KEY(32) | KEYSTREAM.
	var encKey [32]byte
	xof := sha3.NewSHAKE256()
	encapXOF(xof, ntorV3TFinal)
	xof.Write(keySeed[:])
	xof.Read(encKey[:])
	defer zero(encKey[:])
	keys = make([]byte, n)
	xof.Read(keys)
	serverMsg = make([]byte, len(encMsg))
	if err := aes256CTR(encKey[:], serverMsg, encMsg); err != nil {
		zero(keys)
		return nil, nil, err
	}
	return keys, serverMsg, nil
}

// encapHash writes ENCAP(s) = htonll(len(s)) | s to a SHA3 hash; the
// concrete type keeps the length off the heap.
func encapHash(h *sha3.SHA3, s []byte) {
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(s)))
	h.Write(l[:])
	h.Write(s)
}

// encapXOF writes ENCAP(s) to a SHAKE.
func encapXOF(x *sha3.SHAKE, s []byte) {
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(s)))
	x.Write(l[:])
	x.Write(s)
}

// aes256CTR sets dst to AES-256-CTR(key, src) with a zero IV: ENC and DEC
// of proposal 332 A.1.
func aes256CTR(key, dst, src []byte) error {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return errfmt.Errorf("ntor v3: AES-256: %w", err)
	}
	var iv [aes.BlockSize]byte
	cipher.NewCTR(blk, iv[:]).XORKeyStream(dst, src)
	return nil
}
