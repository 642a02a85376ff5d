package socks

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in   string
		want string // Policy.String of the result
	}{
		{"accept 192.168.1.0/24, reject *", "accept 192.168.1.0/24, reject *"},
		{"accept 10.0.0.1", "accept 10.0.0.1/32"},
		{"accept 10.1.2.3/255.255.0.0", "accept 10.1.0.0/16"},
		{"reject 10.0.0.0/8:1-1023", "reject 10.0.0.0/8:1-1023"},
		{"accept 127.0.0.1:9050", "accept 127.0.0.1/32:9050"},
		{"accept *:*", "accept *"},
		{"accept *4, reject *6", "accept *4, reject *6"},
		{"accept [::1]", "accept [::1]/128"},
		{"accept [fe80::]/10:80", "accept [fe80::]/10:80"},
		{"accept6 [2001:db8::]/32, reject6 *", "accept [2001:db8::]/32, reject *6"},
		{"ACCEPT 1.2.3.4/0", "accept *4"},
		{"  accept 1.2.3.4  ,reject *  ", "accept 1.2.3.4/32, reject *"},
		{"", ""},
		{"accept private:*, reject *", "accept 0.0.0.0/8, accept 169.254.0.0/16, accept 127.0.0.0/8, accept 192.168.0.0/16, " +
			"accept 10.0.0.0/8, accept 172.16.0.0/12, accept 100.64.0.0/10, accept [::]/8, accept [fc00::]/7, " +
			"accept [fe80::]/10, accept [fec0::]/10, reject *"},
		{"reject6 private:80", "reject [::]/8:80, reject [fc00::]/7:80, reject [fe80::]/10:80, reject [fec0::]/10:80"},
	}
	for _, tc := range tests {
		p, err := ParsePolicy(tc.in)
		if err != nil {
			t.Errorf("ParsePolicy(%q): %v", tc.in, err)
			continue
		}
		if got := p.String(); got != tc.want {
			t.Errorf("ParsePolicy(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// The printed form parses back to the same policy.
		if again, err := ParsePolicy(p.String()); err != nil || again.String() != tc.want {
			t.Errorf("round trip of %q: %q, %v", tc.want, again.String(), err)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for in, frag := range map[string]string{
		"allow 1.2.3.4":              "unknown action",
		"accept":                     "want",
		"accept 1.2.3.4,":            "empty entry",
		"accept 1.2.3":               "malformed address",
		"accept 1.2.3.4/33":          "out of range",
		"accept 1.2.3.4/255.0.255.0": "not contiguous",
		"accept 1.2.3.4/x":           "malformed mask",
		"accept 1.2.3.4/-1":          "malformed mask",
		"accept ::1":                 "in brackets",
		"accept 2001:db8::/32":       "in brackets",
		"accept private:x":           "malformed port",
		"accept [1.2.3.4]":           "in brackets",
		"accept [::1":                "missing ']'",
		"accept [::1]x":              "unexpected",
		"accept 1.2.3.4:0-":          "malformed port",
		"accept 1.2.3.4:70000":       "malformed port",
		"accept 1.2.3.4:90-80":       "empty",
		"accept 1.2.3.4:+80":         "malformed port",
		"accept6 1.2.3.4":            "accept6",
		"reject6 *4":                 "accept6",
		"accept 1.2.3.4 5":           "unexpected space",
		"accept [fe80::1%eth0]":      "malformed address",
	} {
		_, err := ParsePolicy(in)
		if err == nil {
			t.Errorf("ParsePolicy(%q) succeeded", in)
			continue
		}
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("ParsePolicy(%q) = %v, want error containing %q", in, err, frag)
		}
	}
}

func TestPolicyAllows(t *testing.T) {
	p, err := ParsePolicy("reject 192.168.1.66, accept 192.168.1.0/24, accept [fd00::]/8:1024-65535, reject *")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"192.168.1.10:5000":      true,
		"192.168.1.66:5000":      false, // first match wins
		"192.168.2.1:5000":       false,
		"[::ffff:192.168.1.9]:1": true, // IPv4-mapped counts as IPv4
		"[fd12::1]:2000":         true,
		"[fd12::1]:80":           false, // port outside the range
		"[2001:db8::1]:2000":     false,
		"127.0.0.1:1":            false,
	} {
		if got := p.Allows(netip.MustParseAddrPort(addr)); got != want {
			t.Errorf("Allows(%s) = %v, want %v", addr, got, want)
		}
	}
	// No rule matches: rejected.
	if (Policy{}).Allows(netip.MustParseAddrPort("127.0.0.1:1")) {
		t.Error("empty policy allowed a client")
	}
	def := DefaultPolicy()
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "127.9.9.9:2": true, "[::1]:3": true,
		"10.0.0.1:4": false, "[fe80::1]:5": false,
	} {
		if got := def.Allows(netip.MustParseAddrPort(addr)); got != want {
			t.Errorf("default Allows(%s) = %v, want %v", addr, got, want)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		"accept 192.168.1.0/24, reject *", "accept [fe80::]/10:80", "reject 10.0.0.0/255.0.0.0:1-1023",
		"accept6 *", "accept *4", "accept [::1]/128:*", "reject 1.2.3.4/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		// Whatever parses prints in a form that parses to the same thing.
		again, err := ParsePolicy(p.String())
		if err != nil {
			t.Fatalf("reparse of %q (from %q): %v", p.String(), s, err)
		}
		if again.String() != p.String() {
			t.Fatalf("round trip %q -> %q", p.String(), again.String())
		}
		for _, r := range p {
			if r.PortMin > r.PortMax {
				t.Fatalf("empty port range in %v", r)
			}
		}
		p.Allows(netip.MustParseAddrPort("127.0.0.1:9"))
		p.Allows(netip.MustParseAddrPort("[::1]:9"))
	})
}
