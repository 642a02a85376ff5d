// Package cert parses, verifies and makes the certificates Tor uses between
// relays and for onion services: Ed25519 certificates (cert-spec 2.1), the
// RSA->Ed25519 cross-certificate (cert-spec 2.3), and the self-signed RSA
// identity X.509 certificate of the link handshake (tor-spec 4.2).
//
// Integers are big-endian, encoded explicitly with encoding/binary.
package cert

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"tinytor/tor/errfmt"
)

// Type is a certificate type (cert-spec A.1, tor-spec 4.2 CertType).
type Type uint8

// Certificate types. Types 1-3 are X.509 certificates in CERTS cells; 7 is
// the RSA->Ed25519 cross-certificate; the others are Ed25519 certificates.
const (
	TypeLink             Type = 1  // X.509 link key certified by the RSA identity
	TypeRSAIdentity      Type = 2  // X.509 RSA1024 identity, self-signed
	TypeRSAAuth          Type = 3  // X.509 AUTHENTICATE link key
	TypeIdentitySigning  Type = 4  // Ed25519 signing key, signed by the identity key
	TypeSigningLink      Type = 5  // TLS link certificate, signed by the signing key
	TypeSigningAuth      Type = 6  // Ed25519 AUTHENTICATE key, signed by the signing key
	TypeRSACrossCert     Type = 7  // Ed25519 identity, signed by the RSA identity
	TypeHSDescSigning    Type = 8  // onion service descriptor signing key, signed by the blinded key
	TypeHSIntroAuth      Type = 9  // onion service intro point auth key, signed by the descriptor signing key
	TypeNtorCrossCert    Type = 10 // ntor onion key cross-certifying the Ed25519 identity
	TypeHSIntroEncrypted Type = 11 // onion service ntor-extra encryption key, signed by the descriptor signing key
)

// String names t as tor-spec does.
func (t Type) String() string {
	switch t {
	case TypeLink:
		return "RSA link"
	case TypeRSAIdentity:
		return "RSA identity"
	case TypeRSAAuth:
		return "RSA auth"
	case TypeIdentitySigning:
		return "Ed25519 identity->signing"
	case TypeSigningLink:
		return "Ed25519 signing->link"
	case TypeSigningAuth:
		return "Ed25519 signing->auth"
	case TypeRSACrossCert:
		return "RSA->Ed25519 cross-certificate"
	case TypeHSDescSigning:
		return "onion service descriptor signing"
	case TypeHSIntroAuth:
		return "onion service intro auth"
	case TypeNtorCrossCert:
		return "ntor cross-certificate"
	case TypeHSIntroEncrypted:
		return "onion service intro encryption"
	}
	return fmt.Sprintf("cert_type(%d)", uint8(t))
}

// KeyType says what the CERTIFIED_KEY field of an Ed25519 certificate holds
// (cert-spec A.4).
type KeyType uint8

// Certified key types (cert-spec A.4).
const (
	KeyEd25519      KeyType = 1
	KeySHA256OfRSA  KeyType = 2
	KeySHA256OfX509 KeyType = 3
)

// Extension types and flags (cert-spec 2.1, A.2).
const (
	ExtSignedWithKey uint8 = 4
	// FlagAffectsValidation marks an extension that a verifier must
	// understand to accept the certificate.
	FlagAffectsValidation uint8 = 1
)

// Sizes in an Ed25519 certificate.
const (
	ed25519HeaderLen = 1 + 1 + 4 + 1 + 32 + 1
	ed25519SigLen    = 64
	// MinEd25519Len is the size of an Ed25519 certificate with no extension.
	MinEd25519Len = ed25519HeaderLen + ed25519SigLen
)

// Errors wrapped by parsing and verification, for callers that decide on them.
var (
	ErrMalformed      = errors.New("malformed certificate")
	ErrUnknownCritExt = errors.New("unrecognized extension that affects validation")
	ErrBadSignature   = errors.New("bad signature")
	ErrExpired        = errors.New("certificate expired")
	ErrNotYetValid    = errors.New("certificate not yet valid")
	ErrWrongSigner    = errors.New("certificate signed by an unexpected key")
)

// Extension is one extension of an Ed25519 certificate.
type Extension struct {
	Type  uint8
	Flags uint8
	Data  []byte
}

// Ed25519 is a parsed Ed25519 certificate (cert-spec 2.1).
type Ed25519 struct {
	Type Type
	// ExpirationHours is the EXPIRATION_DATE field: hours since the epoch.
	ExpirationHours uint32
	KeyType         KeyType
	CertifiedKey    [32]byte
	Extensions      []Extension
	// SignedWithKey is the key in the signed-with-ed25519-key extension,
	// or nil when there is none.
	SignedWithKey ed25519.PublicKey
	Signature     [ed25519SigLen]byte
	// Raw is the whole encoded certificate.
	Raw []byte
}

// Expiration returns the instant after which c is no longer valid.
func (c *Ed25519) Expiration() time.Time {
	return time.Unix(int64(c.ExpirationHours)*3600, 0).UTC()
}

// Expired reports whether c has expired at now (cert-spec 2.1: the date
// after which the certificate isn't valid).
func (c *Ed25519) Expired(now time.Time) bool {
	return now.After(c.Expiration())
}

// CertifiedEd25519 returns the certified key as an Ed25519 public key.
func (c *Ed25519) CertifiedEd25519() ed25519.PublicKey {
	return ed25519.PublicKey(c.CertifiedKey[:])
}

// ParseEd25519 parses an Ed25519 certificate. It rejects a version other
// than 1, truncated or trailing data, a signed-with-key extension of the
// wrong length or given twice, and an unrecognized extension with the
// AFFECTS_VALIDATION flag (cert-spec 2.1). Raw and extension data alias b.
func ParseEd25519(b []byte) (*Ed25519, error) {
	if len(b) < MinEd25519Len {
		return nil, errfmt.Errorf("Ed25519 certificate of %d bytes, need at least %d: %w", len(b), MinEd25519Len, ErrMalformed)
	}
	if b[0] != 1 {
		return nil, errfmt.Errorf("Ed25519 certificate version %d, want 1: %w", b[0], ErrMalformed)
	}
	c := &Ed25519{
		Type:            Type(b[1]),
		ExpirationHours: binary.BigEndian.Uint32(b[2:6]),
		KeyType:         KeyType(b[6]),
		CertifiedKey:    [32]byte(b[7:39]),
		Raw:             b,
	}
	n := int(b[39])
	off := ed25519HeaderLen
	end := len(b) - ed25519SigLen
	for i := range n {
		if end-off < 4 {
			return nil, errfmt.Errorf("Ed25519 certificate extension %d at offset %d: header truncated: %w", i, off, ErrMalformed)
		}
		l := int(binary.BigEndian.Uint16(b[off:]))
		e := Extension{Type: b[off+2], Flags: b[off+3]}
		off += 4
		if end-off < l {
			return nil, errfmt.Errorf("Ed25519 certificate extension %d (type %d) at offset %d: %d data bytes, only %d left: %w", i, e.Type, off-4, l, end-off, ErrMalformed)
		}
		e.Data = b[off : off+l]
		off += l
		switch e.Type {
		case ExtSignedWithKey:
			if l != ed25519.PublicKeySize {
				return nil, errfmt.Errorf("Ed25519 certificate signed-with-key extension of %d bytes, want 32: %w", l, ErrMalformed)
			}
			if c.SignedWithKey != nil {
				return nil, errfmt.Errorf("Ed25519 certificate has two signed-with-key extensions: %w", ErrMalformed)
			}
			c.SignedWithKey = ed25519.PublicKey(e.Data)
		default:
			if e.Flags&FlagAffectsValidation != 0 {
				return nil, errfmt.Errorf("Ed25519 certificate extension %d of type %d: %w", i, e.Type, ErrUnknownCritExt)
			}
		}
		c.Extensions = append(c.Extensions, e)
	}
	if off != end {
		return nil, errfmt.Errorf("Ed25519 certificate has %d unexpected bytes before the signature: %w", end-off, ErrMalformed)
	}
	c.Signature = [ed25519SigLen]byte(b[end:])
	return c, nil
}

// Verify checks c's signature. If signer is nil, the key of the
// signed-with-key extension is used (and its absence is an error); if both
// are present they must be equal (cert-spec 2.2.1).
func (c *Ed25519) Verify(signer ed25519.PublicKey) error {
	switch {
	case signer == nil && c.SignedWithKey == nil:
		return errfmt.Errorf("%s certificate: no signing key known and no signed-with-key extension: %w", c.Type, ErrWrongSigner)
	case signer == nil:
		signer = c.SignedWithKey
	case len(signer) != ed25519.PublicKeySize:
		return errfmt.Errorf("%s certificate: signer key of %d bytes: %w", c.Type, len(signer), ErrWrongSigner)
	case c.SignedWithKey != nil && !c.SignedWithKey.Equal(signer):
		return errfmt.Errorf("%s certificate: signed-with-key extension does not match the expected signer: %w", c.Type, ErrWrongSigner)
	}
	if !ed25519.Verify(signer, c.Raw[:len(c.Raw)-ed25519SigLen], c.Signature[:]) {
		return errfmt.Errorf("%s certificate: %w", c.Type, ErrBadSignature)
	}
	return nil
}

// Check verifies c's signature (see [Ed25519.Verify]) and that c has not
// expired at now.
func (c *Ed25519) Check(signer ed25519.PublicKey, now time.Time) error {
	if err := c.Verify(signer); err != nil {
		return err
	}
	if c.Expired(now) {
		return errfmt.Errorf("%s certificate expired at %s (now %s): %w", c.Type, c.Expiration().Format(time.DateTime), now.UTC().Format(time.DateTime), ErrExpired)
	}
	return nil
}

// Ed25519Template describes a certificate to make with [NewEd25519].
type Ed25519Template struct {
	Type Type
	// Expiration is rounded up to a whole hour.
	Expiration   time.Time
	KeyType      KeyType
	CertifiedKey [32]byte
	// IncludeSigner adds the signed-with-ed25519-key extension.
	IncludeSigner bool
}

// NewEd25519 encodes and signs a certificate with signer.
func NewEd25519(t Ed25519Template, signer ed25519.PrivateKey) ([]byte, error) {
	if len(signer) != ed25519.PrivateKeySize {
		return nil, errfmt.Errorf("making %s certificate: signing key of %d bytes", t.Type, len(signer))
	}
	secs := t.Expiration.Unix()
	hours := (secs + 3599) / 3600
	if secs < 0 || hours > 0xffffffff {
		return nil, errfmt.Errorf("making %s certificate: expiration %s out of range", t.Type, t.Expiration)
	}
	b := make([]byte, 0, MinEd25519Len+36)
	b = append(b, 1, byte(t.Type))
	b = binary.BigEndian.AppendUint32(b, uint32(hours))
	b = append(b, byte(t.KeyType))
	b = append(b, t.CertifiedKey[:]...)
	if t.IncludeSigner {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint16(b, ed25519.PublicKeySize)
		b = append(b, ExtSignedWithKey, 0)
		b = append(b, signer.Public().(ed25519.PublicKey)...)
	} else {
		b = append(b, 0)
	}
	return append(b, ed25519.Sign(signer, b)...), nil
}
