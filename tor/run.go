package tor

import (
	"context"
	"errors"
	"sync"
	"time"

	"tinytor/tor/dir"
	"tinytor/tor/path"
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
	defer c.circs.closeAll()
	defer func() {
		if err := c.guards.Save(); err != nil {
			c.log.Warnf("Saving guard state: %v", err)
		}
	}()
	c.log.Noticef("Bootstrapped 0%% (starting): Starting")
	cached := c.loadCachedDir()
	if err := c.bootstrap(ctx, cached); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.prebuild(ctx)
	}()
	err := c.maintain(ctx)
	wg.Wait()
	return err
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
		// The first circuit proves that the network works; it is kept as
		// a clean circuit for the first stream.
		b, err := c.buildExit(ctx)
		if err == nil {
			c.circs.add(&exitCirc{circ: b.Circuit, id: b.id, exit: b.hops[len(b.hops)-1]})
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

// predictedPortLifetime is how long a port used by a stream stays
// predicted (C tor's PredictedPortsRelevanceTime).
const predictedPortLifetime = time.Hour

// notePort records that a stream asked for port, so that clean circuits
// for it are kept ready.
func (c *Client) notePort(port uint16) {
	c.portsMu.Lock()
	c.ports[port] = c.now()
	c.portsMu.Unlock()
}

// predictedPorts returns the ports used within predictedPortLifetime,
// forgetting older ones.
func (c *Client) predictedPorts() []uint16 {
	c.portsMu.Lock()
	defer c.portsMu.Unlock()
	now := c.now()
	var out []uint16
	for p, t := range c.ports {
		if now.Sub(t) > predictedPortLifetime {
			delete(c.ports, p)
			continue
		}
		out = append(out, p)
	}
	return out
}

// prebuildInterval is how often the circuit pool is checked.
const prebuildInterval = 2 * time.Second

// prebuild keeps a clean circuit ready for every predicted port, so the
// first request after idle does not wait for a build, and closes circuits
// that are too dirty to take new streams.
func (c *Client) prebuild(ctx context.Context) {
	t := time.NewTicker(prebuildInterval)
	defer t.Stop()
	for {
		ports := c.predictedPorts()
		clean := c.circs.sweep(c.now(), c.dirtiness(), ports)
		for _, p := range ports {
			if clean[p] > 0 {
				continue
			}
			if f := c.cfg.AllowNewStream; f != nil && !f() {
				break // under memory pressure: build nothing ahead of need
			}
			e, err := c.buildExitCirc(ctx, p, nil)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				c.log.Infof("Could not prebuild a circuit for port %d: %v", p, err)
				break
			}
			for _, q := range ports {
				if path.CanExitTo(e.exit, q) {
					clean[q]++
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
