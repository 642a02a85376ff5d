package addr

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"filippo.io/edwards25519"
)

// Example addresses from rend-spec-v3 section 6.
var specAddrs = []string{
	"pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion",
	"sp3k262uwy4r2k3ycr5awluarykdpag6a7y33jxop4cs2lu5uz5sseqd.onion",
	"xa4r2iadxm55fbnqgwwi5mymqdcofiu3w6rpbtqn7b2dyn7mgwj64jyd.onion",
}

func TestSpecExamples(t *testing.T) {
	for _, s := range specAddrs {
		a, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if a.String() != s {
			t.Errorf("String() = %q, want %q", a.String(), s)
		}
	}
}

// The stem descriptor's address and its identity key (the key is the
// base32 decoding, checked against the descriptor's blinded key in
// onion/keys).
func TestStemAddress(t *testing.T) {
	const s = "sltib6sxkuxh2scmtuvd5w2g7pahnzkovefxpo4e4ptnkzl5kkq5h2ad.onion"
	a, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Host(); got != strings.TrimSuffix(s, ".onion") {
		t.Errorf("Host() = %q", got)
	}
}

func TestForms(t *testing.T) {
	base := strings.TrimSuffix(specAddrs[0], ".onion")
	want, _ := Parse(specAddrs[0])
	for _, s := range []string{
		base,
		strings.ToUpper(base) + ".ONION",
		"www." + base + ".onion",
		"a.b.c." + base + ".onion.",
		base + ".onion.",
	} {
		a, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%q): %v", s, err)
			continue
		}
		if a != want {
			t.Errorf("Parse(%q) = %x", s, a.Key)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for i := 0; i < 20; i++ {
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := FromKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Parse(a.String())
		if err != nil {
			t.Fatalf("Parse(%q): %v", a, err)
		}
		if !pub.Equal(b.PublicKey()) {
			t.Fatalf("round trip changed the key")
		}
	}
}

// withKeyAndVersion encodes key and version with a correct checksum for
// that version.
func encodeRaw(key []byte, version byte, fixChecksum bool) string {
	raw := make([]byte, rawLen)
	copy(raw, key)
	c := checksum(key)
	raw[32], raw[33] = c[0], c[1]
	if !fixChecksum {
		raw[33] ^= 1
	}
	raw[34] = version
	return strings.ToLower(enc.EncodeToString(raw)) + ".onion"
}

func TestErrors(t *testing.T) {
	good := strings.TrimSuffix(specAddrs[1], ".onion")
	a, _ := Parse(good)
	// A key with a torsion component: A + T where T has order 2 (0, -1).
	tEnc, _ := hex.DecodeString("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	tp, err := new(edwards25519.Point).SetBytes(tEnc)
	if err != nil {
		t.Fatal(err)
	}
	ap, _ := new(edwards25519.Point).SetBytes(a.Key[:])
	torsioned := new(edwards25519.Point).Add(ap, tp).Bytes()

	cases := []struct {
		in   string
		want error
	}{
		{"", ErrLength},
		{good[:55] + ".onion", ErrLength},
		{good + "a.onion", ErrLength},
		{"1" + good[1:], ErrBase32},
		{good[:55] + "8", ErrBase32},
		{encodeRaw(a.Key[:], 3, false), ErrChecksum},
		{encodeRaw(a.Key[:], 2, true), ErrVersion},
		{encodeRaw(torsioned, 3, true), ErrKey},
		{encodeRaw(edwards25519.NewIdentityPoint().Bytes(), 3, true), ErrKey},
		{"facebookcorewwwi.onion", ErrLength},
	}
	for _, c := range cases {
		_, err := Parse(c.in)
		if !errors.Is(err, c.want) {
			t.Errorf("Parse(%q) = %v, want %v", c.in, err, c.want)
		}
	}
}

func TestIsOnion(t *testing.T) {
	for s, want := range map[string]bool{
		"x.onion": true, "X.ONION.": true, "onion": false, "example.com": false, ".onion": true,
	} {
		if got := IsOnion(s); got != want {
			t.Errorf("IsOnion(%q) = %v", s, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range specAddrs {
		f.Add(s)
	}
	f.Add("www." + specAddrs[0])
	f.Add("")
	f.Add("....onion")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		b, err := Parse(a.String())
		if err != nil || a != b {
			t.Fatalf("re-parse of %q: %v", a, err)
		}
	})
}
