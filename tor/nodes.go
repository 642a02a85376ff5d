package tor

import (
	"net/netip"
	"strings"

	"tinytor/tor/config"
	"tinytor/tor/path"
)

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
func (c *Client) pathOptions() *path.Options {
	cfg := c.conf()
	return &path.Options{
		EnforceDistinctSubnets: cfg.EnforceDistinctSubnets,
		Exclude: func(n *path.Node) bool {
			return c.isDown(n.Identity) || nodeMatches(cfg.ExcludeNodes, n)
		},
		ExcludeExit: func(n *path.Node) bool {
			if nodeMatches(cfg.ExcludeExitNodes, n) {
				return true
			}
			return len(cfg.ExitNodes) > 0 && !nodeMatches(cfg.ExitNodes, n)
		},
	}
}

// guardFilter applies EntryNodes and ExcludeNodes to the guard sample.
func guardFilter(cfg *config.Config) func(*path.Node) bool {
	return func(n *path.Node) bool {
		if nodeMatches(cfg.ExcludeNodes, n) {
			return false
		}
		return len(cfg.EntryNodes) == 0 || nodeMatches(cfg.EntryNodes, n)
	}
}
