// Package hsntor implements the hs-ntor handshake of v3 onion services
// (rend-spec-v3 3.3.2 [NTOR-WITH-EXTRA-DATA] and 4.2): the keys that encrypt
// and authenticate the ENCRYPTED part of INTRODUCE1/2, the RENDEZVOUS1
// handshake reply, its verification by the client, and the expansion of
// NTOR_KEY_SEED into the keys and relay crypto layer of the virtual hop
// (4.2.1).
//
// The package is pure computation: callers encode and parse the cells
// (package onion/hscell) and pass the bytes in.
package hsntor

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
	"io"

	"tinytor/tor/circuit/relaycrypto"
	"tinytor/tor/errfmt"
)

// Protocol strings (rend-spec-v3 3.3.2).
const (
	ProtoID    = "tor-hs-ntor-curve25519-sha3-256-1"
	tHSEnc     = ProtoID + ":hs_key_extract"
	tHSVerify  = ProtoID + ":hs_verify"
	tHSMAC     = ProtoID + ":hs_mac"
	mHSExpand  = ProtoID + ":hs_key_expand"
	serverStr  = "Server"
	keyLen     = 32 // S_KEY_LEN: AES-256
	macLen     = 32 // MAC_LEN and MAC_KEY_LEN: SHA3-256
	pubLen     = 32 // PK_PUBKEY_LEN: curve25519
	hashLen    = 32 // HASH_LEN: SHA3-256
	authKeyLen = 32 // ed25519 AUTH_KEY
)

// HandshakeInfoLen is the size of the RENDEZVOUS1/2 HANDSHAKE_INFO: SERVER_PK
// (Y) and AUTH.
const HandshakeInfoLen = pubLen + macLen

// MinEncryptedLen is the smallest ENCRYPTED section: CLIENT_PK and MAC.
const MinEncryptedLen = pubLen + macLen

// Errors for callers that decide on them.
var (
	// ErrMAC: the INTRODUCE2 MAC matches none of the subcredentials.
	ErrMAC = errors.New("hs-ntor: INTRODUCE MAC mismatch")
	// ErrAuth: RENDEZVOUS2 AUTH does not complete our handshake.
	ErrAuth = errors.New("hs-ntor: RENDEZVOUS2 authentication failed")
	// ErrMalformed: a field has the wrong size.
	ErrMalformed = errors.New("hs-ntor: malformed input")
	// ErrKey: a Diffie-Hellman result was all zeros (a low-order point).
	ErrKey = errors.New("hs-ntor: invalid curve25519 key")
)

// MAC is rend-spec-v3's MAC(key, msg) = SHA3-256(htonll(len(key)) | key |
// msg).
func MAC(key []byte, msg ...[]byte) [32]byte {
	h := sha3.New256()
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(key)))
	h.Write(l[:])
	h.Write(key)
	for _, m := range msg {
		h.Write(m)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// IntroKeys are the keys of the ENCRYPTED section of INTRODUCE1/2.
type IntroKeys struct {
	Enc [keyLen]byte // ENC_KEY: AES-256-CTR, zero IV
	MAC [macLen]byte // MAC_KEY
}

// introKeys derives ENC_KEY and MAC_KEY from EXP(B,x) (= EXP(X,b)).
func introKeys(dh []byte, authKey ed25519.PublicKey, X, B []byte, subcred [32]byte) IntroKeys {
	in := concat(dh, authKey, X, B, []byte(ProtoID+tHSEnc+mHSExpand), subcred[:])
	out := sha3.SumSHAKE256(in, keyLen+macLen)
	var k IntroKeys
	copy(k.Enc[:], out[:keyLen])
	copy(k.MAC[:], out[keyLen:])
	return k
}

// concat returns the concatenation of parts.
func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// xorCTR applies AES-256-CTR with a zero IV.
func xorCTR(key []byte, dst, src []byte) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		panic("hsntor: AES-256 key of wrong size")
	}
	var iv [aes.BlockSize]byte
	cipher.NewCTR(blk, iv[:]).XORKeyStream(dst, src)
}

// Keys are the keys of the virtual hop between client and service
// (rend-spec-v3 4.2.1): digests seeded with Df and Db (SHA3-256) and
// AES-256-CTR keys Kf and Kb. The client encrypts with Kf and decrypts
// with Kb; the service does the opposite.
type Keys struct {
	Df, Db [hashLen]byte
	Kf, Kb [keyLen]byte
}

// ExpandKeys derives the virtual hop's keys: K = SHAKE-256(NTOR_KEY_SEED |
// m_hsexpand), split into Df, Db, Kf, Kb.
func ExpandKeys(seed [32]byte) Keys {
	in := append(seed[:len(seed):len(seed)], mHSExpand...)
	out := sha3.SumSHAKE256(in, 2*hashLen+2*keyLen)
	var k Keys
	copy(k.Df[:], out[0:32])
	copy(k.Db[:], out[32:64])
	copy(k.Kf[:], out[64:96])
	copy(k.Kb[:], out[96:128])
	return k
}

// Layer returns the relay crypto layer of the virtual hop with these keys
// (SHA3-256 digests, AES-256-CTR): the client's, or with service the
// service's, whose directions are swapped.
func (k *Keys) Layer(service bool) (*relaycrypto.Layer, error) {
	df, db, kf, kb := k.Df[:], k.Db[:], k.Kf[:], k.Kb[:]
	if service {
		df, db, kf, kb = db, df, kb, kf
	}
	return relaycrypto.NewLayer(newSHA3, df, db, kf, kb)
}

func newSHA3() hash.Hash { return sha3.New256() }

// rendKeys computes NTOR_KEY_SEED and AUTH_INPUT_MAC from EXP(X,y)
// (= EXP(Y,x)) and EXP(X,b) (= EXP(B,x)).
func rendKeys(xy, xb []byte, authKey ed25519.PublicKey, B, X, Y []byte) (seed, auth [32]byte) {
	in := concat(xy, xb, authKey, B, X, Y, []byte(ProtoID))
	seed = MAC(in, []byte(tHSEnc))
	verify := MAC(in, []byte(tHSVerify))
	auth = MAC(concat(verify[:], authKey, B, Y, X, []byte(ProtoID+serverStr)), []byte(tHSMAC))
	return seed, auth
}

func dh(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, errfmt.Errorf("%w: %v", ErrKey, err)
	}
	s, err := priv.ECDH(p)
	if err != nil {
		// crypto/ecdh refuses an all-zero shared secret.
		return nil, errfmt.Errorf("%w: %v", ErrKey, err)
	}
	return s, nil
}

// Client is the client's side of one hs-ntor handshake, for one
// introduction point of one service.
type Client struct {
	x       *ecdh.PrivateKey
	authKey ed25519.PublicKey
	B       []byte
	subcred [32]byte
	xb      []byte
	keys    IntroKeys
}

// NewClient starts a handshake towards the introduction point whose
// auth-key is authKey and whose enc-key (KP_hss_ntor) is encKey, for the
// service's current subcredential. It draws the ephemeral key x from rand.
func NewClient(rand io.Reader, authKey ed25519.PublicKey, encKey [32]byte, subcred [32]byte) (*Client, error) {
	x, err := ecdh.X25519().GenerateKey(rand)
	if err != nil {
		return nil, errfmt.Errorf("hs-ntor: generate client key: %w", err)
	}
	return NewClientWithKey(x, authKey, encKey, subcred)
}

// NewClientWithKey is NewClient with a given ephemeral key (for tests and
// known-answer vectors).
func NewClientWithKey(x *ecdh.PrivateKey, authKey ed25519.PublicKey, encKey [32]byte, subcred [32]byte) (*Client, error) {
	if len(authKey) != authKeyLen {
		return nil, errfmt.Errorf("%w: auth key is %d bytes", ErrMalformed, len(authKey))
	}
	c := &Client{x: x, authKey: authKey, B: encKey[:], subcred: subcred}
	var err error
	if c.xb, err = dh(x, c.B); err != nil {
		return nil, err
	}
	c.keys = introKeys(c.xb, authKey, x.PublicKey().Bytes(), c.B, subcred)
	return c, nil
}

// IntroKeys returns ENC_KEY and MAC_KEY.
func (c *Client) IntroKeys() IntroKeys { return c.keys }

// PublicKey returns X, the CLIENT_PK.
func (c *Client) PublicKey() [32]byte {
	var X [32]byte
	copy(X[:], c.x.PublicKey().Bytes())
	return X
}

// Encrypt returns the ENCRYPTED section of INTRODUCE1: CLIENT_PK |
// ENCRYPTED_DATA | MAC, where MAC = MAC(MAC_KEY, header | CLIENT_PK |
// ENCRYPTED_DATA) and header is the cell body before ENCRYPTED (from
// LEGACY_KEY_ID to the extensions). plaintext should already be padded
// (hscell pads as C tor does).
func (c *Client) Encrypt(header, plaintext []byte) []byte {
	out := make([]byte, pubLen+len(plaintext), pubLen+len(plaintext)+macLen)
	copy(out, c.x.PublicKey().Bytes())
	xorCTR(c.keys.Enc[:], out[pubLen:], plaintext)
	m := MAC(c.keys.MAC[:], header, out)
	return append(out, m[:]...)
}

// Complete checks the HANDSHAKE_INFO of RENDEZVOUS2 (SERVER_PK Y | AUTH) and
// returns the virtual hop's keys and NTOR_KEY_SEED.
func (c *Client) Complete(handshakeInfo []byte) (Keys, [32]byte, error) {
	if len(handshakeInfo) < HandshakeInfoLen {
		return Keys{}, [32]byte{}, errfmt.Errorf("%w: HANDSHAKE_INFO is %d bytes, want %d", ErrMalformed, len(handshakeInfo), HandshakeInfoLen)
	}
	Y := handshakeInfo[:pubLen]
	xy, err := dh(c.x, Y)
	if err != nil {
		return Keys{}, [32]byte{}, errfmt.Errorf("RENDEZVOUS2 server key: %w", err)
	}
	seed, auth := rendKeys(xy, c.xb, c.authKey, c.B, c.x.PublicKey().Bytes(), Y)
	if subtle.ConstantTimeCompare(auth[:], handshakeInfo[pubLen:HandshakeInfoLen]) != 1 {
		return Keys{}, [32]byte{}, ErrAuth
	}
	return ExpandKeys(seed), seed, nil
}

// Service is the service's key pair for one introduction point: the
// auth-key KP_hs_ipt_sid and the enc-key pair (KS_hss_ntor, KP_hss_ntor).
type Service struct {
	AuthKey ed25519.PublicKey
	EncKey  *ecdh.PrivateKey
}

// Introduction is the result of decrypting an INTRODUCE2 ENCRYPTED section.
type Introduction struct {
	// Plaintext is the decrypted data (parse it with hscell).
	Plaintext []byte
	// ClientKey is X, the CLIENT_PK.
	ClientKey [32]byte
	// Subcredential is the index of the subcredential that matched.
	Subcredential int

	xb []byte
}

// Decrypt checks the MAC of an INTRODUCE2 ENCRYPTED section under each of
// subcreds (a service tries those of all its live descriptors) and decrypts
// it. header is the cell body before ENCRYPTED.
func (s *Service) Decrypt(header, encrypted []byte, subcreds [][32]byte) (*Introduction, error) {
	if len(s.AuthKey) != authKeyLen || s.EncKey == nil {
		return nil, errfmt.Errorf("%w: service keys unset", ErrMalformed)
	}
	if len(encrypted) < MinEncryptedLen {
		return nil, errfmt.Errorf("%w: ENCRYPTED is %d bytes, want at least %d", ErrMalformed, len(encrypted), MinEncryptedLen)
	}
	X := encrypted[:pubLen]
	body := encrypted[:len(encrypted)-macLen]
	gotMAC := encrypted[len(encrypted)-macLen:]
	xb, err := dh(s.EncKey, X)
	if err != nil {
		return nil, errfmt.Errorf("INTRODUCE2 client key: %w", err)
	}
	B := s.EncKey.PublicKey().Bytes()
	for i, sc := range subcreds {
		k := introKeys(xb, s.AuthKey, X, B, sc)
		m := MAC(k.MAC[:], header, body)
		if subtle.ConstantTimeCompare(m[:], gotMAC) != 1 {
			continue
		}
		in := &Introduction{Plaintext: make([]byte, len(body)-pubLen), Subcredential: i, xb: xb}
		copy(in.ClientKey[:], X)
		xorCTR(k.Enc[:], in.Plaintext, body[pubLen:])
		return in, nil
	}
	return nil, ErrMAC
}

// Respond completes the service's side of the handshake for a decrypted
// introduction: it draws y from rand and returns the HANDSHAKE_INFO for
// RENDEZVOUS1 (Y | AUTH_INPUT_MAC), the virtual hop's keys and
// NTOR_KEY_SEED.
func (s *Service) Respond(rand io.Reader, in *Introduction) ([]byte, Keys, [32]byte, error) {
	y, err := ecdh.X25519().GenerateKey(rand)
	if err != nil {
		return nil, Keys{}, [32]byte{}, errfmt.Errorf("hs-ntor: generate service key: %w", err)
	}
	return s.RespondWithKey(y, in)
}

// RespondWithKey is Respond with a given ephemeral key (for tests and
// known-answer vectors).
func (s *Service) RespondWithKey(y *ecdh.PrivateKey, in *Introduction) ([]byte, Keys, [32]byte, error) {
	xy, err := dh(y, in.ClientKey[:])
	if err != nil {
		return nil, Keys{}, [32]byte{}, err
	}
	Y := y.PublicKey().Bytes()
	seed, auth := rendKeys(xy, in.xb, s.AuthKey, s.EncKey.PublicKey().Bytes(), in.ClientKey[:], Y)
	info := make([]byte, 0, HandshakeInfoLen)
	info = append(info, Y...)
	info = append(info, auth[:]...)
	return info, ExpandKeys(seed), seed, nil
}
