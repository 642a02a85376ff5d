package tor

import (
	"context"

	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/path"
	"tinytor/tor/vanguards"
)

// The part of the client that onion services use: a view of the directory
// (for the HSDir ring) and circuits that end at a chosen relay.

// NetworkView returns the directory in use (the consensus and the relays
// with microdescriptors), or nil before the client has enough of it.
// The view is immutable: a new consensus gives a new view.
func (c *Client) NetworkView() *path.Dir {
	d := c.dirs.Current()
	if !d.Enough() {
		return nil
	}
	return d.Paths
}

// BuildCircuitTo builds a circuit to t through a guard and one of the
// client's layer-2 guards (circmgr.BuildTo) unless opts.Layer2 is set.
// The caller owns the circuit and closes it.
func (c *Client) BuildCircuitTo(ctx context.Context, t circmgr.Target, opts circmgr.Options) (*circuit.Circuit, error) {
	if opts.Layer2 == nil {
		opts.Layer2 = c.l2
	}
	return c.circs.BuildTo(ctx, t, opts)
}

// Layer2Guards returns the layer-2 guards of onion-service circuits
// (vanguards-lite).
func (c *Client) Layer2Guards() []vanguards.Info { return c.l2.Guards() }
