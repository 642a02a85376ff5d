package dirmgr

import (
	"net/netip"

	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/link"
	"tinytor/tor/path"
	"tinytor/tor/rng"
)

// source is a relay that serves directory documents over BEGIN_DIR.
type source struct {
	name string
	nick string
	addr netip.AddrPort
	id   link.Identity
	// hop, when the cache knows the relay's ntor key, lets the one-hop
	// circuit use ntor instead of CREATE_FAST (tor-spec 5.1.5).
	hop *circuit.HopInfo
}

// sources lists where to fetch directory documents from, in the order to
// try: with a consensus, the directory caches it lists (as C tor clients
// do, sparing the authorities); then fallbacks and authorities in random
// order.
func (m *Manager) sources() []source {
	var caches, boot []source
	d := m.Current()
	if d != nil && d.Consensus != nil {
		for i := range d.Consensus.Relays {
			r := &d.Consensus.Relays[i]
			if r.Flags.Has(dir.FlagV2Dir) && r.Flags.Has(dir.FlagRunning) && r.ORPort != 0 {
				caches = append(caches, source{name: "directory cache " + r.Nickname, nick: r.Nickname, addr: r.ORAddrPort(), id: link.Identity{RSA: r.Identity}})
			}
		}
	}
	cfg := m.cfg.Torrc()
	for _, a := range cfg.Authorities() {
		if a.ORPort == 0 || !a.IsV3() {
			continue
		}
		boot = append(boot, source{
			name: "directory authority " + a.Nickname,
			nick: a.Nickname,
			addr: netip.AddrPortFrom(a.Addr.Addr(), a.ORPort),
			id:   link.Identity{RSA: a.Fingerprint},
		})
	}
	for _, f := range cfg.Fallbacks() {
		boot = append(boot, source{
			name: "fallback directory " + f.Addr.String(),
			addr: netip.AddrPortFrom(f.Addr, f.ORPort),
			id:   link.Identity{RSA: f.ID},
		})
	}
	rng.Shuffle(m.cfg.Rand, caches)
	rng.Shuffle(m.cfg.Rand, boot)
	all := append(caches, boot...)
	if d.Enough() {
		for i := range all {
			all[i].withNtorKey(d.Paths)
		}
	}
	return all
}

// withNtorKey sets s.hop when the directory knows s's microdescriptor at
// the address s is reached on.
func (s *source) withNtorKey(p *path.Dir) {
	if n := p.ByID(s.id.RSA); n != nil && n.ORAddrPort() == s.addr {
		s.hop = hopFor(n, s.addr, &s.id)
	}
}

// guardSource is the directory guard (or bridge) n as a source; its
// microdescriptor, when the guard manager's view has one, gives the ntor
// key for the one-hop circuit.
func guardSource(kind string, n *path.Node) source {
	addr := n.ORAddrPort()
	if n.ORPort == 0 {
		addr, _ = n.IPv6AddrPort()
	}
	src := source{name: kind + n.Nickname, nick: n.Nickname, addr: addr, id: link.Identity{RSA: n.Identity}}
	src.hop = hopFor(n, addr, &src.id)
	return src
}

// hopFor returns what a one-hop circuit to n at addr needs to use ntor
// (adding n's Ed25519 identity, if known, to id), or nil if n's
// microdescriptor is unknown or has no ntor key.
func hopFor(n *path.Node, addr netip.AddrPort, id *link.Identity) *circuit.HopInfo {
	if n.MD == nil || !n.MD.HasNtorKey {
		return nil
	}
	h := &circuit.HopInfo{RSAID: n.Identity, NtorKey: n.MD.NtorOnionKey, Addrs: []netip.AddrPort{addr}}
	if n.MD.HasEd25519 {
		h.Ed25519ID = n.MD.Ed25519ID
		id.Ed25519 = n.MD.Ed25519ID
	}
	return h
}
