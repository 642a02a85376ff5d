package tor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/circuit"
	"tinytor/tor/guard"
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

// downTime is how long a relay that could not be reached is left out of
// new paths (C tor likewise marks a relay it failed to reach as down
// until the next consensus says otherwise).
const downTime = 2 * time.Minute

// markDown records that a relay could not be reached through a circuit.
func (c *Client) markDown(id [20]byte) {
	c.downMu.Lock()
	if c.down == nil {
		c.down = map[[20]byte]time.Time{}
	}
	c.down[id] = c.now()
	c.downMu.Unlock()
	c.log.Infof("Relay $%X could not be reached; leaving it out of new paths for %s.", id, downTime)
}

// isDown reports whether a relay failed recently.
func (c *Client) isDown(id [20]byte) bool {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	t, ok := c.down[id]
	if !ok {
		return false
	}
	if c.now().Sub(t) > downTime {
		delete(c.down, id)
		return false
	}
	return true
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

// buildExit builds a general-purpose exit circuit: the guard comes from
// the guard manager (guard-spec), the middle and exit from path selection.
func (c *Client) buildExit(ctx context.Context, ports ...uint16) (*builtCircuit, error) {
	d := c.currentDir()
	if !d.enough() {
		return nil, fmt.Errorf("building a circuit: %w", ErrNotBootstrapped)
	}
	g, h, err := c.guards.Pick(guard.ForCircuit, nil)
	if err != nil {
		c.circuitsFailed.Add(1)
		return nil, fmt.Errorf("choosing a guard: %w", err)
	}
	var hops []*path.Node
	c.withRand(func(r *rand.Rand) { hops, err = d.paths.Choose(r, c.pathOptions(), g, ports...) })
	if err != nil {
		h.Close()
		c.circuitsFailed.Add(1)
		return nil, fmt.Errorf("choosing a path: %w", err)
	}
	b, err := c.buildPath(ctx, hops, "GENERAL", h)
	if err != nil {
		c.circuitsFailed.Add(1)
		return nil, err
	}
	c.circuitsBuilt.Add(1)
	return b, nil
}

// guardWait is how long a circuit through a non-primary guard waits to
// learn whether a primary guard is reachable (guard-spec 4.10).
const guardWait = 15 * time.Second

// awaitGuardUsable waits until h says the circuit may be used, or that it
// must not be.
func awaitGuardUsable(ctx context.Context, h *guard.Handle) error {
	t := time.NewTimer(guardWait)
	defer t.Stop()
	tick := time.NewTicker(250 * time.Millisecond) // the guard manager has no notification
	defer tick.Stop()
	for !h.Usable() {
		if st := h.State(); st == guard.Expired || st == guard.Failed || st == guard.Closed {
			return fmt.Errorf("circuit through a non-primary guard not usable (%v)", st)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return errors.New("circuit through a non-primary guard: still waiting for a better guard")
		case <-tick.C:
		}
	}
	return nil
}

// builtCircuit is a circuit with the identifier the control port shows.
type builtCircuit struct {
	*circuit.Circuit
	id   uint64
	hops []*path.Node
}

// hopSpec is one hop to build: a relay of the consensus (node set) or
// one known only by its HopInfo.
type hopSpec struct {
	hop      circuit.HopInfo
	node     *path.Node
	nickname string
}

func (h hopSpec) ref() RelayRef {
	if h.node != nil {
		return RelayRef{ID: h.node.Identity, Nickname: h.node.Nickname}
	}
	return RelayRef{ID: h.hop.RSAID, Nickname: h.nickname}
}

// buildPath creates a circuit through hops, reporting the bootstrap
// phases of the first circuit and CIRC events.
//
// gh is the guard manager's handle for hops[0]: it learns whether the
// guard worked, and is closed when the circuit closes.
func (c *Client) buildPath(ctx context.Context, hops []*path.Node, purpose string, gh *guard.Handle) (*builtCircuit, error) {
	specs := make([]hopSpec, len(hops))
	for i, n := range hops {
		specs[i] = hopSpec{hop: hopInfo(n), node: n}
	}
	b, err := c.buildHops(ctx, specs, purpose, gh, nil)
	if err != nil {
		return nil, err
	}
	b.hops = hops
	return b, nil
}

// buildHops creates a circuit through specs; specs[0].node must be set.
// control receives the relay cells the circuit does not handle itself.
func (c *Client) buildHops(ctx context.Context, specs []hopSpec, purpose string, gh *guard.Handle,
	control func(hop int, cmd cell.RelayCommand, streamID uint16, data []byte)) (*builtCircuit, error) {
	ctx, cancel := context.WithTimeout(ctx, c.buildTimeout())
	defer cancel()
	info := CircuitInfo{ID: c.events.newID(), Status: "LAUNCHED", Purpose: purpose, Created: c.now()}
	c.events.circuit(info)
	guardFailed := true
	fail := func(err error) (*builtCircuit, error) {
		info.Status, info.Reason = "FAILED", circReason(err)
		c.events.circuit(info)
		if guardFailed {
			gh.Failed()
		}
		gh.Close()
		return nil, err
	}
	entry := specs[0].node
	c.boot.reach(PhaseAPConn)
	ch, err := c.chans.get(ctx, entry.ORAddrPort(), linkIdentity(entry), entry.Nickname)
	if err != nil {
		return fail(err)
	}
	c.boot.reach(PhaseAPConnDone)
	c.boot.reach(PhaseAPHandshake)
	c.boot.reach(PhaseAPHandshakeDone)
	c.boot.reach(PhaseCircuitCreate)
	cfg := c.circuitConfig()
	cfg.Control = control
	circ, err := circuit.Create(ctx, circChannel{ch}, specs[0].hop, cfg)
	if err != nil {
		return fail(fmt.Errorf("CREATE2 to %s (%X): %w", entry.Nickname, entry.Identity, err))
	}
	guardFailed = false
	info.Path = append(info.Path, specs[0].ref())
	for _, h := range specs[1:] {
		info.Status = "EXTENDED"
		c.events.circuit(info)
		if err := circ.Extend(ctx, h.hop); err != nil {
			circ.Close()
			var de *circuit.DestroyedError
			if errors.As(err, &de) && (de.Reason == cell.DestroyChannelClosed || de.Reason == cell.DestroyConnectFailed) {
				c.markDown(h.hop.RSAID)
			}
			r := h.ref()
			return fail(fmt.Errorf("extending to %s (%X): %w", r.Nickname, r.ID, err))
		}
		info.Path = append(info.Path, h.ref())
	}
	gh.Succeeded()
	if err := awaitGuardUsable(ctx, gh); err != nil {
		circ.Close()
		return fail(err)
	}
	info.Status, info.BuildTime = "BUILT", c.now().Sub(info.Created)
	c.events.circuit(info)
	c.log.Infof("Circuit %d built through %s", info.ID, describePath(info.Path))
	go func() {
		<-circ.Done()
		gh.Close()
		info.Status, info.Reason = "CLOSED", circReason(circ.Err())
		c.events.circuit(info)
	}()
	return &builtCircuit{Circuit: circ, id: info.ID}, nil
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

func describePath(hops []RelayRef) string {
	s := ""
	for i, h := range hops {
		if i > 0 {
			s += ","
		}
		s += h.LongName()
	}
	return s
}
