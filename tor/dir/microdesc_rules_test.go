package dir

import (
	"bufio"
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
)

// TestCTorMDParseTestData feeds C tor's own MD_PARSE_TEST_DATA (from
// src/test/test_microdesc.c; see testdata/ctor-md-parse-test-data.expected
// for its origin and testdata/ctor-LICENSE for its licence) and checks
// that the same 14 of its 18 entries are kept as in C tor's test_md_parse,
// with the digests and fields C tor's test checks.
func TestCTorMDParseTestData(t *testing.T) {
	doc := mustRead(t, "ctor-md-parse-test-data")
	var wantKept, wantSkipped []string
	var labels []string
	sc := bufio.NewScanner(bytes.NewReader(mustRead(t, "ctor-md-parse-test-data.expected")))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] == "#" {
			continue
		}
		if f[0] == "kept" {
			wantKept = append(wantKept, f[1])
		} else {
			wantSkipped = append(wantSkipped, f[1])
			labels = append(labels, f[2])
		}
	}
	if len(wantKept) != 14 || len(wantSkipped) != 4 {
		t.Fatalf("expected file: %d kept, %d skipped", len(wantKept), len(wantSkipped))
	}

	mds, err := ParseMicrodescs(doc)
	var sk *SkippedMicrodescsError
	if !errors.As(err, &sk) {
		t.Fatalf("error %v, want a *SkippedMicrodescsError", err)
	}
	if len(mds) != 14 || len(sk.Skipped) != 4 || sk.Kept != 14 {
		t.Fatalf("kept %d, skipped %d; C tor keeps 14 and reports 4", len(mds), len(sk.Skipped))
	}
	for i, md := range mds {
		if got := hex.EncodeToString(md.Digest[:]); got != wantKept[i] {
			t.Errorf("kept %d: digest %s, want %s", i, got, wantKept[i])
		}
	}
	// C tor's reasons: bad base64 in the onion key, a bogus ntor key, an
	// RSA exponent of 3, a last-listed annotation that is not a time.
	reasons := []string{"invalid base64 character", "\"ntor-onion-key\": base64 value", "invalid exponent", "bad last-listed time"}
	for i, s := range sk.Skipped {
		if got := hex.EncodeToString(s.Digest[:]); got != wantSkipped[i] {
			t.Errorf("%s: digest %s, want %s", labels[i], got, wantSkipped[i])
		}
		if !strings.Contains(s.Error(), reasons[i]) {
			t.Errorf("%s: %v, want %q", labels[i], s, reasons[i])
		}
		if !bytes.HasPrefix(doc[s.Offset:], []byte("onion-key\n")) && !bytes.HasPrefix(doc[s.Offset:], []byte("@last-listed")) {
			t.Errorf("%s: offset %d is not the entry's start", labels[i], s.Offset)
		}
		if n := bytes.Count(doc[:s.Offset], []byte("\n")) + 1; n != s.Line {
			t.Errorf("%s: line %d, want %d", labels[i], s.Line, n)
		}
	}

	// The spot checks of C tor's test_md_parse, with its hex digests.
	hexOf := func(i int) string { return hex.EncodeToString(mds[i].Digest[:]) }
	if hexOf(5) != "54bb6d733ddeb375d2456c79ae103961da0cae29620375ac4cf13d54da4d92b3" || !mds[5].HasNtorKey {
		t.Errorf("md 5: %s %+v", hexOf(5), mds[5])
	}
	if hexOf(6) != "53f740bd222ab37f19f604b1d3759aa65eff1fbce9ac254bd0fa50d4af9b1bae" || mds[6].Policy != nil {
		t.Errorf("md 6 (bogus policy kept, without policy): %s %v", hexOf(6), mds[6].Policy)
	}
	if hexOf(8) != "a0a155562d8093d8fd0feb7b93b7226e17f056c2142aab7a4ea8c5867a0376d5" || !mds[8].HasNtorKey {
		t.Errorf("md 8: %s %+v", hexOf(8), mds[8])
	}
	if hexOf(10) != "409ebd87d23925a2732bd467a92813c921ca378fcb9ca193d354c51550b6d5e9" {
		t.Errorf("md 10: %s", hexOf(10))
	}
	for i := 10; i <= 13; i++ {
		if !mds[i].IPv6.Addr().Is6() || mds[i].IPv6.Port() != 9090 {
			t.Errorf("md %d: IPv6 %v", i, mds[i].IPv6)
		}
	}
	rejectStar := func(md *Microdesc) bool { return !md.Policy.Allows(80) && !md.Policy6.Allows(80) }
	if !rejectStar(mds[10]) || !rejectStar(mds[11]) || rejectStar(mds[12]) || rejectStar(mds[13]) {
		t.Errorf("policy_is_reject_star: want 1 1 0 0, got %v %v %v %v",
			rejectStar(mds[10]), rejectStar(mds[11]), rejectStar(mds[12]), rejectStar(mds[13]))
	}

	// C tor's test_md_reject_cache: of four requested digests (two of bad
	// entries, two of good ones), two are added.
	var want [][32]byte
	for _, h := range []string{wantSkipped[0], wantSkipped[2], wantKept[6], wantKept[8]} {
		var d [32]byte
		hex.Decode(d[:], []byte(h))
		want = append(want, d)
	}
	b, err := ParseRequestedMicrodescs(doc, want)
	if !errors.Is(err, ErrUnrequestedMicrodesc) || b == nil {
		t.Fatalf("requested: %v", err)
	}
	if len(b.Found) != 2 || b.Found[0].Digest != want[2] || b.Found[1].Digest != want[3] ||
		len(b.Missing) != 2 || len(b.Skipped) != 4 || len(b.Unrequested) != 12 {
		t.Errorf("batch: found %d, missing %d, skipped %d, unrequested %d", len(b.Found), len(b.Missing), len(b.Skipped), len(b.Unrequested))
	}
}

// rsaDER returns a DER PKCS#1 RSA public key with a modulus of the given
// size (top bit set) and exponent e.
func rsaDER(bits int, e int64) []byte {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Add(n, big.NewInt(12345))
	return x509.MarshalPKCS1PublicKey(&rsa.PublicKey{N: n, E: int(e)})
}

func onionKey(der []byte) string {
	s := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	b.WriteString("onion-key\n-----BEGIN RSA PUBLIC KEY-----\n")
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	b.WriteString(s + "\n-----END RSA PUBLIC KEY-----\n")
	return b.String()
}

// TestMicrodescRules checks each of C tor's rules: what skips a whole
// microdescriptor, what only drops a field. Each case is parsed between
// two good microdescriptors, which must be kept whatever it is.
func TestMicrodescRules(t *testing.T) {
	key := onionKey(rsaDER(1024, 65537))
	const ntor = "ntor-onion-key AppBt6CSeb1kKid/36ototmFA24ddfW5JpjWPLuoJgs=\n"
	const ed = "id ed25519 VGhpcyBpc24ndCBhY3R1YWxseSBhIHB1YmxpYyBrZXk\n"
	good1 := key + "ntor-onion-key ncfiHJjSgdDEW/gc6q6/7idac7j+x7ejQrRm6i75pGA=\np accept 443\n"
	// good2 starts with onion-key so that nothing of a case runs into it
	// (an ntor-onion-key line continues an entry that has none).
	good2 := key + "ntor-onion-key MWBoEkl+RlBiGX44XKIvTSqbznTNZStOmUYtcYRQQyY\n"
	cases := []struct {
		name, md string
		skip     string                // reason the entry is skipped; "" if kept
		check    func(*Microdesc) bool // for a kept entry
	}{
		{name: "plain", md: key + ntor + ed, check: func(m *Microdesc) bool { return m.HasNtorKey && m.HasEd25519 }},
		{name: "no onion-key", md: ntor + "p accept 80\n", check: func(m *Microdesc) bool { return m.Policy.Allows(80) }},
		{name: "exponent 3", md: onionKey(rsaDER(1024, 3)) + ntor, skip: "invalid exponent"},
		{name: "2048 bits", md: onionKey(rsaDER(2048, 65537)) + ntor, skip: "wrong size on key: 2048 bits"},
		{name: "not a key", md: onionKey([]byte{0x30, 0x03, 0x02, 0x01, 0x01}) + ntor, skip: "bad RSA public key"},
		{name: "other object", md: "onion-key\n-----BEGIN SIGNATURE-----\nAAAA\n-----END SIGNATURE-----\n" + ntor, skip: "want an RSA PUBLIC KEY"},
		{name: "onion-key args", md: strings.Replace(key, "onion-key\n", "onion-key x\n", 1) + ntor, skip: "takes no arguments"},
		{name: "no ntor key", md: key + ed, skip: "missing ntor-onion-key"},
		{name: "bad ntor key", md: key + "ntor-onion-key AAAA\n", skip: "base64 value"},
		{name: "ntor no args", md: key + "ntor-onion-key\n", skip: "missing key"},
		{name: "two ed25519", md: key + ntor + ed + ed, skip: "extra ed25519 key"},
		{name: "bad ed25519", md: key + ntor + "id ed25519 xyz\n", skip: "base64 value"},
		{name: "id one arg", md: key + ntor + "id ed25519\n", skip: "want key type and value"},
		{name: "other id", md: key + ntor + "id rsa1024 xyz\nid wumpus dodecahedron\n", check: func(m *Microdesc) bool { return !m.HasEd25519 }},
		{name: "bad p", md: key + ntor + "p condone 1-10\n", check: func(m *Microdesc) bool { return m.Policy == nil }},
		{name: "bad p6", md: key + ntor + "p6 allow 80\np accept 80\n", check: func(m *Microdesc) bool { return m.Policy6 == nil && m.Policy.Allows(80) }},
		{name: "two p", md: key + ntor + "p accept 80\np accept 81\n", skip: "\"p\": appears more than once"},
		{name: "two family", md: key + ntor + "family a\nfamily b\n", skip: "\"family\": appears more than once"},
		{name: "bad a", md: key + ntor + "a [::1:2:3:4]:bad\na 18.0.0.1:9999\na [::5]:9090\n",
			check: func(m *Microdesc) bool { return m.IPv6.String() == "[::5]:9090" }},
		{name: "a no args", md: key + ntor + "a\n", skip: "missing address"},
		{name: "bad family member", md: key + ntor + "family $XYZ nick $6141629FA0D15A6AEAEF3A1BEB76E64C767B3174\nfamily-ids ed25519:xx ed25519:VGhpcyBpc24ndCBhY3R1YWxseSBhIHB1YmxpYyBrZXk\n",
			check: func(m *Microdesc) bool {
				return len(m.Family.IDs) == 1 && len(m.Family.Nicknames) == 1 && len(m.Family.Keys) == 1
			}},
		{name: "unknown item", md: key + "flux-capacitor 1.21 GW\n-----BEGIN THING-----\nAAAA\n-----END THING-----\n" + ntor,
			check: func(m *Microdesc) bool { return m.HasNtorKey }},
		{name: "object on p", md: key + ntor + "p accept 80\n-----BEGIN THING-----\nAAAA\n-----END THING-----\n", skip: "unexpected object"},
		{name: "last-listed", md: "@last-listed 2015-06-22 10:00:00\n@other annotation\n" + key + ntor,
			check: func(m *Microdesc) bool { return m.HasNtorKey }},
		{name: "bad last-listed", md: "@last-listed with strange aeons\n" + key + ntor, skip: "bad last-listed time"},
		{name: "two last-listed", md: "@last-listed 2015-06-22 10:00:00\n@last-listed 2015-06-22 10:00:00\n" + key + ntor, skip: "appears more than once"},
		{name: "stray lines", md: "@foobar\nonion-wobble\n", skip: "item outside a microdescriptor"},
		{name: "bad keyword", md: key + ntor + "p\x01 accept\n", skip: "invalid keyword character"},
		{name: "truncated object", md: "onion-key\n-----BEGIN RSA PUBLIC KEY-----\nMIGJ\n" + ntor, skip: "object"},
	}
	for _, tc := range cases {
		doc := good1 + tc.md + good2
		mds, err := ParseMicrodescs([]byte(doc))
		var sk *SkippedMicrodescsError
		errors.As(err, &sk)
		if err != nil && sk == nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(mds) < 2 || mds[0].Digest != sha256Sum([]byte(good1)) || mds[len(mds)-1].Digest != sha256Sum([]byte(good2)) {
			t.Errorf("%s: the good neighbours were not kept (%d kept, error %v)", tc.name, len(mds), err)
			continue
		}
		if tc.skip == "" {
			if err != nil || len(mds) != 3 || !tc.check(mds[1]) {
				t.Errorf("%s: want kept with its fields, got %d kept, error %v: %+v", tc.name, len(mds), err, mds[1:len(mds)-1])
			}
			continue
		}
		if sk == nil || !strings.Contains(sk.Skipped[0].Error(), tc.skip) {
			t.Errorf("%s: error %v, want a skipped entry for %q", tc.name, err, tc.skip)
			continue
		}
		s := sk.Skipped[0]
		if s.Line != strings.Count(good1, "\n")+1 {
			t.Errorf("%s: line %d, want %d", tc.name, s.Line, strings.Count(good1, "\n")+1)
		}
	}
}

// TestMicrodescTruncated checks that a last microdescriptor cut short
// (no final newline) is skipped alone, and a document with none at all
// is an error.
func TestMicrodescTruncated(t *testing.T) {
	good := "ntor-onion-key MWBoEkl+RlBiGX44XKIvTSqbznTNZStOmUYtcYRQQyY\n"
	mds, err := ParseMicrodescs([]byte(good + "ntor-onion-key AppBt6CSeb1kKid/36ototmFA24ddfW5JpjWPLuoJgs\np accept 8"))
	var sk *SkippedMicrodescsError
	if !errors.As(err, &sk) || len(mds) != 1 || sk.Skipped[0].Line != 2 || !strings.Contains(err.Error(), "line 3") ||
		!strings.Contains(err.Error(), "last line does not end with a newline") {
		t.Errorf("truncated: %d kept, %v", len(mds), err)
	}
	mds, err = ParseMicrodescs([]byte(good + "@last-listed 2015-06-22 10:00:00\n"))
	if !errors.As(err, &sk) || len(mds) != 1 || !strings.Contains(err.Error(), "only annotations") {
		t.Errorf("only annotations at the end: %d kept, %v", len(mds), err)
	}
	for _, doc := range []string{"", "\n\n"} {
		if _, err := ParseMicrodescs([]byte(doc)); err == nil || errors.As(err, &sk) {
			t.Errorf("%q: error %v, want no microdescriptor", doc, err)
		}
	}
}

func TestParseRSAKey(t *testing.T) {
	for _, tc := range []struct {
		bits int
		e    int64
	}{{1024, 65537}, {1024, 3}, {2048, 65537}, {1023, 65537}, {512, 1<<31 - 1}} {
		key, _, err := parseRSAKey(rsaDER(tc.bits, tc.e), 0, "")
		if err != nil || key.N.BitLen() != tc.bits || int64(key.E) != tc.e {
			t.Errorf("%d bits, e %d: got %v, %v", tc.bits, tc.e, key, err)
		}
	}
	der := rsaDER(1024, 65537)
	bad := map[string][]byte{
		"empty":         nil,
		"trailing":      append(append([]byte{}, der...), 0),
		"short":         der[:len(der)-1],
		"not a seq":     append([]byte{0x31}, der[1:]...),
		"negative n":    {0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x03},
		"padded n":      {0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x03},
		"zero n":        {0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x03},
		"empty e":       {0x30, 0x05, 0x02, 0x01, 0x01, 0x02, 0x00},
		"long form len": {0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x03},
		"indefinite":    {0x30, 0x80, 0x02, 0x01, 0x01, 0x02, 0x01, 0x03, 0x00, 0x00},
		"extra in seq":  {0x30, 0x09, 0x02, 0x01, 0x01, 0x02, 0x01, 0x03, 0x02, 0x01, 0x01},
	}
	for name, b := range bad {
		if _, _, err := parseRSAKey(b, 0, ""); err == nil {
			t.Errorf("%s: accepted", name)
		}
		// (Go's x509 is laxer on these two; OpenSSL's d2i_RSAPublicKey,
		// which C tor uses, rejects an extra element, and parseRSAKey
		// rejects both.)
		if _, err := x509.ParsePKCS1PublicKey(b); err == nil && name != "zero n" && name != "extra in seq" {
			t.Errorf("%s: x509 accepts it (the test case is wrong)", name)
		}
	}
}

// TestMicrodescResync checks that after a skipped entry the next ones are
// parsed from their own start (lines, policies and families are theirs),
// and that interned policies and families follow each entry's own text.
func TestMicrodescResync(t *testing.T) {
	const ntor = "ntor-onion-key AppBt6CSeb1kKid/36ototmFA24ddfW5JpjWPLuoJgs\n"
	doc := ntor + "p accept 80\nfamily a\n" + // lines 1-3
		ntor + "p accept 80\np accept 81\n" + // lines 4-6: skipped
		ntor + "p accept 443\nfamily b\n\n" + // lines 7-10
		// Lines 11-17, one entry (its ntor-onion-key line continues it),
		// skipped: the object is not terminated.
		"onion-key\n-----BEGIN RSA PUBLIC KEY-----\nMIGJ\n" +
		ntor + "p accept 443\nfamily b\nid ed25519 xx\n" +
		ntor + "p accept 80\nfamily a\n" // lines 18-20
	mds, err := ParseMicrodescs([]byte(doc))
	var sk *SkippedMicrodescsError
	if !errors.As(err, &sk) || len(mds) != 3 || len(sk.Skipped) != 2 {
		t.Fatalf("%d kept, error %v", len(mds), err)
	}
	for i, want := range []struct {
		policy, family string
	}{{"accept 80", "a"}, {"accept 443", "b"}, {"accept 80", "a"}} {
		if mds[i].Policy.String() != want.policy || mds[i].Family == nil || mds[i].Family.Nicknames[0] != want.family {
			t.Errorf("md %d: policy %v, family %+v; want %s, %s", i, mds[i].Policy, mds[i].Family, want.policy, want.family)
		}
	}
	if mds[0].Policy != mds[2].Policy || mds[0].Family != mds[2].Family {
		t.Error("identical lines are not interned")
	}
	for i, want := range []struct {
		line int
		msg  string
	}{{4, "line 6: \"p\": appears more than once"}, {11, "line 14: \"onion-key\": object \"RSA PUBLIC KEY\": invalid base64"}} {
		if s := sk.Skipped[i]; s.Line != want.line || !strings.Contains(s.Error(), want.msg) {
			t.Errorf("skipped %d: %v, want line %d, %q", i, s, want.line, want.msg)
		}
	}
}
