package circmgr

import (
	"net/netip"
	"testing"

	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/path"
)

func TestNodeRules(t *testing.T) {
	mk := func(id byte, nick string, addr [4]byte) *path.Node {
		r := &dir.Relay{Nickname: nick, Addr: addr}
		r.Identity[0] = id
		return &path.Node{Relay: r, MD: &dir.Microdesc{}}
	}
	a := mk(1, "alpha", [4]byte{10, 0, 0, 1})
	b := mk(2, "beta", [4]byte{192, 0, 2, 7})
	c := mk(3, "gamma", [4]byte{10, 1, 0, 1})
	var fpA [20]byte
	fpA[0] = 1
	cfg := &config.Config{
		ExcludeNodes:     config.NodeList{{Kind: config.NodeFingerprint, Fingerprint: fpA}},
		ExitNodes:        config.NodeList{{Kind: config.NodeAddress, Prefix: netip.MustParsePrefix("10.0.0.0/8")}},
		ExcludeExitNodes: config.NodeList{{Kind: config.NodeNickname, Nickname: "GAMMA"}},
		EntryNodes:       config.NodeList{{Kind: config.NodeNickname, Nickname: "beta"}},
	}
	m := New(Config{Torrc: func() *config.Config { return cfg }})
	o := m.pathOptions()
	if !o.Exclude(a) || o.Exclude(b) {
		t.Errorf("ExcludeNodes by fingerprint: alpha %v beta %v", o.Exclude(a), o.Exclude(b))
	}
	if !o.ExcludeExit(b) {
		t.Error("beta is outside ExitNodes 10.0.0.0/8 but may exit")
	}
	if !o.ExcludeExit(c) {
		t.Error("gamma is in ExcludeExitNodes (case-insensitive nickname) but may exit")
	}
	f := GuardFilter(cfg)
	if f(a) || !f(b) || f(c) {
		t.Errorf("guard filter: alpha %v beta %v gamma %v; want only beta", f(a), f(b), f(c))
	}
	m.markDown(b.Identity)
	if !o.Exclude(b) {
		t.Error("a relay just marked down is still allowed in paths")
	}
}
