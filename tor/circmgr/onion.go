package circmgr

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"tinytor/tor/cell"
	"tinytor/tor/circuit"
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
}

// BuildTo builds a circuit guard, middle, target. The guard comes from the
// guard manager; the middle is unrelated to both. The circuit is not put
// in the exit pool: the caller owns it and closes it.
func (m *Manager) BuildTo(ctx context.Context, t Target, opts Options) (*circuit.Circuit, error) {
	d := m.cfg.Dir()
	if !d.Enough() {
		return nil, fmt.Errorf("building a circuit: %w", ErrNotBootstrapped)
	}
	last := &path.Node{Relay: nil}
	if n := d.Paths.ByID(t.Hop.RSAID); n != nil {
		last = n
	}
	distinct := m.cfg.Torrc().EnforceDistinctSubnets
	notTarget := func(n *path.Node) bool {
		if n.Identity == t.Hop.RSAID {
			return false
		}
		return last.Relay == nil || !path.Related(n, last, distinct)
	}
	g, h, err := m.cfg.Guards.Pick(guard.ForCircuit, notTarget)
	if err != nil {
		return nil, fmt.Errorf("choosing a guard: %w", err)
	}
	avoid := []*path.Node{g}
	if last.Relay != nil {
		avoid = append(avoid, last)
	}
	var middle *path.Node
	m.cfg.Rand.With(func(r *rand.Rand) {
		cands := d.Paths.Candidates(path.Middle, m.pathOptions(), avoid)
		var kept []*path.Node
		for _, n := range cands {
			if n.Identity != t.Hop.RSAID && !sameAddr(n, t.Hop.Addrs) {
				kept = append(kept, n)
			}
		}
		middle, err = path.Pick(r, d.Consensus, kept, path.Middle)
	})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("choosing a middle relay: %w", err)
	}
	purpose := opts.Purpose
	if purpose == "" {
		purpose = "GENERAL"
	}
	b, err := m.buildHops(ctx, []hopSpec{
		{hop: HopInfo(g), node: g},
		{hop: HopInfo(middle), node: middle},
		{hop: t.Hop, nickname: t.Nickname},
	}, purpose, h, opts.Control)
	if err != nil {
		return nil, err
	}
	return b.circ, nil
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
