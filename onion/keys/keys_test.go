package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"tinytor/onion/addr"
	"tinytor/tor/cert"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// C tor test_hs_common.c test_blinding_basics.
func TestBlindingCTorVector(t *testing.T) {
	pub := unhex(t, "833990B085C1A688C1D4C8B1F6B56AFAF5A2ECA674449E1D704F83765CCB7BC6")
	sec := unhex(t, "D8C7FF0E31295B66540D789AF3E3DF992038A9592EEA01D8B7CBA06D6E66D159"+
		"4D6167696320576F7264733A20737065697373636F62616C742062697669756D")
	instant := time.Date(1973, 5, 20, 1, 50, 33, 0, time.UTC)
	if n := LivePeriods().Num(instant); n != 1234 {
		t.Fatalf("period of %v = %d, want 1234", instant, n)
	}
	param := BlindingParam(pub, 1234, 1440)
	if got := hex.EncodeToString(param[:]); got != strings.ToLower("379E50DB31FEE6775ABD0AF6FB7C371E060308F4F847DB09FE4CFE13AF602287") {
		t.Errorf("param = %s", got)
	}
	bp, err := BlindPublic(pub, 1234, 1440)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bp, unhex(t, "3A50BF210E8F9EE955AE0014F7A6917FB65EBF098A86305ABB508D1A7291B6D5")) {
		t.Errorf("blinded public = %x", bp)
	}
	sub := Subcredential(pub, bp)
	if !bytes.Equal(sub[:], unhex(t, "635D55907816E8D76398A675A50B1C2F3E36B42A5CA77BA3A0441285161AE07D")) {
		t.Errorf("subcredential = %x", sub)
	}
	k, err := FromExpanded(sec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Public(), pub) {
		t.Fatalf("public of secret = %x", k.Public())
	}
	bk := k.Blind(1234, 1440)
	if !bytes.Equal(bk.Public(), bp) {
		t.Errorf("blinded key pair public %x != %x", bk.Public(), bp)
	}
	want := unhex(t, "A958DC83AC885F6814C67035DE817A2C604D5D2F715282079448F789B656350B"+
		"4540FE1F80AA3F7E91306B7BF7A8E367293352B14A29FDCC8C19F3558075524B")
	if !bytes.Equal(bk.Expanded(), want) {
		t.Errorf("blinded secret = %x", bk.Expanded())
	}
}

func TestSignVerifies(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	k, err := FromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Public().Equal(pub) {
		t.Fatal("public key differs from crypto/ed25519's")
	}
	msg := []byte("hello onion")
	// Same deterministic signature as crypto/ed25519.
	if !bytes.Equal(k.Sign(msg), ed25519.Sign(priv, msg)) {
		t.Error("signature differs from crypto/ed25519")
	}
	bk := k.Blind(42, 1440)
	sig := bk.Sign(msg)
	if !ed25519.Verify(bk.Public(), msg, sig) {
		t.Error("blinded signature does not verify")
	}
	if ed25519.Verify(bk.Public(), []byte("other"), sig) {
		t.Error("blinded signature verifies a different message")
	}
	bp, _ := BlindPublic(pub, 42, 1440)
	if !bp.Equal(bk.Public()) {
		t.Error("BlindPublic != Blind().Public()")
	}
	bp2, _ := BlindPublic(pub, 43, 1440)
	bp3, _ := BlindPublic(pub, 42, 480)
	if bp2.Equal(bp) || bp3.Equal(bp) {
		t.Error("blinded key does not depend on period or length")
	}
}

func TestCertSignedByBlindedKey(t *testing.T) {
	id, _ := GenerateKey()
	bk := id.Blind(7, 1440)
	descPub, _, _ := ed25519.GenerateKey(nil)
	now := time.Unix(1700000000, 0)
	var ck [32]byte
	copy(ck[:], descPub)
	raw := bk.Cert(cert.Ed25519Template{Type: cert.TypeHSDescSigning, Expiration: now.Add(3 * time.Hour),
		KeyType: cert.KeyEd25519, CertifiedKey: ck, IncludeSigner: true})
	c, err := cert.ParseEd25519(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(nil, now); err != nil {
		t.Fatal(err)
	}
	if !c.SignedWithKey.Equal(bk.Public()) || c.CertifiedKey != ck || c.Type != cert.TypeHSDescSigning {
		t.Error("fields differ")
	}
	raw[len(raw)-1] ^= 1
	c, _ = cert.ParseEd25519(raw)
	if err := c.Check(nil, now); !errors.Is(err, cert.ErrBadSignature) {
		t.Errorf("tampered cert: %v", err)
	}
}

func TestPeriodsSpecExample(t *testing.T) {
	p := LivePeriods()
	tm := time.Date(2016, 4, 13, 11, 15, 1, 0, time.UTC)
	if n := p.Num(tm); n != 16903 {
		t.Errorf("Num = %d, want 16903", n)
	}
	if s := p.Start(16903); !s.Equal(time.Date(2016, 4, 12, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("Start = %v", s)
	}
	// C tor test_time_period.
	tm = time.Date(2016, 4, 13, 11, 59, 59, 0, time.UTC)
	if n := p.Num(tm); n != 16903 {
		t.Errorf("Num(11:59:59) = %d", n)
	}
	if s := p.NextStart(tm); !s.Equal(time.Date(2016, 4, 13, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("NextStart = %v", s)
	}
	tm = tm.Add(time.Second)
	if n := p.Num(tm); n != 16904 {
		t.Errorf("Num(12:00) = %d", n)
	}
	if s := p.NextStart(tm); !s.Equal(time.Date(2016, 4, 14, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("NextStart = %v", s)
	}
}

// C tor test_time_between_tp_and_srv.
func TestInTPToSRV(t *testing.T) {
	p := LivePeriods()
	for _, c := range []struct {
		va   time.Time
		want bool
	}{
		{time.Date(1985, 10, 26, 0, 0, 0, 0, time.UTC), false},
		{time.Date(1985, 10, 26, 11, 0, 0, 0, time.UTC), false},
		{time.Date(1985, 10, 26, 12, 0, 0, 0, time.UTC), true},
		{time.Date(1985, 10, 26, 23, 0, 0, 0, time.UTC), true},
		{time.Date(1985, 10, 27, 0, 0, 0, 0, time.UTC), false},
	} {
		if got := p.InTPToSRV(c.va); got != c.want {
			t.Errorf("InTPToSRV(%v) = %v", c.va, got)
		}
	}
}

func TestPeriodsFor(t *testing.T) {
	p, err := PeriodsFor(20*time.Second, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.LengthMinutes != 8 || p.Offset != 4*time.Minute {
		t.Errorf("test network periods = %+v", p)
	}
	// Periods start every 8 minutes, 4 minutes after a multiple of 8.
	base := time.Unix(0, 0).Add(1000*8*time.Minute + 4*time.Minute)
	if p.Num(base) != 1000 || p.Num(base.Add(-time.Second)) != 999 || !p.Start(1000).Equal(base) {
		t.Errorf("test network period numbering wrong: %d %d %v", p.Num(base), p.Num(base.Add(-time.Second)), p.Start(1000))
	}
	// The "TP to SRV" half is the second half of each SRV run.
	if p.InTPToSRV(base.Add(-4*time.Minute)) || !p.InTPToSRV(base) || !p.InTPToSRV(base.Add(3*time.Minute+40*time.Second)) {
		t.Error("InTPToSRV on the test network")
	}
	live, _ := PeriodsFor(time.Hour, false, 0)
	if live != LivePeriods() {
		t.Errorf("live = %+v", live)
	}
	if q, _ := PeriodsFor(time.Hour, false, 5); q.LengthMinutes != MinPeriodMinutes {
		t.Errorf("clamp low: %d", q.LengthMinutes)
	}
	if _, err := PeriodsFor(0, true, 0); !errors.Is(err, ErrPeriods) {
		t.Error("zero interval accepted")
	}
}

func TestFiles(t *testing.T) {
	k, _ := GenerateKey()
	f := k.SecretKeyFile()
	if len(f) != 96 || !bytes.HasPrefix(f, []byte("== ed25519v1-secret: type0 ==\x00\x00\x00")) {
		t.Fatalf("secret file %q", f[:32])
	}
	k2, err := ParseSecretKeyFile(f)
	if err != nil || !k2.Public().Equal(k.Public()) {
		t.Fatalf("round trip: %v", err)
	}
	pf := PublicKeyFile(k.Public())
	if len(pf) != 64 || !bytes.HasPrefix(pf, []byte("== ed25519v1-public: type0 ==\x00\x00\x00")) {
		t.Fatalf("public file %q", pf[:32])
	}
	p2, err := ParsePublicKeyFile(pf)
	if err != nil || !p2.Equal(k.Public()) {
		t.Fatalf("public round trip: %v", err)
	}
	h, err := HostnameFile(k.Public())
	if err != nil || !bytes.HasSuffix(h, []byte(".onion\n")) || len(h) != 63 {
		t.Fatalf("hostname %q %v", h, err)
	}
	a, err := ParseHostnameFile(h)
	if err != nil || !a.PublicKey().Equal(k.Public()) {
		t.Fatalf("hostname round trip %v", err)
	}
	if _, err := ParseSecretKeyFile(f[:95]); !errors.Is(err, ErrKey) {
		t.Error("short secret file accepted")
	}
	bad := bytes.Clone(f)
	bad[3] = 'X'
	if _, err := ParseSecretKeyFile(bad); !errors.Is(err, ErrKey) {
		t.Error("bad header accepted")
	}
	if _, err := ParsePublicKeyFile(f); !errors.Is(err, ErrKey) {
		t.Error("secret file accepted as public")
	}
}

// The stem descriptor: its descriptor-signing-key-cert is signed by the
// blinded key of sltib6sx...onion for some day in 2017 (1440-minute
// periods); check that period's blinded key matches.
func TestStemDescriptorBlindedKey(t *testing.T) {
	raw, err := os.ReadFile("testdata/hidden_service_v3")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, "-----BEGIN ED25519 CERT-----\n")
	j := strings.Index(s, "-----END ED25519 CERT-----")
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s[i+29:j], "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cert.ParseEd25519(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(nil); err != nil {
		t.Fatal(err)
	}
	a, err := addr.Parse("sltib6sxkuxh2scmtuvd5w2g7pahnzkovefxpo4e4ptnkzl5kkq5h2ad.onion")
	if err != nil {
		t.Fatal(err)
	}
	const period = 17391
	bp, err := BlindPublic(a.PublicKey(), period, 1440)
	if err != nil {
		t.Fatal(err)
	}
	if !bp.Equal(c.SignedWithKey) {
		exp := c.Expiration()
		found := false
		for n := LivePeriods().Num(exp) - 400; n < LivePeriods().Num(exp)+400; n++ {
			if b, _ := BlindPublic(a.PublicKey(), n, 1440); b.Equal(c.SignedWithKey) {
				t.Errorf("blinded key matches period %d, not %d", n, period)
				found = true
			}
		}
		if !found {
			t.Errorf("no period near %v gives the descriptor's blinded key %x", exp, []byte(c.SignedWithKey))
		}
	}
}

// Key files written by C tor 0.4.9 for a fresh onion service
// (testdata/ctor: HiddenServiceDir of a tor run with DisableNetwork 1).
func TestCTorKeyFiles(t *testing.T) {
	sec, err := os.ReadFile("testdata/ctor/hs_ed25519_secret_key")
	if err != nil {
		t.Fatal(err)
	}
	pubf, _ := os.ReadFile("testdata/ctor/hs_ed25519_public_key")
	host, _ := os.ReadFile("testdata/ctor/hostname")
	k, err := ParseSecretKeyFile(sec)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyFile(pubf)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Public().Equal(pub) {
		t.Fatal("public key derived from C tor's secret key differs from its public key file")
	}
	a, err := ParseHostnameFile(host)
	if err != nil || !a.PublicKey().Equal(pub) {
		t.Fatalf("hostname: %v", err)
	}
	if h, _ := HostnameFile(pub); !bytes.Equal(h, host) {
		t.Errorf("hostname file %q, C tor wrote %q", h, host)
	}
	if !bytes.Equal(k.SecretKeyFile(), sec) || !bytes.Equal(PublicKeyFile(pub), pubf) {
		t.Error("re-encoded key files differ from C tor's")
	}
}
