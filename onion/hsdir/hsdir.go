// Package hsdir reads from a consensus what the HSDir hash ring (package
// ring) needs, the same way for the onion service client and for hosted
// services: the time-period parameters, the shared random values, and the
// relays that store v3 descriptors.
package hsdir

import (
	"context"
	"time"

	"tinytor/onion/keys"
	"tinytor/onion/ring"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/errfmt"
	"tinytor/tor/path"
)

// TimeParams returns the time periods of cons (C tor
// get_time_period_length: on a test network one SRV protocol run, else
// the hsdir_interval consensus parameter, default 1440 minutes, clamped to
// [30, 14400]) and its shared random values (nil where the consensus has
// none; package ring then uses the disaster SRV).
func TimeParams(cons *dir.Consensus, testing bool) (keys.Periods, ring.SRVs, error) {
	interval := cons.Param("hsdir_interval", keys.DefaultPeriodMinutes, keys.MinPeriodMinutes, keys.MaxPeriodMinutes)
	p, err := keys.PeriodsFor(cons.FreshUntil.Sub(cons.ValidAfter), testing, int(interval))
	if err != nil {
		return keys.Periods{}, ring.SRVs{}, errfmt.Errorf("time periods of the consensus valid after %s: %w", cons.ValidAfter.UTC().Format("2006-01-02 15:04:05"), err)
	}
	var srvs ring.SRVs
	if cons.SharedRandCurrent != nil {
		v := cons.SharedRandCurrent.Value
		srvs.Current = &v
	}
	if cons.SharedRandPrevious != nil {
		v := cons.SharedRandPrevious.Value
		srvs.Previous = &v
	}
	return p, srvs, nil
}

// Usable reports whether n can store and serve v3 descriptors, as C tor
// decides for the ring (hs_get_responsible_hsdirs): the HSDir flag,
// support for HSDir=2 (node_supports_v3_hsdir) and a known ed25519
// identity. A relay whose consensus entry lists no protocols supports
// none: C tor's summarize_protover_flags leaves every flag off when the
// "pr" line is absent or empty (and C tor refuses a consensus entry
// without "pr" altogether).
func Usable(n *path.Node) bool {
	return n.Flags.Has(dir.FlagHSDir) && n.MD != nil && n.MD.HasEd25519 && n.Protocols.Supports(dir.ProtoHSDir, 2)
}

// Ring returns the nodes of view's hash ring: the relays Usable accepts.
func Ring(view *path.Dir) []ring.Node {
	var out []ring.Node
	for _, n := range view.Nodes {
		if Usable(n) {
			out = append(out, ring.Node{Ed25519ID: n.MD.Ed25519ID, RSAID: n.Identity})
		}
	}
	return out
}

// Network builds circuits (*tor.Client does).
type Network interface {
	BuildCircuitTo(ctx context.Context, t circmgr.Target, opts circmgr.Options) (*circuit.Circuit, error)
}

// Request sends one HTTP request to the HSDir n over a BEGIN_DIR stream
// at the end of a circuit built for purpose: a GET of urlPath, or with a
// body a POST of it. It returns the answer's body (at most maxBody bytes)
// and closes the stream and the circuit; ctx ending interrupts it.
func Request(ctx context.Context, net Network, n *path.Node, purpose, urlPath string, body []byte, maxBody int64) ([]byte, error) {
	circ, err := net.BuildCircuitTo(ctx, circmgr.TargetNode(n), circmgr.Options{Purpose: purpose})
	if err != nil {
		return nil, errfmt.Errorf("building a circuit: %w", err)
	}
	defer circ.Close()
	s, err := circ.OpenDirStream(ctx)
	if err != nil {
		return nil, errfmt.Errorf("opening a directory stream: %w", err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if body != nil {
		return dir.Post(s, urlPath, body, maxBody)
	}
	return dir.Get(s, urlPath, maxBody)
}
