package circmgr

import (
	"context"
	"math/rand/v2"
	"net/netip"

	"tinytor/tor/cell"
	"tinytor/tor/circuit"
	"tinytor/tor/config"
	"tinytor/tor/errfmt"
	"tinytor/tor/guard"
	"tinytor/tor/path"
)

// Circuits that end at a chosen relay, for onion services: an HSDir, an
// introduction point, a rendezvous point.

// Target is the last hop of a circuit built with BuildTo: a relay from the
// consensus or one known only from an onion service descriptor or an
// INTRODUCE2 cell (link specifiers and an ntor key).
type Target struct {
	Hop      circuit.HopInfo
	Nickname string // for logs; may be empty
}

// TargetNode is the Target for a relay of the network view.
func TargetNode(n *path.Node) Target { return Target{Hop: HopInfo(n), Nickname: n.Nickname} }

// Options configure a circuit for onion-service use.
type Options struct {
	// Purpose is shown by the control port (HS_CLIENT_HSDIR,
	// HS_CLIENT_INTRO, HS_CLIENT_REND, HS_SERVICE_HSDIR, HS_SERVICE_INTRO,
	// HS_SERVICE_REND).
	Purpose string
	// Control receives the relay cells the circuit does not handle itself
	// (INTRO_ESTABLISHED, RENDEZVOUS2, INTRODUCE2, ...), on the circuit's
	// goroutine; data is valid only during the call.
	Control func(hop int, cmd cell.RelayCommand, streamID uint16, data []byte)
	// Layer2, if set, gives the circuit's second hop (vanguards-lite);
	// nil means a bandwidth-weighted middle.
	Layer2 Layer2
}

// Layer2 gives the second hop of onion-service circuits: the layer-2
// guards of vanguards-lite (proposal 333; *vanguards.Manager).
type Layer2 interface {
	// Enabled reports whether layer-2 guards are used with d (the
	// consensus parameter vanguards-lite-enabled).
	Enabled(d *path.Dir) bool
	// Pick returns a layer-2 guard listed in d for which usable returns
	// true; usable must not call the Layer2.
	Pick(d *path.Dir, usable func(*path.Node) bool) (*path.Node, error)
}

// ExcludedNode returns a filter that reports whether the configuration in
// force excludes n (ExcludeNodes), for the layer-2 guards.
func ExcludedNode(torrc func() *config.Config) func(*path.Node) bool {
	return func(n *path.Node) bool { return nodeMatches(torrc().ExcludeNodes, n) }
}

// onionHops is the length of an onion-service circuit, target included,
// as C tor's route_len_for_purpose gives it: 3 for the client's
// rendezvous circuit, whose last hop the client chose itself
// (C -> G -> L2 -> Rend), 4 for the others, whose last hop someone else
// chose or may learn of; the extra middle also keeps that hop from seeing
// the layer-2 guard (C -> G -> L2 -> M -> HSDir, Intro or Rend).
func onionHops(purpose string) int {
	if purpose == "HS_CLIENT_REND" {
		return 3
	}
	return 4
}

// BuildTo builds a circuit to t for an onion service: guard, layer-2
// guard, t for the client's rendezvous circuit (Purpose HS_CLIENT_REND),
// guard, layer-2 guard, middle, t otherwise (see onionPath). The circuit
// is not put in the exit pool: the caller owns it and closes it.
func (m *Manager) BuildTo(ctx context.Context, t Target, opts Options) (*circuit.Circuit, error) {
	d := m.cfg.Dir()
	if !d.Enough() {
		return nil, errfmt.Errorf("building a circuit: %w", ErrNotBootstrapped)
	}
	hops, h, err := m.onionPath(d.Paths, t, opts)
	if err != nil {
		return nil, err
	}
	purpose := opts.Purpose
	if purpose == "" {
		purpose = "GENERAL"
	}
	specs := make([]hopSpec, 0, len(hops)+1)
	for _, n := range hops {
		specs = append(specs, hopSpec{hop: HopInfo(n), node: n})
	}
	specs = append(specs, hopSpec{hop: t.Hop, nickname: t.Nickname})
	b, err := m.buildHops(ctx, specs, purpose, h, opts.Control)
	if err != nil {
		return nil, err
	}
	return b.circ, nil
}

// onionPath chooses the hops before t, with C tor's rules for onion-service
// circuits (circuitbuild.c, build_vanguard_middle_exclude_list and
// guards_choose_guard):
//
//   - the guard comes from the guard manager; on a 4-hop circuit it may be
//     t itself, so that a hostile t learns nothing of our guard from being
//     avoided; on a 3-hop one it may not (relays refuse A-B-A);
//   - the second hop is a layer-2 guard (opts.Layer2, chosen uniformly
//     among those usable) other than the guard and t; without Layer2, or
//     when the consensus disables vanguards-lite, a bandwidth-weighted
//     middle with the same rule;
//   - on a 4-hop circuit, a bandwidth-weighted middle other than the
//     guard, the second hop and t.
//
// As in C tor no family or /16 rule applies between these hops ("to avoid
// impossible-to-build circuit paths, or just situations where our earlier
// guards prevent us from using most of our later ones"); ExcludeNodes and
// relays found unreachable a moment ago are still left out.
func (m *Manager) onionPath(d *path.Dir, t Target, opts Options) ([]*path.Node, *guard.Handle, error) {
	isTarget := func(n *path.Node) bool { return n.Identity == t.Hop.RSAID || sameAddr(n, t.Hop.Addrs) }
	nHops := onionHops(opts.Purpose)
	var allowGuard func(*path.Node) bool
	if nHops == 3 {
		allowGuard = func(n *path.Node) bool { return !isTarget(n) }
	}
	g, h, err := m.cfg.Guards.Pick(guard.ForCircuit, allowGuard)
	if err != nil {
		return nil, nil, errfmt.Errorf("choosing a guard: %w", err)
	}
	pathOpts := m.pathOptions()
	hops := []*path.Node{g}
	usable := func(n *path.Node) bool {
		if isTarget(n) || pathOpts.Exclude(n) {
			return false
		}
		for _, x := range hops {
			if n.Identity == x.Identity {
				return false
			}
		}
		return true
	}
	var second *path.Node
	if opts.Layer2 != nil && opts.Layer2.Enabled(d) {
		second, err = opts.Layer2.Pick(d, usable)
	} else {
		second, err = m.pickMiddle(d, pathOpts, usable)
	}
	if err != nil {
		h.Close()
		return nil, nil, errfmt.Errorf("choosing hop 2 of an onion-service circuit: %w", err)
	}
	hops = append(hops, second)
	if nHops == 4 {
		middle, err := m.pickMiddle(d, pathOpts, usable)
		if err != nil {
			h.Close()
			return nil, nil, errfmt.Errorf("choosing hop 3 of an onion-service circuit: %w", err)
		}
		hops = append(hops, middle)
	}
	return hops, h, nil
}

// pickMiddle chooses a bandwidth-weighted middle among the relays of d
// that opts and usable allow.
func (m *Manager) pickMiddle(d *path.Dir, opts *path.Options, usable func(*path.Node) bool) (*path.Node, error) {
	var kept []*path.Node
	for _, n := range d.Candidates(path.Middle, opts, nil) {
		if usable(n) {
			kept = append(kept, n)
		}
	}
	var n *path.Node
	var err error
	m.cfg.Rand.With(func(r *rand.Rand) { n, err = path.Pick(r, d.Consensus, kept, path.Middle) })
	return n, err
}

// sameAddr reports whether n listens on one of addrs (a relay that is
// not in the consensus may still be one of ours by address).
func sameAddr(n *path.Node, addrs []netip.AddrPort) bool {
	for _, a := range addrs {
		if a == n.ORAddrPort() {
			return true
		}
	}
	return false
}
