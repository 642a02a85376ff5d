package cert

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"math/big"
	"time"

	"tinytor/tor/errfmt"
)

// crossCertPrefix is prepended to the signed part of an RSA->Ed25519
// cross-certificate before hashing (cert-spec 2.3).
const crossCertPrefix = "Tor TLS RSA/Ed25519 cross-certificate"

// CrossCert is a parsed RSA->Ed25519 cross-certificate (cert-spec 2.3,
// CERTS cell type 7).
type CrossCert struct {
	Ed25519Key [32]byte
	// ExpirationHours is the EXPIRATION_DATE field: hours since the epoch.
	ExpirationHours uint32
	Signature       []byte
	// Raw is the whole encoded certificate.
	Raw []byte
}

// ParseCrossCert parses an RSA->Ed25519 cross-certificate. Trailing bytes
// after the signature are an error. Raw and Signature alias b.
func ParseCrossCert(b []byte) (*CrossCert, error) {
	if len(b) < 32+4+1 {
		return nil, errfmt.Errorf("RSA->Ed25519 cross-certificate of %d bytes, need at least 37: %w", len(b), ErrMalformed)
	}
	n := int(b[36])
	if len(b) != 37+n {
		return nil, errfmt.Errorf("RSA->Ed25519 cross-certificate: SIGLEN %d but %d signature bytes: %w", n, len(b)-37, ErrMalformed)
	}
	return &CrossCert{
		Ed25519Key:      [32]byte(b[0:32]),
		ExpirationHours: binary.BigEndian.Uint32(b[32:36]),
		Signature:       b[37:],
		Raw:             b,
	}, nil
}

// Expiration returns the instant after which c is no longer valid.
func (c *CrossCert) Expiration() time.Time {
	return time.Unix(int64(c.ExpirationHours)*3600, 0).UTC()
}

func crossCertDigest(signed []byte) []byte {
	h := sha256.New()
	h.Write([]byte(crossCertPrefix))
	h.Write(signed)
	return h.Sum(nil)
}

// Check verifies c's signature by the RSA identity key (PKCS #1 v1.5
// padding around the bare SHA-256 digest, as C tor signs it) and that c has
// not expired at now.
func (c *CrossCert) Check(identity *rsa.PublicKey, now time.Time) error {
	if err := rsa.VerifyPKCS1v15(identity, crypto.Hash(0), crossCertDigest(c.Raw[:36]), c.Signature); err != nil {
		return errfmt.Errorf("RSA->Ed25519 cross-certificate: %w (%v)", ErrBadSignature, err)
	}
	if now.After(c.Expiration()) {
		return errfmt.Errorf("RSA->Ed25519 cross-certificate expired at %s (now %s): %w", c.Expiration().Format(time.DateTime), now.UTC().Format(time.DateTime), ErrExpired)
	}
	return nil
}

// NewCrossCert makes an RSA->Ed25519 cross-certificate for edKey, signed
// with the RSA identity key.
func NewCrossCert(edKey [32]byte, expiration time.Time, identity *rsa.PrivateKey) ([]byte, error) {
	hours := (expiration.Unix() + 3599) / 3600
	if expiration.Unix() < 0 || hours > 0xffffffff {
		return nil, errfmt.Errorf("making cross-certificate: expiration %s out of range", expiration)
	}
	b := make([]byte, 0, 37+256)
	b = append(b, edKey[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(hours))
	sig, err := rsa.SignPKCS1v15(rand.Reader, identity, crypto.Hash(0), crossCertDigest(b))
	if err != nil {
		return nil, errfmt.Errorf("making cross-certificate: %w", err)
	}
	if len(sig) > 255 {
		return nil, errfmt.Errorf("making cross-certificate: signature of %d bytes does not fit SIGLEN", len(sig))
	}
	b = append(b, byte(len(sig)))
	return append(b, sig...), nil
}

// RSAIdentityBits is the size of a relay's RSA identity key (tor-spec 0.3).
const RSAIdentityBits = 1024

// Tolerances C tor allows when checking an X.509 certificate's lifetime:
// a certificate may have expired up to 48 hours ago, and become valid up to
// 30 days from now (tor_x509_check_cert_lifetime in C tor).
const (
	x509PastSlop   = 48 * time.Hour
	x509FutureSlop = 30 * 24 * time.Hour
)

// RSAIdentity is a relay's RSA identity certificate (CERTS cell type 2).
type RSAIdentity struct {
	Cert *x509.Certificate
	Key  *rsa.PublicKey
	// Fingerprint is the relay's RSA identity: the SHA-1 of the PKCS #1
	// DER encoding of Key.
	Fingerprint [20]byte
}

// ParseRSAIdentity parses a DER X.509 RSA identity certificate and checks
// that its key is 1024-bit RSA.
func ParseRSAIdentity(der []byte) (*RSAIdentity, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errfmt.Errorf("RSA identity certificate: %w: %v", ErrMalformed, err)
	}
	k, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, errfmt.Errorf("RSA identity certificate holds a %T key, want RSA: %w", c.PublicKey, ErrMalformed)
	}
	if k.N.BitLen() != RSAIdentityBits {
		return nil, errfmt.Errorf("RSA identity key of %d bits, want %d: %w", k.N.BitLen(), RSAIdentityBits, ErrMalformed)
	}
	return &RSAIdentity{Cert: c, Key: k, Fingerprint: RSAFingerprint(k)}, nil
}

// Check verifies that the certificate is correctly self-signed and within
// its lifetime at now (with C tor's tolerances).
func (r *RSAIdentity) Check(now time.Time) error {
	c := r.Cert
	// Self-signature: checked with the certificate's own key. (Not
	// CheckSignatureFrom: Tor's certificates carry no CA basic constraints.)
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		return errfmt.Errorf("RSA identity certificate is not correctly self-signed: %w (%v)", ErrBadSignature, err)
	}
	if now.After(c.NotAfter.Add(x509PastSlop)) {
		return errfmt.Errorf("RSA identity certificate expired at %s (now %s): %w", c.NotAfter.UTC().Format(time.DateTime), now.UTC().Format(time.DateTime), ErrExpired)
	}
	if now.Add(x509FutureSlop).Before(c.NotBefore) {
		return errfmt.Errorf("RSA identity certificate valid only from %s (now %s): %w", c.NotBefore.UTC().Format(time.DateTime), now.UTC().Format(time.DateTime), ErrNotYetValid)
	}
	return nil
}

// RSAFingerprint returns the SHA-1 digest of the PKCS #1 DER encoding of k:
// a relay's RSA identity fingerprint (tor-spec 0.3).
func RSAFingerprint(k *rsa.PublicKey) [20]byte {
	return sha1.Sum(x509.MarshalPKCS1PublicKey(k))
}

// NewRSAIdentity makes a self-signed X.509 identity certificate for key,
// as a relay presents in its CERTS cell (used by tests and test relays).
func NewRSAIdentity(key *rsa.PrivateKey, notBefore, notAfter time.Time) ([]byte, error) {
	serial := new(big.Int).SetUint64(uint64(notBefore.UnixNano()) | 1)
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: "www.tinytor.net"},
		NotBefore:          notBefore,
		NotAfter:           notAfter,
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, errfmt.Errorf("making RSA identity certificate: %w", err)
	}
	return der, nil
}
