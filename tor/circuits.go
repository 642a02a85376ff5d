package tor

import (
	"context"
	"errors"
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
	b, err := c.buildExit(ctx, ports...)
	if err != nil {
		return nil, err
	}
	return b.Circuit, nil
}

// buildExit builds a general-purpose exit circuit.
func (c *Client) buildExit(ctx context.Context, ports ...uint16) (*builtCircuit, error) {
	d := c.currentDir()
	if !d.enough() {
		return nil, fmt.Errorf("building a circuit: %w", ErrNotBootstrapped)
	}
	var hops []*path.Node
	var err error
	c.withRand(func(r *rand.Rand) { hops, err = d.paths.Choose(r, c.pathOptions(), nil, ports...) })
	if err != nil {
		c.circuitsFailed.Add(1)
		return nil, fmt.Errorf("choosing a path: %w", err)
	}
	b, err := c.buildPath(ctx, hops, "GENERAL")
	if err != nil {
		c.circuitsFailed.Add(1)
		return nil, err
	}
	c.circuitsBuilt.Add(1)
	return b, nil
}

// builtCircuit is a circuit with the identifier the control port shows.
type builtCircuit struct {
	*circuit.Circuit
	id   uint64
	hops []*path.Node
}

// buildPath creates a circuit through hops, reporting the bootstrap
// phases of the first circuit and CIRC events.
func (c *Client) buildPath(ctx context.Context, hops []*path.Node, purpose string) (*builtCircuit, error) {
	ctx, cancel := context.WithTimeout(ctx, c.buildTimeout())
	defer cancel()
	info := CircuitInfo{ID: c.events.newID(), Status: "LAUNCHED", Purpose: purpose, Created: c.now()}
	c.events.circuit(info)
	fail := func(err error) (*builtCircuit, error) {
		info.Status, info.Reason = "FAILED", circReason(err)
		c.events.circuit(info)
		return nil, err
	}
	guard := hops[0]
	c.boot.reach(PhaseAPConn)
	ch, err := c.chans.get(ctx, guard.ORAddrPort(), linkIdentity(guard), guard.Nickname)
	if err != nil {
		return fail(err)
	}
	c.boot.reach(PhaseAPConnDone)
	c.boot.reach(PhaseAPHandshake)
	c.boot.reach(PhaseAPHandshakeDone)
	c.boot.reach(PhaseCircuitCreate)
	circ, err := circuit.Create(ctx, circChannel{ch}, hopInfo(guard), c.circuitConfig())
	if err != nil {
		return fail(fmt.Errorf("CREATE2 to %s (%X): %w", guard.Nickname, guard.Identity, err))
	}
	info.Path = append(info.Path, RelayRef{ID: guard.Identity, Nickname: guard.Nickname})
	for _, h := range hops[1:] {
		info.Status = "EXTENDED"
		c.events.circuit(info)
		if err := circ.Extend(ctx, hopInfo(h)); err != nil {
			circ.Close()
			return fail(fmt.Errorf("extending to %s (%X): %w", h.Nickname, h.Identity, err))
		}
		info.Path = append(info.Path, RelayRef{ID: h.Identity, Nickname: h.Nickname})
	}
	info.Status, info.BuildTime = "BUILT", c.now().Sub(info.Created)
	c.events.circuit(info)
	c.log.Infof("Circuit %d built through %s", info.ID, describePath(hops))
	go func() {
		<-circ.Done()
		info.Status, info.Reason = "CLOSED", circReason(circ.Err())
		c.events.circuit(info)
	}()
	return &builtCircuit{Circuit: circ, id: info.ID, hops: hops}, nil
}

// circReason maps a circuit error to a control-spec CIRC reason.
func circReason(err error) string {
	var de *circuit.DestroyedError
	switch {
	case err == nil, errors.Is(err, circuit.ErrClosed):
		return "FINISHED"
	case errors.As(err, &de):
		return "DESTROYED"
	case errors.Is(err, context.DeadlineExceeded):
		return "TIMEOUT"
	case errors.Is(err, circuit.ErrProtocol):
		return "TORPROTOCOL"
	}
	return "CONNECTFAILED"
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
