// Package path chooses relays for circuits as path-spec says: bandwidth
// weighting with the consensus bandwidth-weights, the flags each position
// needs, exit-policy summaries, and no two relays of one family or one /16.
package path

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"tinytor/tor/dir"
	"tinytor/tor/errfmt"
)

// Node is a relay a client can build circuits through: its consensus entry
// and its microdescriptor (which has the ntor key and the policy summary).
type Node struct {
	*dir.Relay
	MD *dir.Microdesc
}

// Dir is the directory view path selection works on.
type Dir struct {
	Consensus *dir.Consensus
	// Nodes are the consensus relays that have a microdescriptor with an
	// ntor key, in consensus order.
	Nodes []*Node
}

// NewDir joins a consensus with the microdescriptors known for it; relays
// whose microdescriptor is missing are left out.
func NewDir(c *dir.Consensus, mds map[[32]byte]*dir.Microdesc) *Dir {
	d := &Dir{Consensus: c}
	for i := range c.Relays {
		r := &c.Relays[i]
		md := mds[r.Microdesc]
		if md == nil || !md.HasNtorKey {
			continue
		}
		d.Nodes = append(d.Nodes, &Node{Relay: r, MD: md})
	}
	return d
}

// ByID returns the node with the given RSA identity, or nil.
func (d *Dir) ByID(id [20]byte) *Node {
	for _, n := range d.Nodes {
		if n.Identity == id {
			return n
		}
	}
	return nil
}

// Position is where in a circuit a relay stands; it selects the bandwidth
// weights (path-spec 2.2, dir-spec 3.8.3).
type Position int

// The positions of a relay in a circuit.
const (
	Guard Position = iota
	Middle
	Exit
)

func (p Position) String() string {
	switch p {
	case Guard:
		return "guard"
	case Middle:
		return "middle"
	case Exit:
		return "exit"
	}
	return fmt.Sprintf("position(%d)", int(p))
}

// Options are the torrc rules that restrict paths.
type Options struct {
	// EnforceDistinctSubnets forbids two relays of one IPv4 /16 (or IPv6
	// /32) in one circuit.
	EnforceDistinctSubnets bool
	// Exclude lists relays never used (ExcludeNodes).
	Exclude func(*Node) bool
	// ExcludeExit lists relays never used as exits (ExcludeExitNodes).
	ExcludeExit func(*Node) bool
	// NeedStable asks for Stable relays (long-lived ports).
	NeedStable bool
}

// ErrNoCandidates is returned when no relay fits a position.
var ErrNoCandidates = errors.New("no suitable relay")

// weights returns the (guard-flagged, middle-only, exit-flagged,
// guard-and-exit) weights of a position, scaled to 1.0. ok is false when
// the consensus has no usable bandwidth-weights.
func weights(c *dir.Consensus, pos Position) (wg, wm, we, wd float64, ok bool) {
	bw := c.BandwidthWeights
	if len(bw) == 0 {
		return 1, 1, 1, 1, false
	}
	scale := float64(c.Param("bwweightscale", 10000, 1, 1<<30))
	get := func(k string) float64 { return float64(bw[k]) / scale }
	switch pos {
	case Guard:
		wg, wm, we, wd = get("Wgg"), get("Wgm"), 0, get("Wgd")
	case Middle:
		wg, wm, we, wd = get("Wmg"), get("Wmm"), get("Wme"), get("Wmd")
	default:
		wg, wm, we, wd = get("Weg"), get("Wem"), get("Wee"), get("Wed")
	}
	return wg, wm, we, wd, true
}

// weight is n's selection weight at pos.
func weight(c *dir.Consensus, n *Node, pos Position) float64 {
	wg, wm, we, wd, _ := weights(c, pos)
	isGuard, isExit := n.Flags.Has(dir.FlagGuard), n.Flags.Has(dir.FlagExit) && !n.Flags.Has(dir.FlagBadExit)
	var w float64
	switch {
	case isGuard && isExit:
		w = wd
	case isGuard:
		w = wg
	case isExit:
		w = we
	default:
		w = wm
	}
	return w * float64(n.Bandwidth)
}

// Pick chooses one node among candidates, weighted for pos. When every
// weight is zero (a young test network reports "Bandwidth=0 Unmeasured=1"
// and odd weights) it chooses uniformly, as C tor does.
func Pick(rng *rand.Rand, c *dir.Consensus, candidates []*Node, pos Position) (*Node, error) {
	if len(candidates) == 0 {
		return nil, errfmt.Errorf("choosing %s: %w", pos, ErrNoCandidates)
	}
	var total float64
	for _, n := range candidates {
		total += weight(c, n, pos)
	}
	if total <= 0 {
		return candidates[rng.IntN(len(candidates))], nil
	}
	x := rng.Float64() * total
	for _, n := range candidates {
		x -= weight(c, n, pos)
		if x < 0 {
			return n, nil
		}
	}
	return candidates[len(candidates)-1], nil
}

// usable reports whether n may be used at all under opts.
func usable(n *Node, opts *Options) bool {
	if !n.Flags.Has(dir.FlagRunning) || !n.Flags.Has(dir.FlagValid) {
		return false
	}
	if opts.NeedStable && !n.Flags.Has(dir.FlagStable) {
		return false
	}
	return opts.Exclude == nil || !opts.Exclude(n)
}

// CanExitTo reports whether n's policy summary allows exiting to port.
func CanExitTo(n *Node, port uint16) bool {
	return !n.Flags.Has(dir.FlagBadExit) && n.MD.Policy.Allows(port)
}

// Related reports whether a and b must not share a circuit: the same
// relay, mutually declared family members, or (when distinct subnets are
// enforced) the same IPv4 /16.
func Related(a, b *Node, enforceSubnets bool) bool {
	if a.Identity == b.Identity {
		return true
	}
	if a.MD.Family != nil && b.MD.Family != nil && a.MD.Family.ContainsID(b.Identity) && b.MD.Family.ContainsID(a.Identity) {
		return true
	}
	if enforceSubnets && a.Addr[0] == b.Addr[0] && a.Addr[1] == b.Addr[1] {
		return true
	}
	return false
}

// Candidates returns the nodes usable at pos that are unrelated to every
// node in avoid. For Exit, ports (if any) must all be allowed.
func (d *Dir) Candidates(pos Position, opts *Options, avoid []*Node, ports ...uint16) []*Node {
	var out []*Node
next:
	for _, n := range d.Nodes {
		if !usable(n, opts) {
			continue
		}
		switch pos {
		case Guard:
			if !n.Flags.Has(dir.FlagGuard) {
				continue
			}
		case Exit:
			if opts.ExcludeExit != nil && opts.ExcludeExit(n) {
				continue
			}
			for _, p := range ports {
				if !CanExitTo(n, p) {
					continue next
				}
			}
			if len(ports) == 0 && !n.MD.Policy.AllowsAny() {
				continue
			}
		}
		for _, a := range avoid {
			if Related(n, a, opts.EnforceDistinctSubnets) {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

// Choose builds a three-hop path guard, middle, exit. guard may be given
// (from the guard manager); if nil one is picked. The exit is chosen
// first, as path-spec 2.2 says, so that scarce exits are not excluded by
// the other hops.
func (d *Dir) Choose(rng *rand.Rand, opts *Options, guard *Node, ports ...uint16) ([]*Node, error) {
	var avoid []*Node
	if guard != nil {
		avoid = append(avoid, guard)
	}
	exit, err := Pick(rng, d.Consensus, d.Candidates(Exit, opts, avoid, ports...), Exit)
	if err != nil {
		return nil, err
	}
	if guard == nil {
		guard, err = Pick(rng, d.Consensus, d.Candidates(Guard, opts, []*Node{exit}), Guard)
		if err != nil {
			return nil, err
		}
	}
	middle, err := Pick(rng, d.Consensus, d.Candidates(Middle, opts, []*Node{guard, exit}), Middle)
	if err != nil {
		return nil, err
	}
	return []*Node{guard, middle, exit}, nil
}

// EnoughDirInfo reports whether the directory allows building circuits:
// C tor's rule of thumb is that a useful fraction of the possible paths
// have their microdescriptors (PathsNeededToBuildCircuits, default 60%).
// Here: at least fraction of the consensus weight of guards, middles and
// exits each is covered by known microdescriptors, and there are at least
// three usable relays.
func EnoughDirInfo(c *dir.Consensus, mds map[[32]byte]*dir.Microdesc, fraction float64) bool {
	var have, total [3]float64
	usableNodes := 0
	for i := range c.Relays {
		r := &c.Relays[i]
		if !r.Flags.Has(dir.FlagRunning) || !r.Flags.Has(dir.FlagValid) {
			continue
		}
		bw := float64(r.Bandwidth) + 1 // unmeasured zero-weight relays still count
		md := mds[r.Microdesc]
		known := md != nil && md.HasNtorKey
		if known {
			usableNodes++
		}
		classes := []int{1}
		if r.Flags.Has(dir.FlagGuard) {
			classes = append(classes, 0)
		}
		if r.Flags.Has(dir.FlagExit) {
			classes = append(classes, 2)
		}
		for _, k := range classes {
			total[k] += bw
			if known {
				have[k] += bw
			}
		}
	}
	if usableNodes < 3 {
		return false
	}
	for k := range total {
		if total[k] > 0 && have[k]/total[k] < fraction {
			return false
		}
	}
	return true
}
