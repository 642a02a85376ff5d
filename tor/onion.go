package tor

import (
	"context"

	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/path"
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

// BuildCircuitTo builds a circuit guard, middle, target (circmgr.BuildTo).
// The caller owns the circuit and closes it.
func (c *Client) BuildCircuitTo(ctx context.Context, t circmgr.Target, opts circmgr.Options) (*circuit.Circuit, error) {
	return c.circs.BuildTo(ctx, t, opts)
}
