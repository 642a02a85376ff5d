// Package handshake implements the client side of Tor's circuit-extension
// handshakes (CREATE_FAST and ntor, tor-spec 5.1.4 and 5.1.5) and the two
// key derivation functions they use (KDF-TOR and KDF-RFC5869, tor-spec 5.2).
//
// The output of every handshake is a KeyMaterial: the seeds of the two
// running digests and the two AES-128 keys of one hop's relay crypto.
package handshake

import (
	"crypto/sha1"
	"crypto/sha256"
	"io"

	"golang.org/x/crypto/hkdf"

	"tinytor/tor/errfmt"
)

// Sizes used by the tor1 relay crypto (tor-spec 0.2).
const (
	HashLen = 20 // HASH_LEN: SHA-1 output
	KeyLen  = 16 // KEY_LEN: AES-128 key

	// KeyMaterialLen is the number of bytes a KDF must produce for one
	// hop: KH (or the ntor nonce), Df, Db, Kf and Kb.
	KeyMaterialLen = 3*HashLen + 2*KeyLen
)

// KeyMaterial is the key material of one hop (tor-spec 5.2).
type KeyMaterial struct {
	Df [HashLen]byte // seed of the forward running digest
	Db [HashLen]byte // seed of the backward running digest
	Kf [KeyLen]byte  // forward AES-128-CTR key
	Kb [KeyLen]byte  // backward AES-128-CTR key
	// KH is the "derivative key data" of KDF-TOR, or the nonce that
	// KDF-RFC5869 leaves after the keys.
	KH [HashLen]byte
}

// Zero overwrites the key material.
func (k *KeyMaterial) Zero() {
	*k = KeyMaterial{}
}

// KDFTor implements KDF-TOR (tor-spec 5.2.1): the concatenation
// SHA1(K0 | [00]) | SHA1(K0 | [01]) | ... truncated to n bytes.
// n may be at most 256*HashLen.
func KDFTor(k0 []byte, n int) ([]byte, error) {
	if n < 0 || n > 256*HashLen {
		return nil, errfmt.Errorf("KDF-TOR: cannot produce %d bytes (at most %d)", n, 256*HashLen)
	}
	out := make([]byte, 0, n+HashLen)
	h := sha1.New()
	for i := 0; len(out) < n; i++ {
		h.Reset()
		h.Write(k0)
		h.Write([]byte{byte(i)})
		out = h.Sum(out)
	}
	return out[:n], nil
}

// KDFRFC5869 implements KDF-RFC5869 (tor-spec 5.2.2): HKDF-SHA256 with
// IKM = secret, salt = salt and info = info, producing n bytes.
func KDFRFC5869(secret, salt, info []byte, n int) ([]byte, error) {
	out := make([]byte, n)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, info), out); err != nil {
		return nil, errfmt.Errorf("KDF-RFC5869: expanding %d bytes: %w", n, err)
	}
	return out, nil
}

// keyMaterialFromTor splits KDF-TOR output: KH | Df | Db | Kf | Kb.
func keyMaterialFromTor(k []byte) *KeyMaterial {
	var km KeyMaterial
	k = k[copy(km.KH[:], k):]
	k = k[copy(km.Df[:], k):]
	k = k[copy(km.Db[:], k):]
	k = k[copy(km.Kf[:], k):]
	copy(km.Kb[:], k)
	return &km
}

// KeyMaterialFromRFC5869 splits KDF-RFC5869 output as the ntor handshake
// does (tor-spec 5.2.2): Df | Db | Kf | Kb | nonce. k must hold at least
// KeyMaterialLen bytes.
func KeyMaterialFromRFC5869(k []byte) (*KeyMaterial, error) {
	if len(k) < KeyMaterialLen {
		return nil, errfmt.Errorf("key material: have %d bytes, need %d", len(k), KeyMaterialLen)
	}
	var km KeyMaterial
	k = k[copy(km.Df[:], k):]
	k = k[copy(km.Db[:], k):]
	k = k[copy(km.Kf[:], k):]
	k = k[copy(km.Kb[:], k):]
	copy(km.KH[:], k)
	return &km, nil
}

func zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
