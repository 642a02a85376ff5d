package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string // Policy.String of the result
	}{
		{"accept 192.168.1.0/24, reject *", "accept 192.168.1.0/24, reject *"},
		{"accept 10.0.0.1", "accept 10.0.0.1"},
		{"accept 10.0.0.1/32", "accept 10.0.0.1"},
		{"accept 10.1.2.3/255.255.0.0", "accept 10.1.0.0/16"},
		{"accept 10.1.2.3/0.0.0.0", "accept *4"},
		{"reject 10.0.0.0/8:1-1023", "reject 10.0.0.0/8:1-1023"},
		{"reject 10.0.0.0/8:0-1023", "reject 10.0.0.0/8:1-1023"},
		{"accept 127.0.0.1:9050", "accept 127.0.0.1:9050"},
		{"accept *:*", "accept *"},
		{"accept *:1-65535", "accept *"},
		{"accept *4, reject *6", "accept *4, reject *6"},
		{"accept [::1]", "accept [::1]"},
		{"accept [::1]/128:*", "accept [::1]"},
		{"accept [fe80::1]/10:80", "accept [fe80::]/10:80"},
		{"accept 2001:db8::/32", "accept [2001:db8::]/32"},
		{"accept 2001:db8::/32:443", "accept [2001:db8::]/32:443"},
		{"accept [1.2.3.4]", "accept 1.2.3.4"},
		{"accept6 [2001:db8::]/32, reject6 *", "accept [2001:db8::]/32, reject *6"},
		{"ACCEPT 1.2.3.4/0", "accept *4"},
		{"  accept   1.2.3.4  ,reject *  ", "accept 1.2.3.4, reject *"},
		{"accept 1.2.3.4,,reject *,", "accept 1.2.3.4, reject *"},
		{"", ""},
		{" , ", ""},
		{"accept 10.0.0.0/8\nreject *:80, accept [::]/0", "accept 10.0.0.0/8, reject *:80, accept *6"},
		{"accept private:*, reject *", "accept 0.0.0.0/8, accept 169.254.0.0/16, accept 127.0.0.0/8, accept 192.168.0.0/16, " +
			"accept 10.0.0.0/8, accept 172.16.0.0/12, accept [::]/8, accept [fc00::]/7, " +
			"accept [fe80::]/10, accept [fec0::]/10, accept [ff00::]/8, accept [::]/127, reject *"},
		// accept6/reject6 private covers the IPv4 ranges too, as in C tor.
		{"reject6 private:80", "reject 0.0.0.0/8:80, reject 169.254.0.0/16:80, reject 127.0.0.0/8:80, reject 192.168.0.0/16:80, " +
			"reject 10.0.0.0/8:80, reject 172.16.0.0/12:80, reject [::]/8:80, reject [fc00::]/7:80, " +
			"reject [fe80::]/10:80, reject [fec0::]/10:80, reject [ff00::]/8:80, reject [::]/127:80"},
	}
	for _, tc := range tests {
		p, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := p.String(); got != tc.want {
			t.Errorf("Parse(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// The printed form parses back to the same policy.
		if again, err := Parse(p.String()); err != nil || again.String() != tc.want {
			t.Errorf("round trip of %q: %q, %v", tc.want, again.String(), err)
		}
	}
}

func TestParseKeepsMasksAndPorts(t *testing.T) {
	p, err := Parse("reject 10.1.2.3/255.255.0.0:80-90, accept [fd00::]/8:443, accept *")
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{
		{Prefix: netip.MustParsePrefix("10.1.0.0/16"), PortMin: 80, PortMax: 90},
		{Accept: true, Prefix: netip.MustParsePrefix("fd00::/8"), PortMin: 443, PortMax: 443},
		{Accept: true, PortMin: 1, PortMax: 65535},
	}
	if len(p) != len(want) {
		t.Fatalf("got %v", p)
	}
	for i := range want {
		if p[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, p[i], want[i])
		}
	}
	if !p.HasPorts() || (Policy{{PortMin: 1, PortMax: 65535}}).HasPorts() {
		t.Error("HasPorts")
	}
}

func TestParseErrors(t *testing.T) {
	for in, frag := range map[string]string{
		"allow 1.2.3.4":                `entry 1 "allow 1.2.3.4": unknown action "allow" (want accept, reject, accept6 or reject6)`,
		"accept":                       `entry 1 "accept": no address: want "accept|reject ADDR[/MASK][:PORTS]"`,
		"accept 1.2.3.4 5":             `entry 1 "accept 1.2.3.4 5": unexpected "5" after the address`,
		"accept 1.2.3.4, accept 1.2.3": `entry 2 "accept 1.2.3": malformed address "1.2.3"`,
		"accept *\nreject 1.2.3.4/33":  `line 2, entry 1 "reject 1.2.3.4/33": mask /33 is longer than the 32 bits of the address 1.2.3.4`,
		"accept [::1]/129":             "mask /129 is longer than the 128 bits",
		"accept 1.2.3.4/255.0.255.0":   "netmask 255.0.255.0 is not contiguous",
		"accept 1.2.3.4/x":             `malformed mask "x"`,
		"accept 1.2.3.4/-1":            `malformed mask "-1"`,
		"accept 1.2.3.4/":              `malformed mask ""`,
		"accept [::1]/255.0.0.0":       "netmask 255.0.0.0 on the IPv6 address ::1",
		"accept ::1":                   "must be written in brackets",
		"accept 2001:db8::1":           "must be written in brackets",
		"accept :80":                   `no address in ":80"`,
		"accept []:80":                 `no address in "[]:80"`,
		"accept private:x":             `malformed port "x"`,
		"accept private/8":             `a mask on "private"`,
		"accept */0":                   `a mask on "*"`,
		"accept [::1":                  "no ']'",
		"accept [::1]x":                `unexpected "x" after ']'`,
		"accept [::ffff:1.2.3.4]":      "IPv4-mapped address",
		"accept [fe80::1%eth0]":        "has a zone",
		"accept host.example":          `malformed address "host.example"`,
		"accept 1.2.3.4:0":             "port 0 is not a port",
		"accept 1.2.3.4:0-0":           "ends at 0",
		"accept 1.2.3.4:0-":            `malformed port ""`,
		"accept 1.2.3.4:70000":         "port 70000",
		"accept 1.2.3.4:90-80":         `port range "90-80" is reversed`,
		"accept 1.2.3.4:+80":           `malformed port "+80"`,
		"accept 1.2.3.4:80:90":         `malformed port "80:90"`,
		"accept6 1.2.3.4":              "accept6 with the IPv4 address 1.2.3.4: accept6 takes IPv6 addresses only (use accept)",
		"reject6 *4":                   `reject6 with "*4"`,
	} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", in)
			continue
		}
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error %T is not a *Error", in, err)
		}
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("Parse(%q) = %v, want error containing %q", in, err, frag)
		}
	}
}

func TestPrivate(t *testing.T) {
	p, err := Parse("accept private")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"0.1.2.3": true, "169.254.1.1": true, "127.0.0.1": true, "192.168.7.7": true, "10.9.9.9": true,
		"172.16.0.1": true, "172.31.255.255": true, "172.32.0.1": false, "100.64.0.1": false, "8.8.8.8": false,
		"::": true, "::1": true, "fc00::1": true, "fd12::1": true, "fe80::1": true, "fec0::1": true, "ff02::1": true,
		"2001:db8::1": false, "::ffff:10.1.1.1": true,
	} {
		if got := p.Allows(netip.MustParseAddr(addr), RejectUnmatched); got != want {
			t.Errorf("private holds %s = %v, want %v", addr, got, want)
		}
	}
	if len(privateNets) != len(p) {
		t.Errorf("privateNets has %d ranges, the keyword %d rules", len(privateNets), len(p))
	}
}

func TestAllowsUnmatchedPerUse(t *testing.T) {
	p, err := Parse("reject 192.168.1.66, accept 192.168.1.0/24, accept [fd00::]/8:1024-65535")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"192.168.1.10":       true,
		"192.168.1.66":       false, // first match wins
		"::ffff:192.168.1.9": true,  // IPv4-mapped counts as IPv4
		"fd12::1":            true,  // ports are ignored: C tor drops them
	} {
		for _, u := range []Unmatched{AcceptUnmatched, RejectUnmatched} {
			if got := p.Allows(netip.MustParseAddr(addr), u); got != want {
				t.Errorf("Allows(%s, %v) = %v, want %v", addr, u, got, want)
			}
		}
	}
	// No rule matches: the use decides.
	for _, addr := range []string{"192.168.2.1", "2001:db8::1", "127.0.0.1"} {
		a := netip.MustParseAddr(addr)
		if !p.Allows(a, AcceptUnmatched) {
			t.Errorf("SocksPolicy use rejected unmatched %s", addr)
		}
		if p.Allows(a, RejectUnmatched) {
			t.Errorf("MetricsPortPolicy use accepted unmatched %s", addr)
		}
	}
	var empty Policy
	if !empty.Allows(netip.MustParseAddr("1.2.3.4"), AcceptUnmatched) || empty.Allows(netip.MustParseAddr("1.2.3.4"), RejectUnmatched) {
		t.Error("empty policy does not defer to the use")
	}
}

func TestLoopback(t *testing.T) {
	def := Loopback()
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "127.9.9.9": true, "::1": true, "::ffff:127.0.0.1": true,
		"10.0.0.1": false, "fe80::1": false, "::2": false,
	} {
		for _, u := range []Unmatched{AcceptUnmatched, RejectUnmatched} {
			if got := def.Allows(netip.MustParseAddr(addr), u); got != want {
				t.Errorf("Loopback().Allows(%s) = %v, want %v", addr, got, want)
			}
		}
	}
	if !def.CoversAll() {
		t.Error("Loopback does not cover every address")
	}
	if got := def.String(); got != "accept 127.0.0.0/8, accept [::1], reject *" {
		t.Errorf("Loopback() = %q", got)
	}
}

func TestCoversAll(t *testing.T) {
	for in, want := range map[string]bool{
		"accept 10.0.0.0/8":                  false,
		"accept 10.0.0.0/8, reject *":        true,
		"reject *:80":                        true, // ports are ignored
		"reject *4":                          false,
		"reject *4, accept [::1], reject *6": true,
		"accept private":                     false,
		"":                                   false,
	} {
		p, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.CoversAll(); got != want {
			t.Errorf("CoversAll(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"accept 192.168.1.0/24, reject *", "accept [fe80::]/10:80", "reject 10.0.0.0/255.0.0.0:1-1023",
		"accept6 *", "accept *4", "accept [::1]/128:*", "reject 1.2.3.4/x", "accept private:*\nreject *",
		"accept 2001:db8::/32:0-80", "reject6 private",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		// Whatever parses prints in a form that parses to the same rules.
		again, err := Parse(p.String())
		if err != nil {
			t.Fatalf("reparse of %q (from %q): %v", p.String(), s, err)
		}
		if len(again) != len(p) {
			t.Fatalf("round trip %q -> %q", p.String(), again.String())
		}
		for i, r := range p {
			if again[i] != r {
				t.Fatalf("round trip of rule %d: %+v -> %+v", i, r, again[i])
			}
			if r.PortMin < 1 || r.PortMin > r.PortMax {
				t.Fatalf("bad port range in %+v", r)
			}
			if r.Prefix.IsValid() && r.Prefix != r.Prefix.Masked() {
				t.Fatalf("unmasked prefix in %+v", r)
			}
		}
		for _, a := range []string{"127.0.0.1", "::1", "10.1.2.3"} {
			p.Allows(netip.MustParseAddr(a), AcceptUnmatched)
		}
		p.CoversAll()
	})
}
