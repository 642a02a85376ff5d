package tor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"tinytor/tor/circuit"
	"tinytor/tor/link"
	"tinytor/tor/path"
)

// circuitConfig returns the settings for new circuits, with the consensus
// parameters that affect them.
func (c *Client) circuitConfig() circuit.Config {
	cfg := circuit.Config{Pool: c.pool, Log: c.log}
	if d := c.currentDir(); d != nil && d.consensus != nil {
		cfg.SendmeAcceptMinVersion = int(d.consensus.Param("sendme_accept_min_version", 0, 0, 255))
	}
	return cfg
}

// hopInfo describes n for CREATE2 and EXTEND2.
func hopInfo(n *path.Node) circuit.HopInfo {
	h := circuit.HopInfo{RSAID: n.Identity, NtorKey: n.MD.NtorOnionKey, Addrs: []netip.AddrPort{n.ORAddrPort()}}
	if n.MD.HasEd25519 {
		h.Ed25519ID = n.MD.Ed25519ID
	}
	if ap, ok := n.IPv6AddrPort(); ok {
		h.Addrs = append(h.Addrs, ap)
	}
	return h
}

// linkIdentity is the identity a channel to n must prove.
func linkIdentity(n *path.Node) link.Identity {
	id := link.Identity{RSA: n.Identity}
	if n.MD.HasEd25519 {
		id.Ed25519 = n.MD.Ed25519ID
	}
	return id
}

// pathOptions turns the torrc into path-selection rules.
func (c *Client) pathOptions() *path.Options {
	return &path.Options{EnforceDistinctSubnets: c.conf().EnforceDistinctSubnets}
}

// buildTimeout is how long one circuit build may take.
func (c *Client) buildTimeout() time.Duration {
	if t := c.conf().CircuitBuildTimeout; t > 0 {
		return t
	}
	return 60 * time.Second
}

// BuildCircuit builds a three-hop circuit whose exit allows every port in
// ports (any exit if none are given).
func (c *Client) BuildCircuit(ctx context.Context, ports ...uint16) (*circuit.Circuit, error) {
	circ, _, err := c.buildCircuitHops(ctx, ports...)
	return circ, err
}

// buildCircuitHops is BuildCircuit that also returns the path.
func (c *Client) buildCircuitHops(ctx context.Context, ports ...uint16) (*circuit.Circuit, []*path.Node, error) {
	d := c.currentDir()
	if !d.enough() {
		return nil, nil, fmt.Errorf("building a circuit: %w", ErrNotBootstrapped)
	}
	var hops []*path.Node
	var err error
	c.withRand(func(r *rand.Rand) { hops, err = d.paths.Choose(r, c.pathOptions(), nil, ports...) })
	if err != nil {
		c.circuitsFailed.Add(1)
		return nil, nil, fmt.Errorf("choosing a path: %w", err)
	}
	circ, err := c.buildPath(ctx, hops)
	if err != nil {
		c.circuitsFailed.Add(1)
		return nil, nil, err
	}
	c.circuitsBuilt.Add(1)
	return circ, hops, nil
}

// buildPath creates a circuit through hops, reporting the bootstrap
// phases of the first circuit.
func (c *Client) buildPath(ctx context.Context, hops []*path.Node) (*circuit.Circuit, error) {
	ctx, cancel := context.WithTimeout(ctx, c.buildTimeout())
	defer cancel()
	guard := hops[0]
	c.boot.reach(PhaseAPConn)
	ch, err := c.chans.get(ctx, guard.ORAddrPort(), linkIdentity(guard))
	if err != nil {
		return nil, err
	}
	c.boot.reach(PhaseAPConnDone)
	c.boot.reach(PhaseAPHandshake)
	c.boot.reach(PhaseAPHandshakeDone)
	c.boot.reach(PhaseCircuitCreate)
	circ, err := circuit.Create(ctx, circChannel{ch}, hopInfo(guard), c.circuitConfig())
	if err != nil {
		return nil, fmt.Errorf("CREATE2 to %s (%X): %w", guard.Nickname, guard.Identity, err)
	}
	for _, h := range hops[1:] {
		if err := circ.Extend(ctx, hopInfo(h)); err != nil {
			circ.Close()
			return nil, fmt.Errorf("extending to %s (%X): %w", h.Nickname, h.Identity, err)
		}
	}
	c.log.Infof("Circuit %d built through %s", circ.ID(), describePath(hops))
	return circ, nil
}

func describePath(hops []*path.Node) string {
	s := ""
	for i, h := range hops {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("$%X~%s", h.Identity, h.Nickname)
	}
	return s
}
