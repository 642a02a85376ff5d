package cert

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// descriptorCert extracts the descriptor-signing-key-cert of the stem
// onion service descriptor, and the descriptor's signed part and signature.
func descriptorCert(t *testing.T) (certDER, signed, sig []byte) {
	t.Helper()
	certDER, signed, sig, err := readDescriptorCert()
	if err != nil {
		t.Fatal(err)
	}
	return certDER, signed, sig
}

func readDescriptorCert() (certDER, signed, sig []byte, err error) {
	doc, err := os.ReadFile("testdata/hidden_service_v3")
	if err != nil {
		return nil, nil, nil, err
	}
	s := string(doc)
	const begin, end = "-----BEGIN ED25519 CERT-----\n", "-----END ED25519 CERT-----"
	i := strings.Index(s, begin)
	j := strings.Index(s, end)
	if i < 0 || j < i {
		return nil, nil, nil, errors.New("no certificate in descriptor")
	}
	certDER, err = base64.StdEncoding.DecodeString(strings.ReplaceAll(s[i+len(begin):j], "\n", ""))
	if err != nil {
		return nil, nil, nil, err
	}
	k := strings.LastIndex(s, "\nsignature ")
	if k < 0 {
		return nil, nil, nil, errors.New("no signature line")
	}
	signed = doc[:k+1]
	sig, err = base64.RawStdEncoding.DecodeString(strings.TrimSpace(s[k+len("\nsignature "):]))
	return certDER, signed, sig, err
}

// TestDescriptorSigningCertKAT checks our parser and verifier against the
// type 08 certificate of a descriptor made by another implementation: the
// signature verifies with the embedded blinded key, and the certified key
// verifies the descriptor's own signature (rend-spec-v3 [DESC_OUTER]).
func TestDescriptorSigningCertKAT(t *testing.T) {
	der, signed, sig := descriptorCert(t)
	c, err := ParseEd25519(der)
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != TypeHSDescSigning || c.KeyType != KeyEd25519 || len(c.Extensions) != 1 || c.SignedWithKey == nil {
		t.Fatalf("unexpected fields: type %v keytype %d exts %d", c.Type, c.KeyType, len(c.Extensions))
	}
	if got, want := hex.EncodeToString(c.SignedWithKey), "548697defd6777a7f33be03a61b0670831e7bf9e943d053ce4cc2c93c959836f"; got != want {
		t.Fatalf("blinded key %s, want %s", got, want)
	}
	if got, want := c.ExpirationHours, uint32(0x00065e7f); got != want {
		t.Fatalf("expiration hours %#x, want %#x", got, want)
	}
	if err := c.Verify(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(c.SignedWithKey); err != nil {
		t.Fatal(err)
	}
	before := c.Expiration().Add(-time.Hour)
	if err := c.Check(nil, before); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(nil, c.Expiration().Add(time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("after expiry: %v", err)
	}
	msg := append([]byte("Tor onion service descriptor sig v3"), signed...)
	if !ed25519.Verify(c.CertifiedEd25519(), msg, sig) {
		t.Fatal("certified key does not verify the descriptor signature")
	}
	// A wrong expected signer is refused even though the extension key works.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := c.Verify(other); !errors.Is(err, ErrWrongSigner) {
		t.Fatalf("wrong signer: %v", err)
	}
	// Any flipped bit breaks the signature or the parse.
	for _, i := range []int{1, 5, 10, 45, len(der) - 1} {
		bad := bytes.Clone(der)
		bad[i] ^= 0x10
		if b, err := ParseEd25519(bad); err == nil && b.Verify(c.SignedWithKey) == nil {
			t.Errorf("flipped byte %d still verifies", i)
		}
	}
}

func TestEd25519RoundTrip(t *testing.T) {
	idPub, idPriv, _ := ed25519.GenerateKey(rand.Reader)
	sPub, _, _ := ed25519.GenerateKey(rand.Reader)
	exp := time.Date(2030, 1, 1, 0, 30, 0, 0, time.UTC)
	der, err := NewEd25519(Ed25519Template{Type: TypeIdentitySigning, Expiration: exp, KeyType: KeyEd25519, CertifiedKey: [32]byte(sPub), IncludeSigner: true}, idPriv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseEd25519(der)
	if err != nil {
		t.Fatal(err)
	}
	if !c.SignedWithKey.Equal(idPub) || !c.CertifiedEd25519().Equal(sPub) || !c.Expiration().Equal(exp.Add(30*time.Minute)) {
		t.Fatalf("fields: %+v", c)
	}
	if err := c.Check(idPub, exp); err != nil {
		t.Fatal(err)
	}
	// Without the extension the signer must be given.
	der2, _ := NewEd25519(Ed25519Template{Type: TypeSigningLink, Expiration: exp, KeyType: KeySHA256OfX509}, idPriv)
	c2, err := ParseEd25519(der2)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Verify(nil); !errors.Is(err, ErrWrongSigner) {
		t.Fatalf("no signer: %v", err)
	}
	if err := c2.Verify(idPub); err != nil {
		t.Fatal(err)
	}
	c2.Signature[0] ^= 1
	if err := c2.Verify(idPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bad signature: %v", err)
	}
}

func TestEd25519Malformed(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := NewEd25519(Ed25519Template{Type: TypeIdentitySigning, Expiration: time.Now(), KeyType: KeyEd25519, IncludeSigner: true}, priv)
	cases := map[string][]byte{
		"short":    der[:MinEd25519Len-1],
		"version":  append([]byte{2}, der[1:]...),
		"trailing": append(bytes.Clone(der), 0),
		"cut ext":  append(bytes.Clone(der[:ed25519HeaderLen+2]), make([]byte, 64)...),
	}
	// An unknown extension with AFFECTS_VALIDATION.
	crit := bytes.Clone(der[:ed25519HeaderLen])
	crit[39] = 1
	crit = append(crit, 0, 1, 9, FlagAffectsValidation, 0xaa)
	crit = append(crit, make([]byte, 64)...)
	cases["critical"] = crit
	for name, b := range cases {
		_, err := ParseEd25519(b)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		want := ErrMalformed
		if name == "critical" {
			want = ErrUnknownCritExt
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The same unknown extension without the flag is accepted.
	crit[ed25519HeaderLen+3] = 0
	if _, err := ParseEd25519(crit); err != nil {
		t.Errorf("non-critical unknown extension: %v", err)
	}
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func TestCrossCert(t *testing.T) {
	k := testRSAKey(t)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	exp := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
	der, err := NewCrossCert([32]byte(edPub), exp, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCrossCert(der)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ed25519Key != [32]byte(edPub) || !c.Expiration().Equal(exp) || len(c.Signature) != 128 {
		t.Fatalf("fields: %+v", c)
	}
	if err := c.Check(&k.PublicKey, exp); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(&k.PublicKey, exp.Add(time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	bad := bytes.Clone(der)
	bad[0] ^= 1
	cb, _ := ParseCrossCert(bad)
	if err := cb.Check(&k.PublicKey, exp); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := ParseCrossCert(der[:len(der)-1]); !errors.Is(err, ErrMalformed) {
		t.Fatal("short signature accepted")
	}
}

func TestRSAIdentity(t *testing.T) {
	k := testRSAKey(t)
	now := time.Now()
	der, err := NewRSAIdentity(k, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	id, err := ParseRSAIdentity(der)
	if err != nil {
		t.Fatal(err)
	}
	if id.Fingerprint != RSAFingerprint(&k.PublicKey) {
		t.Fatal("fingerprint")
	}
	if err := id.Check(now); err != nil {
		t.Fatal(err)
	}
	if err := id.Check(now.Add(365*24*time.Hour + 49*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := id.Check(now.Add(-31 * 24 * time.Hour)); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("not yet valid: %v", err)
	}
	// Signed by another key: not self-signed.
	k2, _ := rsa.GenerateKey(rand.Reader, 1024)
	forged := *id.Cert
	forged.Signature = bytes.Clone(id.Cert.Signature)
	forged.Signature[3] ^= 1
	if err := (&RSAIdentity{Cert: &forged, Key: id.Key}).Check(now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bad self-signature: %v", err)
	}
	_ = k2
	// A 2048-bit key is refused.
	big, _ := rsa.GenerateKey(rand.Reader, 2048)
	der2, _ := NewRSAIdentity(big, now.Add(-time.Hour), now.Add(time.Hour))
	if _, err := ParseRSAIdentity(der2); !errors.Is(err, ErrMalformed) {
		t.Fatalf("2048-bit: %v", err)
	}
}

// TestRSAFingerprintKAT checks the fingerprint rule against a value
// computed independently with
//
//	openssl rsa -in testdata/rsa1024.pem -RSAPublicKey_out -outform DER | sha1sum
func TestRSAFingerprintKAT(t *testing.T) {
	b, err := os.ReadFile("testdata/rsa1024.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	fp := RSAFingerprint(&k.PublicKey)
	if got, want := hex.EncodeToString(fp[:]), "bb103f108422b79752a426e518f8426244921a29"; got != want {
		t.Fatalf("fingerprint %s, want %s", got, want)
	}
}
