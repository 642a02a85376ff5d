package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"strings"

	"tinytor/onion/addr"
	"tinytor/tor/cert"
	"tinytor/tor/errfmt"
)

// C tor's key file headers (32 bytes: tag, then NUL padding).
const (
	secretKeyTag  = "== ed25519v1-secret: type0 =="
	publicKeyTag  = "== ed25519v1-public: type0 =="
	fileHeaderLen = 32
)

func fileHeader(tag string) []byte {
	h := make([]byte, fileHeaderLen)
	copy(h, tag)
	return h
}

// SecretKeyFile encodes k as C tor's hs_ed25519_secret_key file.
func (k *SigningKey) SecretKeyFile() []byte {
	return append(fileHeader(secretKeyTag), k.secret[:]...)
}

// ParseSecretKeyFile decodes C tor's hs_ed25519_secret_key file.
func ParseSecretKeyFile(b []byte) (*SigningKey, error) {
	if len(b) != fileHeaderLen+ExpandedLen {
		return nil, errfmt.Errorf("parse hs_ed25519_secret_key: %w: %d bytes, want %d", ErrKey, len(b), fileHeaderLen+ExpandedLen)
	}
	if !bytes.Equal(b[:fileHeaderLen], fileHeader(secretKeyTag)) {
		return nil, errfmt.Errorf("parse hs_ed25519_secret_key: %w: header is not %q", ErrKey, secretKeyTag)
	}
	k, err := FromExpanded(b[fileHeaderLen:])
	if err != nil {
		return nil, errfmt.Errorf("parse hs_ed25519_secret_key: %w", err)
	}
	return k, nil
}

// PublicKeyFile encodes pub as C tor's hs_ed25519_public_key file.
func PublicKeyFile(pub ed25519.PublicKey) []byte {
	return append(fileHeader(publicKeyTag), pub...)
}

// ParsePublicKeyFile decodes C tor's hs_ed25519_public_key file.
func ParsePublicKeyFile(b []byte) (ed25519.PublicKey, error) {
	if len(b) != fileHeaderLen+32 {
		return nil, errfmt.Errorf("parse hs_ed25519_public_key: %w: %d bytes, want %d", ErrKey, len(b), fileHeaderLen+32)
	}
	if !bytes.Equal(b[:fileHeaderLen], fileHeader(publicKeyTag)) {
		return nil, errfmt.Errorf("parse hs_ed25519_public_key: %w: header is not %q", ErrKey, publicKeyTag)
	}
	return ed25519.PublicKey(bytes.Clone(b[fileHeaderLen:])), nil
}

// HostnameFile returns the contents of C tor's hostname file for pub:
// the address and a newline.
func HostnameFile(pub ed25519.PublicKey) ([]byte, error) {
	a, err := addr.FromKey(pub)
	if err != nil {
		return nil, err
	}
	return []byte(a.String() + "\n"), nil
}

// ParseHostnameFile parses a hostname file.
func ParseHostnameFile(b []byte) (addr.Address, error) {
	return addr.Parse(strings.TrimSpace(string(b)))
}

// Cert encodes and signs an Ed25519 certificate (cert-spec 2.1) with k,
// like cert.NewEd25519 but for keys without a seed (blinded keys). The
// signed-with-ed25519-key extension carries k's public key when
// t.IncludeSigner is set. Parse the result with cert.ParseEd25519.
func (k *SigningKey) Cert(t cert.Ed25519Template) []byte {
	hours := t.Expiration.Unix() / 3600
	if t.Expiration.Unix()%3600 != 0 {
		hours++
	}
	if hours < 0 {
		hours = 0
	}
	if hours > 0xffffffff {
		hours = 0xffffffff
	}
	b := make([]byte, 0, cert.MinEd25519Len+36)
	b = append(b, 1, byte(t.Type))
	b = binary.BigEndian.AppendUint32(b, uint32(hours))
	b = append(b, byte(t.KeyType))
	b = append(b, t.CertifiedKey[:]...)
	if t.IncludeSigner {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint16(b, 32)
		b = append(b, cert.ExtSignedWithKey, 0)
		b = append(b, k.public[:]...)
	} else {
		b = append(b, 0)
	}
	return append(b, k.Sign(b)...)
}
