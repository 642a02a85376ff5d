package tor

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

// This file is the part of the client that onion services use: a view of
// the directory (for the HSDir ring) and circuits that end at a chosen
// relay (an HSDir, an introduction point, a rendezvous point).

// NetworkView returns the directory in use (the consensus and the relays
// with microdescriptors), or nil before the client has enough of it.
// The view is immutable: a new consensus gives a new view.
func (c *Client) NetworkView() *path.Dir {
	d := c.currentDir()
	if !d.enough() {
		return nil
	}
	return d.paths
}

// Target is the last hop of a circuit built with BuildCircuitTo: a relay
// from the consensus or one known only from an onion service descriptor
// or an INTRODUCE2 cell (link specifiers and an ntor key).
type Target struct {
	Hop      circuit.HopInfo
	Nickname string // for logs; may be empty
}

// TargetNode is the Target for a relay of the network view.
func TargetNode(n *path.Node) Target { return Target{Hop: hopInfo(n), Nickname: n.Nickname} }

// CircuitOptions configure a circuit for onion-service use.
type CircuitOptions struct {
	// Purpose is shown by the control port (HS_CLIENT_HSDIR,
	// HS_CLIENT_INTRO, HS_CLIENT_REND, HS_SERVICE_HSDIR, HS_SERVICE_INTRO,
	// HS_SERVICE_REND).
	Purpose string
	// Control receives the relay cells the circuit does not handle itself
	// (INTRO_ESTABLISHED, RENDEZVOUS2, INTRODUCE2, ...), on the circuit's
	// goroutine; data is valid only during the call.
	Control func(hop int, cmd cell.RelayCommand, streamID uint16, data []byte)
}

// BuildCircuitTo builds a circuit guard, middle, target. The guard comes
// from the guard manager; the middle is unrelated to both. The circuit is
// not put in the exit pool: the caller owns it and closes it.
func (c *Client) BuildCircuitTo(ctx context.Context, t Target, opts CircuitOptions) (*circuit.Circuit, error) {
	d := c.currentDir()
	if !d.enough() {
		return nil, fmt.Errorf("building a circuit: %w", ErrNotBootstrapped)
	}
	last := &path.Node{Relay: nil}
	if n := d.paths.ByID(t.Hop.RSAID); n != nil {
		last = n
	}
	notTarget := func(n *path.Node) bool {
		if n.Identity == t.Hop.RSAID {
			return false
		}
		return last.Relay == nil || !path.Related(n, last, c.conf().EnforceDistinctSubnets)
	}
	g, h, err := c.guards.Pick(guard.ForCircuit, notTarget)
	if err != nil {
		return nil, fmt.Errorf("choosing a guard: %w", err)
	}
	avoid := []*path.Node{g}
	if last.Relay != nil {
		avoid = append(avoid, last)
	}
	var middle *path.Node
	c.withRand(func(r *rand.Rand) {
		cands := d.paths.Candidates(path.Middle, c.pathOptions(), avoid)
		var kept []*path.Node
		for _, n := range cands {
			if n.Identity != t.Hop.RSAID && !sameAddr(n, t.Hop.Addrs) {
				kept = append(kept, n)
			}
		}
		middle, err = path.Pick(r, d.consensus, kept, path.Middle)
	})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("choosing a middle relay: %w", err)
	}
	purpose := opts.Purpose
	if purpose == "" {
		purpose = "GENERAL"
	}
	b, err := c.buildHops(ctx, []hopSpec{
		{hop: hopInfo(g), node: g},
		{hop: hopInfo(middle), node: middle},
		{hop: t.Hop, nickname: t.Nickname},
	}, purpose, h, opts.Control)
	if err != nil {
		return nil, err
	}
	return b.Circuit, nil
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
