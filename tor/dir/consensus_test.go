package dir

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// The private test network's authorities (v3ident), from scripts/testnet.
var testnetAuthorities = [][20]byte{
	mustFP("8CC4A8838AF67B7CD0F4F797490DA9A3BF43F6D4"),
	mustFP("6FEBAD5A067493F70259B320A4BD948803AB8F7D"),
	mustFP("BA441373C1CC064C19E272BC10898F04A75104C1"),
}

// testnetTime is when the saved test network documents were live.
var testnetTime = time.Date(2026, 11, 27, 2, 55, 50, 0, time.UTC)

func mustFP(s string) [20]byte {
	var fp [20]byte
	for i := range fp {
		hi := strings.IndexByte("0123456789ABCDEF", s[2*i])
		lo := strings.IndexByte("0123456789ABCDEF", s[2*i+1])
		if hi < 0 || lo < 0 {
			panic("bad fingerprint " + s)
		}
		fp[i] = byte(hi<<4 | lo)
	}
	return fp
}

func testnetCerts(t testing.TB) []*AuthCert {
	t.Helper()
	certs, err := ParseAuthCerts(mustRead(t, "testnet-certs"))
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func TestTestnetCerts(t *testing.T) {
	certs := testnetCerts(t)
	if len(certs) != 3 {
		t.Fatalf("%d certs, want 3", len(certs))
	}
	for _, c := range certs {
		if err := c.Verify(testnetTime); err != nil {
			t.Error(err)
		}
		found := false
		for _, a := range testnetAuthorities {
			found = found || a == c.Fingerprint
		}
		if !found {
			t.Errorf("cert %X is not from a configured authority", c.Fingerprint)
		}
	}
}

func TestTestnetConsensus(t *testing.T) {
	doc := mustRead(t, "testnet-consensus-microdesc")
	c, err := ParseConsensus(doc)
	if err != nil {
		t.Fatal(err)
	}
	if c.Method != 35 || len(c.Relays) != 9 || len(c.Authorities) != 3 || len(c.Signatures) != 3 {
		t.Fatalf("method %d, %d relays, %d authorities, %d signatures", c.Method, len(c.Relays), len(c.Authorities), len(c.Signatures))
	}
	if !c.ValidAfter.Equal(time.Date(2026, 11, 27, 2, 55, 40, 0, time.UTC)) ||
		c.FreshUntil.Sub(c.ValidAfter) != 20*time.Second || c.ValidUntil.Sub(c.ValidAfter) != 60*time.Second {
		t.Errorf("times %v %v %v", c.ValidAfter, c.FreshUntil, c.ValidUntil)
	}
	if c.VoteDelay != 4*time.Second || c.DistDelay != 4*time.Second {
		t.Errorf("voting-delay %v %v", c.VoteDelay, c.DistDelay)
	}
	if c.BandwidthWeights["Wbd"] != 3333 || c.BandwidthWeights["Wme"] != 0 || len(c.BandwidthWeights) != 19 {
		t.Errorf("bandwidth-weights %v", c.BandwidthWeights)
	}
	if c.RequiredClientProtocols != "Cons=2 Desc=2 FlowCtrl=1 Link=4 Microdesc=2 Relay=2" {
		t.Errorf("required-client-protocols %q", c.RequiredClientProtocols)
	}
	if c.Authorities[0].Nickname != "auth2" || c.Authorities[0].DirPort != 29859 || c.Authorities[0].Contact != "tinytor-testnet" {
		t.Errorf("dir-source %+v", c.Authorities[0])
	}
	r := c.RelayByID(mustFP("85E81529519130E22BF86DEC4C11B52E773B8056"))
	if r == nil {
		t.Fatal("auth3's relay not found by identity")
	}
	if r.Nickname != "auth3" || r.ORAddrPort().String() != "127.0.0.1:29860" || r.DirPort != 29861 ||
		!r.Flags.Has(FlagAuthority|FlagGuard|FlagStable|FlagRunning|FlagValid) || r.Flags.Has(FlagExit) ||
		!r.Unmeasured || r.Bandwidth != 0 || DigestString(r.Microdesc) != "T0GB7Glou3nn7qL0ZfRcZ3R/KKwSrfXFF/20JhqEo/M" {
		t.Errorf("relay %+v flags %v", r, r.Flags)
	}
	if !r.Protocols.Supports(ProtoRelay, 4) || r.Protocols.Supports(ProtoRelay, 7) || !r.Protocols.Supports(ProtoLinkAuth, 3) {
		t.Errorf("protocols %v", *r.Protocols)
	}
	if c.Relays[0].Protocols != c.Relays[1].Protocols {
		t.Error("identical pr lines not shared")
	}
	exits := 0
	for i := range c.Relays {
		if c.Relays[i].Flags.Has(FlagExit) {
			exits++
		}
	}
	if exits != 3 {
		t.Errorf("%d exits, want 3", exits)
	}

	if err := c.Verify(testnetCerts(t), testnetAuthorities, testnetTime); err != nil {
		t.Fatalf("real consensus does not verify: %v", err)
	}
	rep := c.CheckSignatures(testnetCerts(t), testnetAuthorities, testnetTime)
	if len(rep.Signed) != 3 || len(rep.Problems) != 0 || len(rep.MissingCerts) != 0 {
		t.Errorf("report %+v", rep)
	}
	if !c.Live(testnetTime, 0) || c.Live(c.ValidUntil.Add(time.Second), 0) || !c.Usable(c.ValidUntil.Add(23*time.Hour), 0) ||
		c.Usable(c.ValidUntil.Add(25*time.Hour), 0) || c.Usable(c.ValidAfter.Add(-time.Minute), 0) || !c.Usable(c.ValidAfter.Add(-time.Minute), 2*time.Minute) {
		t.Error("Live/Usable wrong")
	}
}

func TestConsensusTampered(t *testing.T) {
	doc := mustRead(t, "testnet-consensus-microdesc")
	certs := testnetCerts(t)
	// One altered byte in the signed section: relay5's ORPort.
	bad := bytes.Replace(doc, []byte("127.0.0.1 29866 0"), []byte("127.0.0.1 29876 0"), 1)
	if bytes.Equal(bad, doc) {
		t.Fatal("replacement did not apply")
	}
	c, err := ParseConsensus(bad)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Verify(certs, testnetAuthorities, testnetTime)
	var ne *NotEnoughSignaturesError
	if !errors.As(err, &ne) {
		t.Fatalf("tampered consensus: got %v", err)
	}
	if !errors.Is(err, ErrBadSignature) || len(ne.Report.Signed) != 0 || len(ne.Report.Problems) != 3 {
		t.Errorf("tampered consensus: %v", err)
	}
	if !strings.Contains(err.Error(), "consensus has 0 valid authority signatures, needs 2") ||
		!strings.Contains(err.Error(), "consensus signature (sha256) from 6FEBAD5A067493F70259B320A4BD948803AB8F7D with signing key 734250EB9F92FCA6BD6642A49E9FC91727080300 invalid: signature does not verify") {
		t.Errorf("message: %v", err)
	}

	// Missing certificates: only auth1's cert known. One good signature is
	// not enough, and the other two are reported for fetching.
	c, _ = ParseConsensus(doc)
	var only []*AuthCert
	for _, ct := range certs {
		if ct.Fingerprint == testnetAuthorities[0] {
			only = append(only, ct)
		}
	}
	rep := c.CheckSignatures(only, testnetAuthorities, testnetTime)
	if rep.OK() || len(rep.Signed) != 1 || len(rep.MissingCerts) != 2 || !errors.Is(rep.Problems[0], ErrMissingCert) {
		t.Errorf("one cert: %+v", rep)
	}
	if err := c.Verify(only, testnetAuthorities, testnetTime); err == nil {
		t.Error("verified with one of three signatures")
	}
	// Two certs: enough.
	if err := c.Verify(certs[:2], testnetAuthorities, testnetTime); err != nil {
		t.Errorf("two of three: %v", err)
	}
	// Signed by an authority we do not trust: does not count.
	rep = c.CheckSignatures(certs, testnetAuthorities[:1], testnetTime)
	if !rep.OK() || len(rep.Signed) != 1 || !errors.Is(rep.Problems[0], ErrUnknownAuthority) {
		t.Errorf("one trusted authority: %+v", rep)
	}
	// Expired certificates do not count.
	late := certs[0].Expires.Add(time.Hour)
	if err := c.Verify(certs, testnetAuthorities, late); !errors.Is(err, ErrBadCert) || !errors.Is(err, ErrCertExpired) {
		t.Errorf("expired certs: %v", err)
	}
	// A certificate signed by the wrong key: graft auth2's certification
	// onto auth1's certificate.
	raw0, raw1 := certs[0].Raw, certs[1].Raw
	cut := []byte("dir-key-certification\n")
	forged := append(append([]byte{}, raw0[:bytes.Index(raw0, cut)+len(cut)]...), raw1[bytes.Index(raw1, cut)+len(cut):]...)
	fc, err := ParseAuthCerts(forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := fc[0].Verify(testnetTime); err == nil || !strings.Contains(err.Error(), "signature by identity key invalid") {
		t.Errorf("forged cert: %v", err)
	}
	if err := c.Verify(append(fc, certs[1]), testnetAuthorities, testnetTime); !errors.Is(err, ErrBadCert) {
		t.Errorf("consensus with forged cert: %v", err)
	}
}

func TestConsensusParseErrors(t *testing.T) {
	doc := string(mustRead(t, "testnet-consensus-microdesc"))
	cases := []struct{ name, in, want string }{
		{"empty", "", "empty document"},
		{"ns flavour", strings.Replace(doc, "network-status-version 3 microdesc", "network-status-version 3", 1), "line 1: \"network-status-version\": want \"3 microdesc\""},
		{"vote", strings.Replace(doc, "vote-status consensus", "vote-status vote", 1), "line 2: \"vote-status\""},
		{"bad time", strings.Replace(doc, "fresh-until 2026-11-27 02:56:00", "fresh-until 2026-11-27 02:56:70", 1), "line 5: \"fresh-until\": bad time"},
		{"order", strings.Replace(doc, "fresh-until 2026-11-27 02:56:00", "fresh-until 2026-11-27 02:57:00", 1), "times out of order"},
		{"r args", strings.Replace(doc, "127.0.0.1 29866 0", "127.0.0.1 29866", 1), "line 24: \"r\": needs 7 arguments"},
		{"r ip", strings.Replace(doc, "127.0.0.1 29866 0", "127.0.0.256 29866 0", 1), "bad IPv4 address"},
		// "no m" moved to TestConsensusRouterEntryRules: C tor keeps such a
		// consensus (it keeps the entry, without a digest); tinytor drops
		// only the entry.
		{"bad m", strings.Replace(doc, "m yA8R8Ld7TPjJ6MJAYekkcQKdH/KetqTouh+1XVnajS8\n", "m yA8R8Ld7\n", 1), "line 25: \"m\": base64 value"},
		{"no sig", doc[:strings.Index(doc, "directory-signature")], "no directory-signature"},
		{"bad object", strings.Replace(doc, "-----END SIGNATURE-----", "-----END SIGNATUR-----", 1), "does not match BEGIN"},
		{"bw", strings.Replace(doc, "Wbd=3333", "Wbd=x", 1), "\"bandwidth-weights\": entry \"Wbd=x\""},
		{"dup", strings.Replace(doc, "voting-delay 4 4\n", "voting-delay 4 4\nvoting-delay 4 4\n", 1), "line 8: \"voting-delay\": appears more than once"},
		{"pr", strings.Replace(doc, "Relay=2-6\nw", "Relay=2-99\nw", 1), "bad version range"},
	}
	for _, tc := range cases {
		_, err := ParseConsensus([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestTestnetMicrodescs(t *testing.T) {
	c, err := ParseConsensus(mustRead(t, "testnet-consensus-microdesc"))
	if err != nil {
		t.Fatal(err)
	}
	var want [][32]byte
	for _, r := range c.Relays {
		want = append(want, r.Microdesc)
	}
	for _, name := range []string{"testnet-microdescs", "testnet-cached-microdescs.new"} {
		b, err := ParseRequestedMicrodescs(mustRead(t, name), want)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(b.Found) != 9 || len(b.Missing) != 0 {
			t.Fatalf("%s: found %d, missing %d", name, len(b.Found), len(b.Missing))
		}
		exits := 0
		for _, md := range b.Found {
			if !md.HasNtorKey || !md.HasEd25519 {
				t.Errorf("%s: md %s lacks keys", name, DigestString(md.Digest))
			}
			if md.Policy.Allows(80) {
				exits++
			}
		}
		if exits != 3 {
			t.Errorf("%s: %d mds allow port 80, want 3", name, exits)
		}
	}
	// A microdescriptor with one altered byte no longer matches its digest.
	doc := mustRead(t, "testnet-microdescs")
	bad := bytes.Replace(doc, []byte("ntor-onion-key LX42"), []byte("ntor-onion-key LX43"), 1)
	b, err := ParseRequestedMicrodescs(bad, want)
	if !errors.Is(err, ErrUnrequestedMicrodesc) || len(b.Found) != 8 || len(b.Missing) != 1 {
		t.Errorf("altered md: %v", err)
	}
}
