package circmgr

import (
	"net/netip"
	"strings"
	"time"

	"tinytor/tor/config"
	"tinytor/tor/path"
)

// downTime is how long a relay that could not be reached is left out of
// new paths (C tor likewise marks a relay it failed to reach as down
// until the next consensus says otherwise).
const downTime = 2 * time.Minute

// markDown records that a relay could not be reached through a circuit.
func (m *Manager) markDown(id [20]byte) {
	m.downMu.Lock()
	m.down[id] = m.cfg.Now()
	m.downMu.Unlock()
	m.cfg.Log.Infof("Relay $%X could not be reached; leaving it out of new paths for %s.", id, downTime)
}

// isDown reports whether a relay failed recently.
func (m *Manager) isDown(id [20]byte) bool {
	m.downMu.Lock()
	defer m.downMu.Unlock()
	t, ok := m.down[id]
	if !ok {
		return false
	}
	if m.cfg.Now().Sub(t) > downTime {
		delete(m.down, id)
		return false
	}
	return true
}

// nodeMatches reports whether n is named by an entry of list: its
// fingerprint, its nickname, or an address range holding its ORPort
// address (C tor's routerset semantics, without country codes).
func nodeMatches(list config.NodeList, n *path.Node) bool {
	for _, s := range list {
		switch s.Kind {
		case config.NodeFingerprint:
			if s.Fingerprint == n.Identity {
				return true
			}
		case config.NodeNickname:
			if strings.EqualFold(s.Nickname, n.Nickname) {
				return true
			}
		case config.NodeAddress:
			if s.Prefix.Contains(netip.AddrFrom4(n.Addr)) {
				return true
			}
			if ap, ok := n.IPv6AddrPort(); ok && s.Prefix.Contains(ap.Addr()) {
				return true
			}
		}
	}
	return false
}

// pathOptions turns the torrc into path-selection rules: ExcludeNodes,
// ExitNodes and ExcludeExitNodes, the /16 rule, and relays found
// unreachable a moment ago.
func (m *Manager) pathOptions() *path.Options {
	cfg := m.cfg.Torrc()
	return &path.Options{
		EnforceDistinctSubnets: cfg.EnforceDistinctSubnets,
		Exclude: func(n *path.Node) bool {
			return m.isDown(n.Identity) || nodeMatches(cfg.ExcludeNodes, n)
		},
		ExcludeExit: func(n *path.Node) bool {
			if nodeMatches(cfg.ExcludeExitNodes, n) {
				return true
			}
			return len(cfg.ExitNodes) > 0 && !nodeMatches(cfg.ExitNodes, n)
		},
	}
}

// GuardFilter applies EntryNodes and ExcludeNodes to the guard sample.
func GuardFilter(cfg *config.Config) func(*path.Node) bool {
	return func(n *path.Node) bool {
		if nodeMatches(cfg.ExcludeNodes, n) {
			return false
		}
		// With bridges, EntryNodes does not apply (as in C tor); the
		// bridges are the entries.
		return cfg.UseBridges || len(cfg.EntryNodes) == 0 || nodeMatches(cfg.EntryNodes, n)
	}
}
