package desc

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"tinytor/tor/dir/netdoc"
)

// innerHeader is a second layer without introduction points.
const innerHeader = "create2-formats 2\n"

// powSeed is a 32-byte seed and its base64 (padded, as C tor writes it).
var powSeed = func() (s [32]byte) {
	for i := range s {
		s[i] = byte(i * 7)
	}
	return s
}()

var powSeedB64 = base64.StdEncoding.EncodeToString(powSeed[:])

func TestPoWParams(t *testing.T) {
	exp := time.Date(2026, 12, 3, 18, 4, 5, 0, time.UTC)
	in, err := ParseInner([]byte(innerHeader+"flow-control 1-2 31\npow-params v1 "+powSeedB64+" 42 2026-12-03T18:04:05\n"), make(ed25519.PublicKey, 32), exp)
	if err != nil {
		t.Fatal(err)
	}
	p := in.PoW
	if p == nil || p.Seed != powSeed || p.SuggestedEffort != 42 || !p.Expires.Equal(exp) {
		t.Fatalf("pow params %+v", p)
	}
	if p.Expired(exp) || p.Expired(exp.Add(999*time.Millisecond)) || !p.Expired(exp.Add(time.Second)) {
		t.Error("expiry is C tor's expiration_time < now, in seconds")
	}

	// Accepted: no padding, unknown types (before and after v1, even
	// without more arguments), extra arguments, effort 0 and 2^32-1.
	for _, s := range []string{
		"pow-params v1 " + strings.TrimRight(powSeedB64, "=") + " 0 2026-12-03T18:04:05\n",
		"pow-params v2\npow-params v1 " + powSeedB64 + " 4294967295 2026-12-03T18:04:05 extra\npow-params x y z w\n",
		"pow-params v1x " + powSeedB64 + " bad bad\npow-params v1 " + powSeedB64 + " 7 2026-12-03T18:04:05\n",
		// strtoul's signs: "+7" is 7, "-0" is 0.
		"pow-params v1 " + powSeedB64 + " +7 2026-12-03T18:04:05\n",
		"pow-params v1 " + powSeedB64 + " -0 2026-12-03T18:04:05\n",
	} {
		in, err := ParseInner([]byte(innerHeader+s), make(ed25519.PublicKey, 32), exp)
		if err != nil || in.PoW == nil || in.PoW.Seed != powSeed {
			t.Errorf("%q: %v", s, err)
		}
	}
	// Only other types: no PoW.
	in, err = ParseInner([]byte(innerHeader+"pow-params v2 abc\n"), make(ed25519.PublicKey, 32), exp)
	if err != nil || in.PoW != nil {
		t.Errorf("unknown type: %+v, %v", in, err)
	}

	// Rejected, as C tor rejects the whole descriptor.
	for s, want := range map[string]string{
		"pow-params\n": "at least 1 argument",
		"pow-params v1 " + powSeedB64 + " 1 2026-12-03T18:04:05\npow-params v1 " + powSeedB64 + " 1 2026-12-03T18:04:05\n": "duplicate",
		"pow-params v1 " + powSeedB64 + " 1\n":                              "insufficient arguments",
		"pow-params v1 " + powSeedB64[:40] + " 1 2026-12-03T18:04:05\n":     "unparseable seed",
		"pow-params v1 " + powSeedB64 + "AAAA 1 2026-12-03T18:04:05\n":      "unparseable seed",
		"pow-params v1 !" + powSeedB64[1:] + " 1 2026-12-03T18:04:05\n":     "unparseable seed",
		"pow-params v1 " + powSeedB64 + "== 1 2026-12-03T18:04:05\n":        "unparseable seed",
		"pow-params v1 " + powSeedB64 + " 4294967296 2026-12-03T18:04:05\n": "unparseable suggested effort",
		"pow-params v1 " + powSeedB64 + " -1 2026-12-03T18:04:05\n":         "unparseable suggested effort",
		"pow-params v1 " + powSeedB64 + " 0x1 2026-12-03T18:04:05\n":        "unparseable suggested effort",
		"pow-params v1 " + powSeedB64 + " 1a 2026-12-03T18:04:05\n":         "unparseable suggested effort",
		"pow-params v1 " + powSeedB64 + " 1 2026-12-03\n":                   "unparseable expiration time",
		"pow-params v1 " + powSeedB64 + " 1 2026-12-03 18:04:05\n":          "unparseable expiration time",
		"pow-params v1 " + powSeedB64 + " 1 2026-13-03T18:04:05\n":          "unparseable expiration time",
	} {
		_, err := ParseInner([]byte(innerHeader+s), make(ed25519.PublicKey, 32), exp)
		var ne *netdoc.Error
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &ne) || ne.Keyword != "pow-params" {
			t.Errorf("%q: got %v, want an error about %q", s, err, want)
		}
	}
}
