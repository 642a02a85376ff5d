package dir

import (
	"errors"
	"strings"
	"testing"

	"tinytor/tor/dir/netdoc"
)

// TestConsensusRouterEntryRules checks C tor's rules for router entries
// (ns_parse.c, routerstatus_parse_entry_from_string): what it tolerates,
// what only drops the entry, what rejects the whole consensus.
func TestConsensusRouterEntryRules(t *testing.T) {
	doc := string(mustRead(t, "testnet-consensus-microdesc"))
	orig, err := ParseConsensus([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	const (
		r5 = "r relay5 W/ehokebZnMo6KB0pHhYnQE3nU4 2038-01-01 00:00:00 127.0.0.1 29866 0\n"
		m5 = "m yA8R8Ld7TPjJ6MJAYekkcQKdH/KetqTouh+1XVnajS8\n"
		s5 = "s Fast Guard HSDir Running V2Dir Valid\n"
		w5 = "w Bandwidth=0 Unmeasured=1\n"
	)
	pr5 := doc[strings.Index(doc, r5):]
	pr5 = pr5[strings.Index(pr5, "pr "):]
	pr5 = pr5[:strings.Index(pr5, "\n")+1]
	for _, x := range []string{r5, m5, s5, w5, pr5} {
		if strings.Count(doc, x) < 1 {
			t.Fatalf("test data lacks %q", x)
		}
	}
	rep := func(old, new string) string { return strings.Replace(doc, old, new, 1) }

	// Tolerated: the consensus and every relay are kept.
	kept := []struct {
		name, in string
		check    func(*Relay) bool // on relay5, the first relay
	}{
		{"unknown flag", rep(s5, "s Fast Guard HSDir Running V2Dir Valid Wombat\n"),
			func(r *Relay) bool { return r.Flags.Has(FlagGuard | FlagValid) }},
		{"unknown item", rep(m5, m5+"frobnicate 1 2 3\n-----BEGIN THING-----\nAAAA\n-----END THING-----\n"), nil},
		{"unknown w entry", rep(w5, "w Bandwidth=7 Wombat=x\n"), func(r *Relay) bool { return r.Bandwidth == 7 }},
		{"bad a", rep(m5, m5+"a [::1]:80-90\na 1.2.3.4:5\na nonsense\na [2001:db8::1]:9001\n"),
			func(r *Relay) bool { p, ok := r.IPv6AddrPort(); return ok && p.String() == "[2001:db8::1]:9001" }},
		{"two m", rep(m5, m5+"m AAAA\n"), func(r *Relay) bool { return r.Microdesc == orig.Relays[0].Microdesc }},
		{"no v", rep("v Tor 0.4.9.11\n", ""), nil},
		{"no w", rep(w5, ""), func(r *Relay) bool { return r.Bandwidth == 0 }},
		{"id", rep(m5, m5+"id ed25519 none\n"), nil},
	}
	for _, tc := range kept {
		c, err := ParseConsensus([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(c.Relays) != len(orig.Relays) || len(c.Dropped) != 0 || c.Relays[0].Nickname != "relay5" {
			t.Errorf("%s: %d relays, dropped %v", tc.name, len(c.Relays), c.Dropped)
			continue
		}
		if tc.check != nil && !tc.check(&c.Relays[0]) {
			t.Errorf("%s: relay %+v", tc.name, c.Relays[0])
		}
	}

	// No m line: C tor keeps the consensus and the entry (without a
	// microdescriptor digest, so never usable); tinytor drops the entry.
	c, err := ParseConsensus([]byte(rep(m5, "")))
	if err != nil {
		t.Fatalf("no m: %v", err)
	}
	var ne *netdoc.Error
	if len(c.Relays) != len(orig.Relays)-1 || c.Relays[0].Nickname == "relay5" || len(c.Dropped) != 1 ||
		!errors.As(c.Dropped[0], &ne) || ne.Line != 24 || !strings.Contains(ne.Error(), "relay5\" has no \"m\" line") {
		t.Errorf("no m: %d relays, dropped %v", len(c.Relays), c.Dropped)
	}
	// The order check still sees the dropped entry.
	first := doc[strings.Index(doc, r5):]
	first = first[:strings.Index(first[1:], "\nr ")+2]
	second := doc[strings.Index(doc, r5)+len(first):]
	second = second[:strings.Index(second[1:], "\nr ")+2]
	swapped := strings.Replace(doc, first+second, second+strings.Replace(first, m5, "", 1), 1)
	if _, err := ParseConsensus([]byte(swapped)); err == nil || !strings.Contains(err.Error(), "not sorted") {
		t.Errorf("dropped entry out of order: %v", err)
	}

	// Rejected: C tor rejects the whole consensus.
	rejected := []struct{ name, in, want string }{
		{"no s", rep(s5, ""), "has no \"s\" line"},
		{"two s", rep(s5, s5+s5), "\"s\": appears more than once"},
		{"no pr", rep(pr5, ""), "has no \"pr\" line"},
		{"bad pr", rep(pr5, "pr Link=x\n"), "bad version range"},
		{"two w", rep(w5, w5+w5), "\"w\": appears more than once"},
		{"bad bandwidth", rep(w5, "w Bandwidth=x\n"), "bad \"Bandwidth=x\""},
		{"bad m", rep(m5, "m AAAA\n"), "\"m\": base64 value"},
		{"bad nickname", rep("r relay5 ", "r relay-5 "), "bad nickname"},
		{"long nickname", rep("r relay5 ", "r relay5relay5relay5relay5 "), "bad nickname"},
		{"bad time", rep("2038-01-01 00:00:00 127.0.0.1 29866", "2038-13-01 00:00:00 127.0.0.1 29866"), "bad publication time"},
		{"bad time 2", rep("2038-01-01 00:00:00 127.0.0.1 29866", "2038-01-01 0:00:000 127.0.0.1 29866"), "bad publication time"},
		{"object on s", rep(s5, s5+"-----BEGIN THING-----\nAAAA\n-----END THING-----\n"), "unexpected object"},
		{"bad p", rep(m5, m5+"p allow 80\n"), "unknown exit policy summary type"},
		{"short id", rep(m5, m5+"id ed25519\n"), "want key type and value"},
		{"a no args", rep(m5, m5+"a\n"), "missing address"},
	}
	for _, tc := range rejected {
		_, err := ParseConsensus([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestValidTime(t *testing.T) {
	for in, want := range map[string]bool{
		"2038-01-01 00:00:00": true, "1970-01-01 23:59:60": true, "2026-12-31 12:34:56": true,
		"1969-12-31 23:59:59": false, "2026-00-01 00:00:00": false, "2026-01-32 00:00:00": false,
		"2026-01-01 24:00:00": false, "2026-01-01 00:60:00": false, "2026/01/01 00:00:00": false,
		"2026-01-01 00:00:0x": false, "2026-1-01 00:00:00": false,
	} {
		f := strings.Fields(in)
		if len(f) != 2 {
			f = append(f, "")
		}
		if got := validTime([]byte(f[0]), []byte(f[1])); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}
