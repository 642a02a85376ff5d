// Package tor is the Tor client: it ties the torrc, the link channels, the
// directory and the circuits together, reports bootstrap progress, and
// opens streams for the SOCKS and onion front ends.
package tor

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/guard"
	"tinytor/tor/torlog"
)

// Config is what a Client is built from.
type Config struct {
	// Torrc is the loaded configuration.
	Torrc *config.Config
	// Log receives the client's log lines; nil discards them.
	Log *torlog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Cache stores directory documents; nil means files in the torrc's
	// CacheDirectory.
	Cache dir.FileStore
	// State persists the guards (board/state on a router); nil keeps them
	// in memory only.
	State guard.Persister
	// ObserveNetinfo, if set, is told the clock skew each relay's NETINFO
	// cell implies (peer time minus our time), for board/clock.
	ObserveNetinfo func(skew time.Duration)
	// ObserveConsensus, if set, is told the validity of each consensus
	// that verified, for board/clock.
	ObserveConsensus func(validAfter, freshUntil, validUntil time.Time)
	// AllowNewStream, if set, is asked before each new stream; false
	// makes Dial fail with ErrOverloaded (board/mem's Budget under memory
	// pressure).
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
}

// Client is a Tor client. Create it with New and start it with Run.
type Client struct {
	torrc  atomic.Pointer[config.Config]
	cfg    Config
	log    *torlog.Logger
	now    func() time.Time
	pool   *cell.Pool
	boot   *bootstrapReporter
	cache  *dir.Cache
	chans  *chanManager
	events *events
	guards *guard.Manager

	rngMu sync.Mutex
	rng   *rand.Rand

	dirMu  sync.RWMutex
	netdir *netDir

	circs circPool

	downMu sync.Mutex
	down   map[[20]byte]time.Time // relays recently unreachable

	newNymMu    sync.Mutex
	newNymHooks []func()

	portsMu sync.Mutex
	ports   map[uint16]time.Time // predicted ports and when each was last used

	consensusFetches, mdFetches, certFetches atomic.Int64
	circuitsBuilt, circuitsFailed            atomic.Int64
}

// New checks cfg and returns a Client that has not started yet.
func New(cfg Config) (*Client, error) {
	if cfg.Torrc == nil {
		return nil, errors.New("tor: no configuration")
	}
	c := &Client{
		log:   cfg.Log,
		now:   cfg.Now,
		pool:  cell.NewPool(1024),
		ports: map[uint16]time.Time{},
	}
	if c.log == nil {
		c.log = torlog.Discard()
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.torrc.Store(cfg.Torrc)
	c.cfg = cfg
	c.events = newEvents()
	c.boot = newBootstrapReporter(c.log)
	c.boot.subscribe(func(s BootstrapStatus) { c.events.publish(s) })
	store := cfg.Cache
	if store == nil {
		if cfg.Torrc.CacheDirectory == "" {
			return nil, errors.New("tor: no CacheDirectory configured")
		}
		store = dir.DirStore{Dir: cfg.Torrc.CacheDirectory}
	}
	c.cache = &dir.Cache{Store: store}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("tor: seeding the path-selection RNG: %w", err)
	}
	c.rng = rand.New(rand.NewChaCha8(seed))
	c.chans = newChanManager(c)
	c.guards = guard.New(guardOptions(cfg, c))
	// Like C tor, predict web ports at start so that the first request
	// finds a circuit ready.
	for _, p := range []uint16{80, 443} {
		c.ports[p] = c.now()
	}
	return c, nil
}

// conf returns the configuration in force.
func (c *Client) conf() *config.Config { return c.torrc.Load() }

// Reconfigure applies a reloaded torrc (SIGHUP, SETCONF). Options read
// when they are used (path rules, timeouts, dirtiness) take effect for
// the next circuit; the directory authorities take effect at the next
// fetch.
func (c *Client) Reconfigure(cfg *config.Config) {
	c.torrc.Store(cfg)
	c.guards.SetFilter(guardFilter(cfg))
}

// Status returns the bootstrap status.
func (c *Client) Status() BootstrapStatus { return c.boot.current() }

// OnBootstrap registers f to be called on each bootstrap status change.
func (c *Client) OnBootstrap(f func(BootstrapStatus)) { c.boot.subscribe(f) }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		ConsensusFetches: c.consensusFetches.Load(),
		MicrodescFetches: c.mdFetches.Load(),
		CertFetches:      c.certFetches.Load(),
		CircuitsBuilt:    c.circuitsBuilt.Load(),
		CircuitsFailed:   c.circuitsFailed.Load(),
	}
}

// randIntN returns a uniform random int in [0, n) from the client's
// crypto-seeded generator.
func (c *Client) randIntN(n int) int {
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	return c.rng.IntN(n)
}

// withRand runs f with the client's generator held.
func (c *Client) withRand(f func(*rand.Rand)) {
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	f(c.rng)
}

// Int64N implements dir.Rand for the fetch schedule.
func (c *Client) Int64N(n int64) int64 {
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	return c.rng.Int64N(n)
}

// guardOptions turns the torrc into guard manager options.
func guardOptions(cfg Config, c *Client) guard.Options {
	t := cfg.Torrc
	opts := guard.Options{
		Now:            c.now,
		Log:            c.log,
		Store:          cfg.State,
		DisableGuards:  !t.UseEntryGuards,
		Filter:         guardFilter(t),
		NumEntryGuards: t.NumEntryGuards,
	}
	if t.TestingTorNetwork {
		// A young test network votes Stable and Fast late (testnet-notes):
		// C tor's TestingTorNetwork relaxes its requirements the same way.
		opts.GuardFlags = dir.FlagGuard | dir.FlagValid | dir.FlagRunning
	}
	return opts
}
