package dir

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"io"
	"time"

	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
)

// AuthCert is a directory authority key certificate (dir-spec 3.1): it
// binds an authority's medium-term signing key to its long-term identity
// key.
type AuthCert struct {
	// Fingerprint is the authority's v3ident: SHA-1 of the DER encoding of
	// its identity key, as stated in the "fingerprint" line.
	Fingerprint [20]byte
	// Address is the optional "dir-address" (IP:port), "" if absent.
	Address   string
	Published time.Time
	Expires   time.Time
	// IdentityKey is the authority's long-term RSA identity key.
	IdentityKey *rsa.PublicKey
	// SigningKey is the authority's medium-term signing key.
	SigningKey *rsa.PublicKey
	// SigningKeyDigest is SHA-1 of the DER encoding of SigningKey, as named
	// in the consensus's directory-signature lines.
	SigningKeyDigest [20]byte
	// Raw is the certificate's text (for caching).
	Raw []byte

	identityDigest [20]byte // SHA-1 of the identity key DER
	signedDigest   [20]byte // SHA-1 of the signed portion
	crossCert      []byte
	certification  []byte
}

// ErrCertExpired and ErrCertNotYetValid are returned (wrapped) by
// AuthCert.Verify for certificates outside their validity.
var (
	ErrCertExpired     = errors.New("authority certificate expired")
	ErrCertNotYetValid = errors.New("authority certificate published in the future")
)

// CertSkew is the clock skew tolerated when checking certificate times.
const CertSkew = 24 * time.Hour

// ParseAuthCerts parses a concatenation of key certificates, as served at
// /tor/keys/... and stored in cached-certs. It does not verify them. On
// error, the certificates before the malformed one are returned as well.
func ParseAuthCerts(doc []byte) ([]*AuthCert, error) {
	t := netdoc.NewTokenizer("authority certificate", doc)
	var certs []*AuthCert
	for {
		c, err := parseAuthCert(t, doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			return certs, errfmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, t.FailLine(0, "no certificate in document")
	}
	return certs, nil
}

// certItems are the items of a key certificate parseAuthCert reads, each
// allowed once; the first certRequired are required. Bit i of its seen
// set is certItems[i].
var certItems = [...]string{"dir-key-published", "dir-key-expires", "dir-key-crosscert",
	"fingerprint", "dir-identity-key", "dir-signing-key", "dir-address"}

// Indexes in certItems.
const (
	cPublished = iota
	cExpires
	cCrossCert
	cFingerprint
	cIdentityKey
	cSigningKey
	cAddress

	certRequired = cSigningKey + 1
)

func parseAuthCert(t *netdoc.Tokenizer, doc []byte) (*AuthCert, error) {
	it, err := t.Scan()
	if err != nil {
		return nil, err
	}
	if !it.Is("dir-key-certificate-version") {
		return nil, t.Fail(it, "certificate must start with dir-key-certificate-version")
	}
	if len(it.Args) < 1 || string(it.Args[0]) != "3" {
		return nil, t.Fail(it, "unsupported certificate version (want 3)")
	}
	c := &AuthCert{}
	start := it.Start
	var seen uint8
	for it, err = t.Scan(); err == nil && !it.Is("dir-key-certification"); it, err = t.Scan() {
		if it.Is("dir-key-certificate-version") {
			return nil, t.Fail(it, "new certificate starts before dir-key-certification")
		}
		k := -1
		for i, kw := range certItems {
			if it.Is(kw) {
				k = i
				break
			}
		}
		switch {
		case k < 0:
			continue // unknown items are ignored (dir-spec 1.2)
		case seen&(1<<k) != 0:
			return nil, t.Fail(it, "appears more than once")
		case k == cAddress && len(it.Args) < 1:
			return nil, t.Fail(it, "missing address")
		case k == cFingerprint && len(it.Args) < 1:
			return nil, t.Fail(it, "missing fingerprint")
		}
		seen |= 1 << k
		var der []byte
		switch k {
		case cAddress:
			c.Address = string(it.Args[0])
		case cFingerprint:
			err = netdoc.DecodeHex(c.Fingerprint[:], it.Args[0])
		case cPublished, cExpires:
			times := [...]*time.Time{&c.Published, &c.Expires}
			*times[k-cPublished], err = netdoc.TimeArgs(it)
		case cIdentityKey, cSigningKey:
			if der, err = t.ObjectOf(it, rsaKeyType); err != nil {
				return nil, err
			}
			key, digest, kerr := parseRSAKey(der, 0, "")
			if k == cIdentityKey {
				c.IdentityKey, c.identityDigest = key, digest
			} else {
				c.SigningKey, c.SigningKeyDigest = key, digest
			}
			err = kerr
		case cCrossCert:
			typ := "ID SIGNATURE"
			if string(it.ObjectType) == "SIGNATURE" {
				typ = "SIGNATURE"
			}
			if c.crossCert, err = t.ObjectOf(it, typ); err != nil {
				return nil, err
			}
		}
		if err != nil {
			return nil, t.Wrap(it, err)
		}
	}
	if err == io.EOF {
		return nil, t.FailLine(0, "certificate ends without dir-key-certification")
	}
	if err != nil {
		return nil, err
	}
	if c.certification, err = t.ObjectOf(it, "SIGNATURE"); err != nil {
		return nil, err
	}
	for i, kw := range certItems[:certRequired] {
		if seen&(1<<i) == 0 {
			return nil, t.Fail(it, "certificate lacks %s", []byte(kw))
		}
	}
	if !c.Expires.After(c.Published) {
		return nil, t.Errorf(it, "dir-key-expires %s is not after dir-key-published %s", netdoc.Time(c.Expires), netdoc.Time(c.Published))
	}
	// Signed: from the start through the newline after
	// "dir-key-certification".
	c.signedDigest = sha1.Sum(doc[start : it.ArgsEnd+1])
	c.Raw = append([]byte(nil), doc[start:it.End]...)
	return c, nil
}

// rsaKeyType is the object type of an RSA public key.
const rsaKeyType = "RSA PUBLIC KEY"

// parseRSAKey parses the DER of an "RSA PUBLIC KEY" object (PKCS #1) as
// strictly as C tor's OpenSSL does: the encoding must be canonical (the
// key re-encodes to the same bytes) and the modulus positive. It returns
// the key and the SHA-1 of its DER encoding. Unless bits is 0, the key
// must have that size (what names the key in the error).
func parseRSAKey(der []byte, bits int, what string) (*rsa.PublicKey, [20]byte, error) {
	key, err := x509.ParsePKCS1PublicKey(der)
	if err != nil {
		return nil, [20]byte{}, netdoc.Reason(err, "bad RSA public key")
	}
	enc := x509.MarshalPKCS1PublicKey(key)
	if key.N.Sign() <= 0 || !bytes.Equal(enc, der) {
		return nil, [20]byte{}, netdoc.Message("bad RSA public key: not a positive modulus and exponent in canonical DER")
	}
	if n := key.N.BitLen(); bits != 0 && n != bits {
		return nil, [20]byte{}, errfmt.Errorf("wrong size on %s: %d bits (want %d)", what, n, bits)
	}
	return key, sha1.Sum(enc), nil
}

// parseOnionKey parses a TAP onion key, which must have 1024 bits and the
// exponent 65537 (C tor's router_parse_entry_from_string and
// microdescs_parse_from_string).
func parseOnionKey(der []byte) (*rsa.PublicKey, error) {
	key, _, err := parseRSAKey(der, 1024, "key")
	if err == nil && key.E != 65537 {
		err = errfmt.Errorf("onion key has invalid exponent %d (want 65537)", key.E)
	}
	return key, err
}

// verifyRaw checks a Tor RSA signature: PKCS#1 v1.5 padding over the raw
// digest, without a DigestInfo (dir-spec 1.3).
func verifyRaw(key *rsa.PublicKey, digest, sig []byte) error {
	return rsa.VerifyPKCS1v15(key, crypto.Hash(0), digest, sig)
}

// VerifySignatures checks the certificate's cryptography without looking at
// time: the fingerprint is the identity key's digest, the identity key
// signs the certificate, and the signing key cross-certifies the identity.
func (c *AuthCert) VerifySignatures() error {
	fp := hexID(c.Fingerprint[:])
	if c.identityDigest != c.Fingerprint {
		return netdoc.Reason(nil, "authority certificate %s: fingerprint does not match identity key (digest %s)", fp, hexID(c.identityDigest[:]))
	}
	if err := verifyRaw(c.IdentityKey, c.signedDigest[:], c.certification); err != nil {
		return netdoc.Reason(err, "authority certificate %s: dir-key-certification signature by identity key invalid", fp)
	}
	if err := verifyRaw(c.SigningKey, c.identityDigest[:], c.crossCert); err != nil {
		return netdoc.Reason(err, "authority certificate %s: dir-key-crosscert by signing key invalid", fp)
	}
	return nil
}

// Verify checks the signatures (VerifySignatures) and that now lies between
// the publication and expiry times, with CertSkew of tolerance for a
// publication time in the future.
func (c *AuthCert) Verify(now time.Time) error {
	if err := c.VerifySignatures(); err != nil {
		return err
	}
	if now.After(c.Expires) {
		return errfmt.Errorf("authority certificate %X expired at %s: %w", c.Fingerprint, netdoc.Time(c.Expires), ErrCertExpired)
	}
	if c.Published.After(now.Add(CertSkew)) {
		return errfmt.Errorf("authority certificate %X published at %s: %w", c.Fingerprint, netdoc.Time(c.Published), ErrCertNotYetValid)
	}
	return nil
}
