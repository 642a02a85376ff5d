package tor

import (
	"context"
	"errors"
	"time"

	"tinytor/tor/dir"
)

// ErrNotBootstrapped is returned when a circuit is asked for before the
// client has enough directory information.
var ErrNotBootstrapped = errors.New("not bootstrapped: not enough directory information yet")

// retry delays after a failed bootstrap step (C tor's client schedule
// starts fast and backs off).
var retryDelays = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 60 * time.Second}

func retryDelay(attempt int) time.Duration {
	if attempt >= len(retryDelays) {
		return retryDelays[len(retryDelays)-1]
	}
	return retryDelays[attempt]
}

// Run bootstraps the client and then keeps its directory fresh until ctx
// ends. It returns nil when ctx is cancelled.
func (c *Client) Run(ctx context.Context) error {
	defer c.chans.closeAll()
	c.log.Noticef("Bootstrapped 0%% (starting): Starting")
	cached := c.loadCachedDir()
	if err := c.bootstrap(ctx, cached); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return c.maintain(ctx)
}

// bootstrap gets enough directory information and builds a first circuit.
func (c *Client) bootstrap(ctx context.Context, cached bool) error {
	for attempt := 0; ; attempt++ {
		d := c.currentDir()
		var err error
		switch {
		case d == nil:
			err = c.updateDirectory(ctx, true)
		case !d.enough():
			err = c.updateDirectory(ctx, false)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.boot.problem(err.Error())
		if !sleep(ctx, retryDelay(attempt)) {
			return ctx.Err()
		}
	}
	c.boot.reach(PhaseEnoughDirInfo)
	for attempt := 0; ; attempt++ {
		circ, err := c.BuildCircuit(ctx)
		if err == nil {
			// The first circuit proves the network works; streams get
			// circuits of their own.
			circ.Close()
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.boot.problem("building the first circuit: " + err.Error())
		if !sleep(ctx, retryDelay(attempt)) {
			return ctx.Err()
		}
	}
	c.boot.reach(PhaseDone)
	return nil
}

// maintain refetches the consensus on C tor's schedule (dir-spec 5.1) and
// the microdescriptors it then lacks.
func (c *Client) maintain(ctx context.Context) error {
	failures := 0
	for {
		d := c.currentDir()
		next := dir.NextConsensusFetch(d.consensus, c.now(), c)
		if failures > 0 {
			next = c.now().Add(retryDelay(failures))
		}
		if !sleep(ctx, next.Sub(c.now())) {
			return nil
		}
		if err := c.updateDirectory(ctx, true); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			c.log.Warnf("Could not refresh the directory: %v", err)
			continue
		}
		failures = 0
	}
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
