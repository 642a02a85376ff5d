package dir

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"tinytor/tor/dir/netdoc"
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
			return certs, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, &netdoc.Error{Doc: "authority certificate", Err: errors.New("no certificate in document")}
	}
	return certs, nil
}

func parseAuthCert(t *netdoc.Tokenizer, doc []byte) (*AuthCert, error) {
	it, err := t.Next()
	if err != nil {
		return nil, err
	}
	if !it.Is("dir-key-certificate-version") {
		return nil, t.Errorf(&it, "certificate must start with dir-key-certificate-version")
	}
	if len(it.Args) < 1 || string(it.Args[0]) != "3" {
		return nil, t.Errorf(&it, "unsupported certificate version (want 3)")
	}
	c := &AuthCert{}
	start := it.Start
	seen := map[string]bool{}
	var haveFP, haveID, haveSK bool
	for {
		it, err = t.Next()
		if err == io.EOF {
			return nil, &netdoc.Error{Doc: t.Name, Err: errors.New("certificate ends without dir-key-certification")}
		}
		if err != nil {
			return nil, err
		}
		kw := string(it.Keyword)
		switch kw {
		case "dir-key-certificate-version":
			return nil, t.Errorf(&it, "new certificate starts before dir-key-certification")
		case "fingerprint", "dir-key-published", "dir-key-expires", "dir-identity-key",
			"dir-signing-key", "dir-key-crosscert", "dir-address":
			if seen[kw] {
				return nil, t.Errorf(&it, "appears more than once")
			}
			seen[kw] = true
		}
		switch kw {
		case "dir-address":
			if len(it.Args) < 1 {
				return nil, t.Errorf(&it, "missing address")
			}
			c.Address = string(it.Args[0])
		case "fingerprint":
			if len(it.Args) < 1 {
				return nil, t.Errorf(&it, "missing fingerprint")
			}
			if err := netdoc.DecodeHex(c.Fingerprint[:], it.Args[0]); err != nil {
				return nil, t.Wrap(&it, err)
			}
			haveFP = true
		case "dir-key-published":
			if c.Published, err = netdoc.TimeArgs(&it); err != nil {
				return nil, t.Wrap(&it, err)
			}
		case "dir-key-expires":
			if c.Expires, err = netdoc.TimeArgs(&it); err != nil {
				return nil, t.Wrap(&it, err)
			}
		case "dir-identity-key", "dir-signing-key":
			der, err := t.ObjectOf(&it, rsaKeyType)
			if err != nil {
				return nil, err
			}
			key, digest, err := parseRSAKey(der, 0, "")
			if err != nil {
				return nil, t.Wrap(&it, err)
			}
			if kw == "dir-identity-key" {
				c.IdentityKey, c.identityDigest, haveID = key, digest, true
			} else {
				c.SigningKey, c.SigningKeyDigest, haveSK = key, digest, true
			}
		case "dir-key-crosscert":
			if typ := string(it.ObjectType); typ != "ID SIGNATURE" && typ != "SIGNATURE" {
				return nil, t.Errorf(&it, "want an ID SIGNATURE object, got %q", typ)
			}
			if c.crossCert, err = it.Object(); err != nil {
				return nil, t.Wrap(&it, err)
			}
		case "dir-key-certification":
			if string(it.ObjectType) != "SIGNATURE" {
				return nil, t.Errorf(&it, "want a SIGNATURE object, got %q", it.ObjectType)
			}
			if c.certification, err = it.Object(); err != nil {
				return nil, t.Wrap(&it, err)
			}
			for _, k := range []string{"dir-key-published", "dir-key-expires", "dir-key-crosscert"} {
				if !seen[k] {
					return nil, t.Errorf(&it, "certificate lacks %s", k)
				}
			}
			if !haveFP || !haveID || !haveSK {
				return nil, t.Errorf(&it, "certificate lacks fingerprint, dir-identity-key or dir-signing-key")
			}
			if !c.Expires.After(c.Published) {
				return nil, t.Errorf(&it, "dir-key-expires %s is not after dir-key-published %s",
					c.Expires.Format(netdoc.TimeLayout), c.Published.Format(netdoc.TimeLayout))
			}
			// Signed: from the start through the newline after
			// "dir-key-certification".
			c.signedDigest = sha1.Sum(doc[start : it.ArgsEnd+1])
			c.Raw = append([]byte(nil), doc[start:it.End]...)
			return c, nil
		default:
			// Unknown items are ignored (dir-spec 1.2).
		}
	}
}

// rsaKeyType is the object type of an RSA public key.
const rsaKeyType = "RSA PUBLIC KEY"

// parseRSAKey parses the DER of an "RSA PUBLIC KEY" object and returns the
// key and the SHA-1 of its DER encoding. Unless bits is 0, the key must
// have that size (what names the key in the error).
func parseRSAKey(der []byte, bits int, what string) (*rsa.PublicKey, [20]byte, error) {
	key, err := x509.ParsePKCS1PublicKey(der)
	if err != nil {
		return nil, [20]byte{}, fmt.Errorf("bad RSA public key: %w", err)
	}
	if n := key.N.BitLen(); bits != 0 && n != bits {
		return nil, [20]byte{}, fmt.Errorf("wrong size on %s: %d bits (want %d)", what, n, bits)
	}
	return key, sha1.Sum(x509.MarshalPKCS1PublicKey(key)), nil
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
	fp := fmt.Sprintf("%X", c.Fingerprint)
	if c.identityDigest != c.Fingerprint {
		return fmt.Errorf("authority certificate %s: fingerprint does not match identity key (digest %X)", fp, c.identityDigest)
	}
	if err := verifyRaw(c.IdentityKey, c.signedDigest[:], c.certification); err != nil {
		return fmt.Errorf("authority certificate %s: dir-key-certification signature by identity key invalid: %w", fp, err)
	}
	if err := verifyRaw(c.SigningKey, c.identityDigest[:], c.crossCert); err != nil {
		return fmt.Errorf("authority certificate %s: dir-key-crosscert by signing key invalid: %w", fp, err)
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
		return fmt.Errorf("authority certificate %X expired at %s: %w", c.Fingerprint, c.Expires.Format(netdoc.TimeLayout), ErrCertExpired)
	}
	if c.Published.After(now.Add(CertSkew)) {
		return fmt.Errorf("authority certificate %X published at %s: %w", c.Fingerprint, c.Published.Format(netdoc.TimeLayout), ErrCertNotYetValid)
	}
	return nil
}
