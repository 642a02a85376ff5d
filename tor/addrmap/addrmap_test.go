package addrmap

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

type seeded struct{ r *rand.ChaCha8 }

func (s seeded) Read(b []byte) (int, error) { return s.r.Read(b) }

func newMap(t *testing.T, cfg Config) *Map {
	t.Helper()
	m, err := New(cfg, seeded{rand.NewChaCha8([32]byte{1})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const onion = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion"

func TestAutomapStableAndReversible(t *testing.T) {
	m := newMap(t, Config{Automap: true, Suffixes: []string{".onion", ".exit"}})
	if !m.ShouldAutomap(onion) || !m.ShouldAutomap("X.EXIT") || m.ShouldAutomap("example.com") || m.ShouldAutomap("127.0.0.1") {
		t.Fatal("ShouldAutomap disagrees with the suffixes")
	}
	a, err := m.Virtual(onion, false, FromAutomap)
	if err != nil {
		t.Fatal(err)
	}
	if !DefaultIPv4Network.Contains(a) || a.As4()[3] == 0 || a.As4()[3] == 255 {
		t.Fatalf("virtual address %v outside 127.192.0.0/10 or ends in .0/.255", a)
	}
	b, _ := m.Virtual(onion, false, FromAutomap)
	if a != b {
		t.Fatalf("second lookup gave %v, first %v", b, a)
	}
	v6, err := m.Virtual(onion, true, FromAutomap)
	if err != nil || !DefaultIPv6Network.Contains(v6) {
		t.Fatalf("IPv6 virtual address %v, %v", v6, err)
	}
	if got, ok := m.Rewrite(a.String()); !ok || got != onion {
		t.Fatalf("Rewrite(%v) = %q, %v", a, got, ok)
	}
	if got, ok := m.Rewrite("[" + v6.String() + "]"); !ok || got != onion {
		t.Fatalf("Rewrite([%v]) = %q, %v", v6, got, ok)
	}
	if n, ok := m.Name(a); !ok || n != onion {
		t.Fatalf("Name(%v) = %q, %v", a, n, ok)
	}
	if !m.InVirtualRange("127.200.1.2") || m.InVirtualRange("127.0.0.1") || !m.InVirtualRange("abc.virtual") {
		t.Fatal("InVirtualRange is wrong")
	}
	if m.Virtuals() != 2 {
		t.Fatalf("Virtuals() = %d, want 2", m.Virtuals())
	}
	// A reload with the same settings keeps the address; turning
	// automapping off drops it.
	if err := m.SetConfig(Config{Automap: true, Suffixes: []string{".onion"}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := m.Virtual(onion, false, FromAutomap); c != a {
		t.Fatalf("after reload: %v, want %v", c, a)
	}
	if err := m.SetConfig(Config{Automap: false, Suffixes: []string{".onion"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Rewrite(a.String()); ok || m.Virtuals() != 0 {
		t.Fatal("mapping survived AutomapHostsOnResolve 0")
	}
}

func TestDistinctNamesDistinctAddresses(t *testing.T) {
	m := newMap(t, Config{Automap: true, Suffixes: []string{"."}, IPv4: netip.MustParsePrefix("10.0.0.0/16")})
	seen := map[netip.Addr]bool{}
	for i := range 500 {
		a, err := m.Virtual(string(rune('a'+i%26))+string(rune('a'+i/26))+".onion", false, FromAutomap)
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] || !netip.MustParsePrefix("10.0.0.0/16").Contains(a) {
			t.Fatalf("address %v reused or outside the network", a)
		}
		seen[a] = true
	}
}

func TestNetworksChecked(t *testing.T) {
	for _, c := range []Config{
		{IPv4: netip.MustParsePrefix("10.0.0.0/24")},
		{IPv4: netip.MustParsePrefix("fe80::/10")},
		{IPv6: netip.MustParsePrefix("fe80::/112")},
		{IPv6: netip.MustParsePrefix("10.0.0.0/8")},
	} {
		if _, err := New(c, nil, nil); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestRegisterRewrite(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m, _ := New(Config{}, nil, func() time.Time { return now })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.Register("a.example", "b.example", FromController, time.Time{}))
	must(m.Register("b.example", "c.example", FromController, time.Time{}))
	must(m.Register("*.wild.example", "*.other.example", FromController, time.Time{}))
	must(m.Register("*.sub.example", "fixed.example", FromConfig, time.Time{}))
	must(m.Register("tmp.example", "1.2.3.4", FromDNS, now.Add(time.Minute)))
	for in, want := range map[string]string{
		"a.example":          "c.example",
		"A.Example":          "c.example",
		"x.wild.example":     "x.other.example",
		"y.z.wild.example":   "y.z.other.example",
		"wild.example":       "other.example",
		"q.sub.example":      "fixed.example",
		"tmp.example":        "1.2.3.4",
		"untouched.example":  "untouched.example",
		"notwild.example.co": "notwild.example.co",
	} {
		if got, _ := m.Rewrite(in); got != want {
			t.Errorf("Rewrite(%q) = %q, want %q", in, got, want)
		}
	}
	// A temporary mapping does not replace one in force.
	must(m.Register("a.example", "z.example", FromDNS, now.Add(time.Hour)))
	if got, _ := m.Rewrite("a.example"); got != "c.example" {
		t.Errorf("temporary mapping replaced a permanent one: %q", got)
	}
	got := m.Mappings(KindAll)
	want := []string{
		"*.sub.example fixed.example NEVER",
		"*.wild.example *.other.example NEVER",
		"a.example b.example NEVER",
		"b.example c.example NEVER",
		`tmp.example 1.2.3.4 "2026-01-02 03:05:05"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Mappings(all) =\n%q\nwant\n%q", got, want)
	}
	if got := m.Mappings(KindConfig); len(got) != 1 || got[0] != "*.sub.example fixed.example NEVER" {
		t.Errorf("Mappings(config) = %q", got)
	}
	if got := m.Mappings(KindCache); len(got) != 1 {
		t.Errorf("Mappings(cache) = %q", got)
	}
	now = now.Add(2 * time.Minute) // tmp.example expires
	if got, ok := m.Rewrite("tmp.example"); ok {
		t.Errorf("expired mapping used: %q", got)
	}
	// Mapping an address to itself removes it; loops stop.
	must(m.Register("a.example", "a.example", FromController, time.Time{}))
	if got, _ := m.Rewrite("a.example"); got != "a.example" {
		t.Errorf("removed mapping still used: %q", got)
	}
	must(m.Register("l1.example", "l2.example", FromController, time.Time{}))
	must(m.Register("l2.example", "l1.example", FromController, time.Time{}))
	m.Rewrite("l1.example") // must return
	for _, bad := range [][2]string{{"*", "x"}, {"x", "*"}, {"a.b", "*.c.d"}, {"a b", "c"}, {"a", "c:d"}, {"", "x"}} {
		if err := m.Register(bad[0], bad[1], FromController, time.Time{}); err == nil {
			t.Errorf("Register(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestSetConfigured(t *testing.T) {
	m, _ := New(Config{}, nil, nil)
	m.Register("ctl.example", "x.example", FromController, time.Time{})
	if errs := m.SetConfigured([][2]string{{"a.example", "b.example"}, {"*", "c"}}); len(errs) != 1 {
		t.Fatalf("errors %v, want one", errs)
	}
	if got, _ := m.Rewrite("a.example"); got != "b.example" {
		t.Fatalf("configured mapping: %q", got)
	}
	m.SetConfigured([][2]string{{"d.example", "e.example"}})
	if got, ok := m.Rewrite("a.example"); ok {
		t.Fatalf("a removed torrc mapping still applies: %q", got)
	}
	if got := m.Mappings(KindConfig); !slices.Equal(got, []string{"d.example e.example NEVER"}) {
		t.Fatalf("config mappings %q", got)
	}
	if got, _ := m.Rewrite("ctl.example"); got != "x.example" {
		t.Fatalf("a controller mapping was dropped: %q", got)
	}
}

func TestVirtualHost(t *testing.T) {
	m := newMap(t, Config{})
	h, err := m.VirtualHost(onion, FromController)
	if err != nil || len(h) != 16+len(".virtual") || !m.InVirtualRange(h) {
		t.Fatalf("VirtualHost: %q, %v", h, err)
	}
	if h2, _ := m.VirtualHost(onion, FromController); h2 != h {
		t.Fatalf("second VirtualHost %q, first %q", h2, h)
	}
	if got, ok := m.Rewrite(strings.ToUpper(h)); !ok || got != onion {
		t.Fatalf("Rewrite(%q) = %q, %v", h, got, ok)
	}
	if m.Virtuals() != 0 {
		t.Fatalf("Virtuals() = %d: host names are not virtual addresses", m.Virtuals())
	}
}
