// Package desc parses, verifies, decrypts, builds, encrypts and signs v3
// onion service descriptors (rend-spec-v3 2.4, 2.5): the outer document
// signed by the descriptor signing key, whose key is certified by the
// blinded key; the first ("superencrypted") layer with the client
// authorization entries; and the second ("encrypted") layer listing the
// introduction points.
//
// A client calls Decode; a service calls Build. Errors wrap ErrInvalid,
// ErrNeedClientAuth or ErrBadClientAuth, so that a SOCKS layer can answer
// with the matching onion service error code.
package desc

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"io"

	"tinytor/tor/errfmt"
)

// Errors that callers map to answers.
var (
	// ErrInvalid: the descriptor is malformed, badly signed, expired, or
	// does not decrypt with the service's keys.
	ErrInvalid = errors.New("invalid onion service descriptor")
	// ErrNeedClientAuth: the inner layer is encrypted for authorized
	// clients and we have no client authorization key for the service.
	ErrNeedClientAuth = errors.New("onion service descriptor requires client authorization")
	// ErrBadClientAuth: we have a client authorization key but it does not
	// decrypt the descriptor.
	ErrBadClientAuth = errors.New("client authorization key does not decrypt the onion service descriptor")
)

// Sizes (rend-spec-v3 2.5.3, C tor hs_descriptor.h).
const (
	SaltLen          = 16
	macLen           = 32
	keyLen           = 32 // AES-256
	ivLen            = 16
	CookieLen        = 16 // descriptor cookie N_hs_desc_enc (C tor)
	ClientIDLen      = 8
	cookieKeyLen     = 32
	superPadMultiple = 10000
	// AuthClientMultiple: C tor pads auth-client lines to a multiple of 16.
	AuthClientMultiple = 16
	// MaxLen is the largest descriptor HSDirs accept.
	MaxLen = 50000
)

// Layer string constants.
const (
	SuperencryptedConst = "hsdir-superencrypted-data"
	EncryptedConst      = "hsdir-encrypted-data"
)

func layerKeys(secretData []byte, subcred [32]byte, rev uint64, salt []byte, constant string) (key, iv, macKey []byte) {
	in := make([]byte, 0, len(secretData)+32+8+len(salt)+len(constant))
	in = append(in, secretData...)
	in = append(in, subcred[:]...)
	in = binary.BigEndian.AppendUint64(in, rev)
	in = append(in, salt...)
	in = append(in, constant...)
	k := sha3.SumSHAKE256(in, keyLen+ivLen+macLen)
	return k[:keyLen], k[keyLen : keyLen+ivLen], k[keyLen+ivLen:]
}

func layerMAC(macKey, salt, encrypted []byte) []byte {
	h := sha3.New256()
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(macKey)))
	h.Write(l[:])
	h.Write(macKey)
	binary.BigEndian.PutUint64(l[:], uint64(len(salt)))
	h.Write(l[:])
	h.Write(salt)
	h.Write(encrypted)
	return h.Sum(nil)
}

func ctr(key, iv, dst, src []byte) {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("desc: bad AES key size")
	}
	cipher.NewCTR(b, iv).XORKeyStream(dst, src)
}

// DecryptLayer checks the MAC of an encrypted blob (SALT | ENCRYPTED | MAC,
// rend-spec-v3 2.5.3) and decrypts it. secretData is the blinded key (first
// layer) or the blinded key and the descriptor cookie (second layer),
// constant is SuperencryptedConst or EncryptedConst. As C tor does, the
// plaintext ends at its first NUL byte; an empty plaintext is an error.
func DecryptLayer(blob, secretData []byte, subcred [32]byte, rev uint64, constant string) ([]byte, error) {
	if len(blob) <= SaltLen+macLen {
		return nil, errfmt.Errorf("encrypted blob of %d bytes is too short", len(blob))
	}
	salt := blob[:SaltLen]
	enc := blob[SaltLen : len(blob)-macLen]
	key, iv, macKey := layerKeys(secretData, subcred, rev, salt, constant)
	if subtle.ConstantTimeCompare(layerMAC(macKey, salt, enc), blob[len(blob)-macLen:]) != 1 {
		return nil, errMAC
	}
	out := make([]byte, len(enc))
	ctr(key, iv, out, enc)
	for i, c := range out {
		if c == 0 {
			out = out[:i]
			break
		}
	}
	if len(out) == 0 {
		return nil, errors.New("decrypted layer is empty")
	}
	return out, nil
}

var errMAC = errors.New("MAC mismatch")

// EncryptLayer encrypts plaintext into SALT | ENCRYPTED | MAC with a fresh
// salt from rand. With pad, the plaintext is first NUL-padded to a multiple
// of 10000 bytes, as C tor pads the first layer (it does not pad the
// second).
func EncryptLayer(rand io.Reader, plaintext, secretData []byte, subcred [32]byte, rev uint64, constant string, pad bool) ([]byte, error) {
	n := len(plaintext)
	if pad {
		n = (n + superPadMultiple - 1) / superPadMultiple * superPadMultiple
		if n == 0 {
			n = superPadMultiple
		}
	}
	out := make([]byte, SaltLen+n, SaltLen+n+macLen)
	// rend-spec: SALT = 16 bytes from H(random).
	var r [32]byte
	if _, err := io.ReadFull(rand, r[:]); err != nil {
		return nil, errfmt.Errorf("descriptor salt: %w", err)
	}
	h := sha3.Sum256(r[:])
	copy(out, h[:SaltLen])
	padded := make([]byte, n)
	copy(padded, plaintext)
	key, iv, macKey := layerKeys(secretData, subcred, rev, out[:SaltLen], constant)
	ctr(key, iv, out[SaltLen:], padded)
	return append(out, layerMAC(macKey, out[:SaltLen], out[SaltLen:])...), nil
}

// clientKeys computes CLIENT-ID and COOKIE-KEY for one client (rend-spec-v3
// 2.5.1.2): KEYS = SHAKE-256(N_hs_subcred | x25519(sk, pk), 40).
func clientKeys(subcred [32]byte, sk *ecdh.PrivateKey, pk []byte) (id [ClientIDLen]byte, cookieKey []byte, err error) {
	p, err := ecdh.X25519().NewPublicKey(pk)
	if err != nil {
		return id, nil, err
	}
	seed, err := sk.ECDH(p)
	if err != nil {
		return id, nil, err
	}
	k := sha3.SumSHAKE256(append(subcred[:len(subcred):len(subcred)], seed...), ClientIDLen+cookieKeyLen)
	copy(id[:], k)
	return id, k[ClientIDLen:], nil
}
