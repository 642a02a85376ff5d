package circmgr

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/chanmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/dirmgr"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/guard"
	"tinytor/tor/link"
	"tinytor/tor/path"
)

// HopInfo describes n for CREATE2 and EXTEND2.
func HopInfo(n *path.Node) circuit.HopInfo {
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

// built is a circuit with the identifier the control port shows.
type built struct {
	circ *circuit.Circuit
	id   uint64
	hops []*path.Node
}

// buildExit builds a general-purpose exit circuit whose exit allows every
// port in ports: the guard comes from the guard manager (guard-spec), the
// middle and exit from path selection.
func (m *Manager) buildExit(ctx context.Context, ports ...uint16) (*built, error) {
	d := m.cfg.Dir()
	if !d.Enough() {
		return nil, errfmt.Errorf("building a circuit: %w", ErrNotBootstrapped)
	}
	g, h, err := m.cfg.Guards.Pick(guard.ForCircuit, nil)
	if err != nil {
		m.failed.Add(1)
		return nil, errfmt.Errorf("choosing a guard: %w", err)
	}
	var hops []*path.Node
	m.cfg.Rand.With(func(r *rand.Rand) { hops, err = d.Paths.Choose(r, m.pathOptions(), g, ports...) })
	if err != nil {
		h.Close()
		m.failed.Add(1)
		return nil, errfmt.Errorf("choosing a path: %w", err)
	}
	specs := make([]hopSpec, len(hops))
	for i, n := range hops {
		specs[i] = hopSpec{hop: HopInfo(n), node: n}
	}
	// Congestion control with the exit (proposal 324 10.1).
	specs[len(specs)-1].hop.CongestionControl = wantCongestionControl(d, hops[len(hops)-1])
	b, err := m.buildHops(ctx, specs, "GENERAL", h, nil)
	if err != nil {
		m.failed.Add(1)
		return nil, err
	}
	m.built.Add(1)
	b.hops = hops
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
			return errfmt.Errorf("circuit through a non-primary guard not usable (%v)", st)
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

// hopSpec is one hop to build: a relay of the consensus (node set) or
// one known only by its HopInfo.
type hopSpec struct {
	hop      circuit.HopInfo
	node     *path.Node
	nickname string
}

func (h hopSpec) ref() event.RelayRef {
	if h.node != nil {
		return event.RelayRef{ID: h.node.Identity, Nickname: h.node.Nickname}
	}
	return event.RelayRef{ID: h.hop.RSAID, Nickname: h.nickname}
}

// buildHops creates a circuit through specs (specs[0].node must be set),
// reporting the bootstrap phases of the first circuit and CIRC events.
// gh is the guard manager's handle for specs[0]: it learns whether the
// guard worked, and is closed when the circuit closes. control receives
// the relay cells the circuit does not handle itself.
func (m *Manager) buildHops(ctx context.Context, specs []hopSpec, purpose string, gh *guard.Handle,
	control func(hop int, cmd cell.RelayCommand, streamID uint16, data []byte)) (*built, error) {
	if m.cfg.CBT != nil && traceFrom(ctx) == nil { // learned timeouts: see cbt.go
		return m.timed(ctx, len(specs), func(ctx context.Context) (*built, error) {
			return m.buildHops(ctx, specs, purpose, gh, control)
		})
	}
	ctx, cancel := context.WithTimeout(ctx, m.buildTimeout())
	defer cancel()
	bus := m.cfg.Events
	info := event.Circuit{ID: bus.NewID(), Status: "LAUNCHED", Purpose: purpose, Created: m.cfg.Now()}
	report := func() { ev := info; ev.Path = append([]event.RelayRef(nil), info.Path...); bus.Publish(&ev) }
	report()
	guardFailed := true
	fail := func(err error) (*built, error) {
		info.Status, info.Reason = "FAILED", circReason(err)
		report()
		if guardFailed {
			gh.Failed()
		}
		gh.Close()
		return nil, err
	}
	entry := specs[0].node
	p := m.cfg.Progress
	p.Reach(event.PhaseAPConn)
	addr := entry.ORAddrPort()
	if entry.ORPort == 0 { // an IPv6 bridge
		addr, _ = entry.IPv6AddrPort()
	}
	ch, err := m.cfg.Channels.Get(ctx, addr, linkIdentity(entry), entry.Nickname)
	if err != nil {
		return fail(err)
	}
	p.Reach(event.PhaseAPConnDone)
	p.Reach(event.PhaseAPHandshake)
	p.Reach(event.PhaseAPHandshakeDone)
	p.Reach(event.PhaseCircuitCreate)
	cfg := circuit.Config{Pool: m.cfg.Pool, Log: m.cfg.Log, SendmeAcceptMinVersion: m.cfg.Dir().SendmeAcceptMinVersion(), Control: control}
	if specs[len(specs)-1].hop.CongestionControl {
		cfg.CC = ccParams(m.cfg.Dir())
	}
	circ, err := circuit.Create(ctx, chanmgr.Circuits(ch), specs[0].hop, cfg)
	if err != nil {
		return fail(errfmt.Errorf("CREATE2 to %s (%X): %w", entry.Nickname, entry.Identity, err))
	}
	guardFailed = false
	traceFrom(ctx).firstHop()
	info.Path = append(info.Path, specs[0].ref())
	for _, h := range specs[1:] {
		info.Status = "EXTENDED"
		report()
		if err := circ.Extend(ctx, h.hop); err != nil {
			circ.Close()
			var de *circuit.DestroyedError
			if errors.As(err, &de) && (de.Reason == cell.DestroyChannelClosed || de.Reason == cell.DestroyConnectFailed) {
				m.markDown(h.hop.RSAID)
			}
			r := h.ref()
			return fail(errfmt.Errorf("extending to %s (%X): %w", r.Nickname, r.ID, err))
		}
		info.Path = append(info.Path, h.ref())
	}
	traceFrom(ctx).completed()
	gh.Succeeded()
	if err := awaitGuardUsable(ctx, gh); err != nil {
		circ.Close()
		return fail(err)
	}
	info.Status, info.BuildTime = "BUILT", m.cfg.Now().Sub(info.Created)
	report()
	m.cfg.Log.Infof("Circuit %d built through %s", info.ID, describePath(info.Path))
	go func() {
		<-circ.Done()
		gh.Close()
		info.Status, info.Reason = "CLOSED", circReason(circ.Err())
		report()
	}()
	return &built{circ: circ, id: info.ID}, nil
}

// ccParams are the consensus parameters of congestion control.
func ccParams(d *dirmgr.NetDir) *circuit.CCParams {
	var p circuit.CCParams
	if d == nil || d.Consensus == nil {
		p = circuit.DefaultCCParams()
	} else {
		p = circuit.CCParamsFrom(d.Consensus.Param)
	}
	return &p
}

// wantCongestionControl reports whether a circuit ending at exit asks it
// for congestion control, as C tor does: the consensus cc_alg is not 0
// and the exit advertises FlowCtrl=2 and Relay=4 (ntor v3).
func wantCongestionControl(d *dirmgr.NetDir, exit *path.Node) bool {
	if exit == nil || exit.Relay == nil || !exit.MD.HasEd25519 {
		return false
	}
	pr := exit.Relay.Protocols
	return ccParams(d).Enabled() && pr.Supports(dir.ProtoFlowCtrl, 2) && pr.Supports(dir.ProtoRelay, 4)
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

func describePath(hops []event.RelayRef) string {
	names := make([]string, len(hops))
	for i, h := range hops {
		names[i] = h.LongName()
	}
	return strings.Join(names, ",")
}
