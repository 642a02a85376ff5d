// Package tor is the Tor client. A Client composes the parts that each do
// one job:
//
//   - tor/chanmgr, the channel manager: TLS links to relays, one per relay;
//   - tor/dirmgr, the directory manager: fetch, verify, cache and refresh
//     the consensus and microdescriptors, and the current view of the
//     network;
//   - tor/circmgr, the circuit manager: builds, the pool of exit circuits
//     with isolation and dirtiness, prebuilding, pressure;
//   - tor/bootstrap, the bootstrap phases; tor/event, the event bus.
//
// The Client itself dispatches streams (Dial, Resolve) onto pool circuits,
// runs the bootstrap and the directory refresh, and answers the status
// queries of the control port. Dependencies point one way: SOCKS →
// streams (this package) → circuits → channels → TLS.
package tor

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"tinytor/tor/bootstrap"
	"tinytor/tor/bridge"
	"tinytor/tor/cbt"
	"tinytor/tor/cell"
	"tinytor/tor/chanmgr"
	"tinytor/tor/circmgr"
	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/dirmgr"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/guard"
	"tinytor/tor/link"
	"tinytor/tor/pt"
	"tinytor/tor/rng"
	"tinytor/tor/torlog"
	"tinytor/tor/vanguards"
)

// ErrNotBootstrapped is returned when a stream or circuit is asked for
// before the client has enough directory information.
var ErrNotBootstrapped = circmgr.ErrNotBootstrapped

// Config is what a Client is built from.
type Config struct {
	// Torrc is the loaded configuration.
	Torrc *config.Config
	// Log receives the client's log lines; nil discards them.
	Log *torlog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Events is the bus the client publishes its events on (bootstrap,
	// circuits, streams, channels, consensuses, NETINFO skews, NEWNYM);
	// nil gives the client a bus of its own (see Client.Events).
	Events *event.Bus
	// Cache stores directory documents; nil means files in the torrc's
	// CacheDirectory.
	Cache dir.FileStore
	// State persists the guards and the circuit build times (board/state
	// on a router; names "guards", "cbt" and "vanguards"); nil keeps them in
	// memory only.
	State guard.Persister
	// MaxQueuedCells bounds the cells the client holds at once, received
	// or to send: the capacity of its cell pool, which is never exceeded
	// (reading from relays waits instead; see tor/cell). The board sets it
	// from MaxMemInQueues (board/mem's Caps().QueuedCells); 0 means
	// cell.DefaultPoolCapacity.
	MaxQueuedCells int
	// AllowNewStream, if set, is asked before each new stream and each
	// prebuilt circuit; false makes Dial fail with ErrOverloaded (the
	// board's memory budget under pressure).
	AllowNewStream func() bool
}

// Stats are counters a test or the metrics page reads.
type Stats struct {
	// ConsensusFetches counts consensus documents downloaded.
	ConsensusFetches int64
	// MicrodescFetches counts microdescriptors downloaded.
	MicrodescFetches int64
	// CertFetches counts authority certificates downloaded.
	CertFetches int64
	// CircuitsBuilt counts circuits completed.
	CircuitsBuilt int64
	// CircuitsFailed counts circuit builds that failed.
	CircuitsFailed int64
	// ConsensusBytes, MicrodescBytes and CertBytes are the directory bytes
	// fetched by document type.
	ConsensusBytes, MicrodescBytes, CertBytes int64
	// ConsensusDiffs counts the consensus diffs applied, and
	// ConsensusDiffFallbacks those refused (the full consensus was fetched
	// instead).
	ConsensusDiffs, ConsensusDiffFallbacks int64
	// MicrodescsRejected counts the malformed microdescriptors skipped in
	// downloads.
	MicrodescsRejected int64
}

// Client is a Tor client. Create it with New and start it with Run.
type Client struct {
	torrc  atomic.Pointer[config.Config]
	cfg    Config
	log    *torlog.Logger
	now    func() time.Time
	bus    *event.Bus
	pool   *cell.Pool
	boot   *bootstrap.Reporter
	chans  *chanmgr.Manager
	dirs   *dirmgr.Manager
	circs  *circmgr.Manager
	guards *guard.Manager
	// l2 are the layer-2 guards of onion-service circuits.
	l2     *vanguards.Manager
	status *status
	rand   *rng.Source
	// bridges is set with UseBridges; out dials channels (transports,
	// upstream proxy).
	bridges *bridge.Manager
	out     *outbound
	// cbt learns the circuit build timeout.
	cbt *cbt.Estimator
}

// New checks cfg and returns a Client that has not started yet.
func New(cfg Config) (*Client, error) {
	if cfg.Torrc == nil {
		return nil, errors.New("tor: no configuration")
	}
	c := &Client{cfg: cfg, log: cfg.Log, now: cfg.Now, bus: cfg.Events}
	c.pool = cell.NewPool(max(cfg.MaxQueuedCells, 0))
	if c.log == nil {
		c.log = torlog.Discard()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.bus == nil {
		c.bus = &event.Bus{}
	}
	c.torrc.Store(cfg.Torrc)
	store := cfg.Cache
	if store == nil {
		if cfg.Torrc.CacheDirectory == "" {
			return nil, errors.New("tor: no CacheDirectory configured")
		}
		store = dir.DirStore{Dir: cfg.Torrc.CacheDirectory}
	}
	rnd, err := rng.New()
	if err != nil {
		return nil, errfmt.Errorf("tor: %w", err)
	}
	c.rand = rnd
	c.status = newStatus(c.bus)
	c.boot = bootstrap.New(c.log, c.bus)
	c.guards = guard.New(guardOptions(cfg, c.now, c.log))
	c.l2 = vanguards.New(vanguards.Options{Now: c.now, Log: c.log, Store: cfg.State,
		Exclude: circmgr.ExcludedNode(c.conf), RelaxFlags: cfg.Torrc.TestingTorNetwork})
	c.cbt = cbt.New(cbt.Options{NoLearn: !cfg.Torrc.LearnCircuitBuildTimeout, Fixed: cfg.Torrc.CircuitBuildTimeout,
		Now: c.now, Log: c.log, Events: c.bus, Store: cfg.State})
	if err := c.cbt.Load(); err != nil {
		c.log.Warnf("Circuit build times: %v", err)
	}
	c.chans = chanmgr.New(chanmgr.Config{Log: c.log, Now: c.now, Pool: c.pool, Events: c.bus,
		Dial: func(ctx context.Context, addr netip.AddrPort, id link.Identity) (net.Conn, error) {
			return c.out.dial(ctx, addr, id)
		}})
	useBridges := cfg.Torrc.UseBridges
	if useBridges {
		c.bridges = bridge.New(bridge.Config{Bridges: cfg.Torrc.Bridges, Channels: c.chans, Pool: c.pool, Log: c.log, Now: c.now, Cache: store})
	}
	c.out = &outbound{bridges: c.bridges, progress: c.boot} // direct until Run starts the transports
	c.dirs = dirmgr.New(dirmgr.Config{
		Torrc: c.conf, Log: c.log, Now: c.now, Cache: &dir.Cache{Store: store}, Channels: c.chans,
		Pool: c.pool, Progress: c.boot, Events: c.bus, Rand: rnd, Guards: c.guards, BridgesOnly: useBridges,
		OnInstall: func(d *dirmgr.NetDir) {
			c.l2.SetConsensus(d.Paths)
			if !useBridges { // with bridges, the guards are the bridges
				c.guards.SetConsensus(d.Paths)
			}
		},
	})
	c.circs = circmgr.New(circmgr.Config{
		Torrc: c.conf, Log: c.log, Now: c.now, Pool: c.pool, Events: c.bus, Progress: c.boot,
		Channels: c.chans, Dir: c.dirs.Current, Guards: c.guards, Rand: rnd, AllowPrebuild: cfg.AllowNewStream, CBT: c.cbt,
	})
	return c, nil
}

// conf returns the configuration in force.
func (c *Client) conf() *config.Config { return c.torrc.Load() }

// Config returns the configuration in force (the one given to New or the
// latest Reconfigure).
func (c *Client) Config() *config.Config { return c.conf() }

// Rand returns the client's seeded generator (path selection, schedules,
// jitter), for the onion services to share.
func (c *Client) Rand() *rng.Source { return c.rand }

// Events returns the bus the client publishes on.
func (c *Client) Events() *event.Bus { return c.bus }

// Reconfigure applies a reloaded torrc (SIGHUP, SETCONF). Options read
// when they are used (path rules, timeouts, dirtiness) take effect for
// the next circuit; the directory authorities take effect at the next
// fetch.
func (c *Client) Reconfigure(cfg *config.Config) {
	c.torrc.Store(cfg)
	c.guards.SetFilter(circmgr.GuardFilter(cfg))
}

// Status returns the bootstrap status.
func (c *Client) Status() event.Bootstrap { return c.boot.Current() }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	d := c.dirs.Stats()
	built, failed := c.circs.Stats()
	return Stats{
		ConsensusFetches:       d.ConsensusFetches,
		MicrodescFetches:       d.MicrodescFetches,
		CertFetches:            d.CertFetches,
		CircuitsBuilt:          built,
		CircuitsFailed:         failed,
		ConsensusBytes:         d.ConsensusBytes,
		MicrodescBytes:         d.MicrodescBytes,
		CertBytes:              d.CertBytes,
		ConsensusDiffs:         d.ConsensusDiffs,
		ConsensusDiffFallbacks: d.ConsensusDiffFallbacks,
		MicrodescsRejected:     d.MicrodescsRejected,
	}
}

// Traffic returns the bytes read from and written to relays (TLS
// included), as GETINFO traffic/read and traffic/written report them.
func (c *Client) Traffic() (read, written uint64) { return c.chans.Traffic() }

// CellPool returns the cell pool's counters.
func (c *Client) CellPool() cell.PoolStats { return c.pool.Stats() }

// CircuitBuildTimeout returns the circuit build timeout in force and
// whether it was learned from build times (false: the initial 60 s, or
// CircuitBuildTimeout when set or when LearnCircuitBuildTimeout is 0).
func (c *Client) CircuitBuildTimeout() (timeout time.Duration, learned bool) {
	return c.cbt.Timeout()
}

// CircuitBuildTimes returns the state of the circuit build time learner,
// as the control port's BUILDTIMEOUT_SET event reports it.
func (c *Client) CircuitBuildTimes() event.BuildTimeoutSet { return c.cbt.Status() }

// Guards returns the sampled entry guards, as GETINFO entry-guards and
// the metrics page show them.
func (c *Client) Guards() []guard.Info { return c.guards.Guards() }

// Directory returns the directory view in use, or nil.
func (c *Client) Directory() *dirmgr.NetDir { return c.dirs.Current() }

// MicrodescText returns the cached text of the microdescriptor with the
// given digest, or "".
func (c *Client) MicrodescText(digest [32]byte) string { return c.dirs.MicrodescText(digest) }

// NewNym makes every later stream use a new circuit, as C tor's SIGNAL
// NEWNYM does, and publishes event.NewNym so that the other layers (the
// onion client's descriptors and rendezvous circuits) forget their state
// too.
func (c *Client) NewNym() {
	c.circs.RetireAll()
	c.l2.Purge() // as C tor's purge_vanguards_lite
	c.bus.Publish(event.NewNym{})
	c.log.Noticef("New identity requested: new streams will use new circuits.")
}

// CloseCircuit closes the pool circuit the control port calls id. With
// ifUnused it refuses (circmgr.ErrCircuitInUse) a circuit that carries
// streams; an unknown id gives circmgr.ErrUnknownCircuit.
func (c *Client) CloseCircuit(id uint64, ifUnused bool) error { return c.circs.Close(id, ifUnused) }

// ShedIdleCircuits closes the exit circuits that carry no stream, to give
// memory back under pressure, and returns how many it closed.
func (c *Client) ShedIdleCircuits() int { return c.circs.ShedIdle() }

// ShedDirtyIdleCircuits closes the circuits that carry no stream but were
// used (dirty) and returns how many it closed.
func (c *Client) ShedDirtyIdleCircuits() int { return c.circs.ShedDirtyIdle() }

// Ping takes and releases, one after the other, the locks that the
// client's loops and streams hold (bootstrap state, directory view,
// circuit pool, channels, events) and returns. A watchdog heartbeat calls
// it: if one of those locks is held forever (a deadlock, a loop stuck
// while holding it), Ping does not return and the beats stop.
func (c *Client) Ping() {
	c.boot.Current()
	c.dirs.Current()
	c.circs.Probe()
	c.chans.Count()
	c.status.probe()
	c.bus.Probe()
}

// guardOptions turns the torrc into guard manager options.
func guardOptions(cfg Config, now func() time.Time, log *torlog.Logger) guard.Options {
	t := cfg.Torrc
	opts := guard.Options{
		Now:            now,
		Log:            log,
		Store:          cfg.State,
		DisableGuards:  !t.UseEntryGuards,
		Filter:         circmgr.GuardFilter(t),
		NumEntryGuards: t.NumEntryGuards,
	}
	if t.UseBridges {
		opts.Selection = guard.BridgeSelection
	}
	if t.TestingTorNetwork {
		// A young test network votes Stable and Fast late (testnet-notes):
		// C tor's TestingTorNetwork relaxes its requirements the same way.
		opts.GuardFlags = dir.FlagGuard | dir.FlagValid | dir.FlagRunning
	}
	return opts
}

// Run bootstraps the client and then keeps its directory fresh and its
// circuits ready until ctx ends. It returns nil when ctx is cancelled.
func (c *Client) Run(ctx context.Context) error {
	defer c.chans.CloseAll()
	defer c.circs.CloseAll()
	defer func() {
		if err := c.guards.Save(); err != nil {
			c.log.Warnf("Saving guard state: %v", err)
		}
		if err := c.cbt.Save(); err != nil {
			c.log.Warnf("Saving circuit build times: %v", err)
		}
	}()
	c.log.Noticef("Bootstrapped 0%% (starting): Starting")
	out, err := newOutbound(c.conf(), c)
	if err != nil {
		return err
	}
	defer out.close()
	c.out = out
	switch {
	case len(out.transports) > 0:
		c.boot.ConnectVia(event.PhaseConnPT)
	case out.proxy != nil:
		c.boot.ConnectVia(event.PhaseConnProxy)
	}
	c.dirs.LoadCache()
	if err := c.bootstrap(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.circs.Prebuild(ctx)
	}()
	if c.bridges != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.bridges.Maintain(ctx, c.guards.SetConsensus)
		}()
	}
	c.dirs.Maintain(ctx)
	wg.Wait()
	return nil
}

// bootstrap gets enough directory information and builds a first circuit.
func (c *Client) bootstrap(ctx context.Context) error {
	if c.bridges != nil {
		if err := c.bootstrapBridges(ctx); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		d := c.dirs.Current()
		var err error
		switch {
		case d == nil:
			err = c.dirs.Update(ctx, true)
		case !d.Enough():
			err = c.dirs.Update(ctx, false)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.boot.Problem(err.Error())
		if !dirmgr.Sleep(ctx, dirmgr.RetryDelay(attempt)) {
			return ctx.Err()
		}
	}
	c.boot.Reach(event.PhaseEnoughDirInfo)
	for attempt := 0; ; attempt++ {
		// The first circuit proves that the network works; it is kept as
		// a clean circuit for the first stream.
		_, err := c.circs.Build(ctx, nil)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.boot.Problem("building the first circuit: " + err.Error())
		if !dirmgr.Sleep(ctx, dirmgr.RetryDelay(attempt)) {
			return ctx.Err()
		}
	}
	c.boot.Reach(event.PhaseDone)
	return nil
}

// bootstrapBridges gets a descriptor for at least one bridge (from the
// cache, else from the bridges) and makes the bridges the guards.
func (c *Client) bootstrapBridges(ctx context.Context) error {
	if n := c.bridges.LoadCache(); n > 0 {
		c.log.Infof("Loaded %d cached bridge descriptors.", n)
	}
	for attempt := 0; !c.bridges.Have(); attempt++ {
		err := c.bridges.Fetch(ctx, false)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.boot.Problem(err.Error())
		if !dirmgr.Sleep(ctx, dirmgr.RetryDelay(attempt)) {
			return ctx.Err()
		}
	}
	c.guards.SetConsensus(c.bridges.Dir())
	return nil
}

// Bridges returns each bridge's state (nil without UseBridges).
func (c *Client) Bridges() []bridge.Status {
	if c.bridges == nil {
		return nil
	}
	return c.bridges.Status()
}

// Transports returns each pluggable transport's state.
func (c *Client) Transports() []pt.Status { return c.out.status() }
