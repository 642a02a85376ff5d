// Package circmgr is the circuit manager: it builds circuits (guard from
// the guard manager, middle and exit from path selection, CREATE2 and
// EXTEND2 over channels from the channel manager), keeps the pool of exit
// circuits with their isolation keys and dirtiness, prebuilds clean
// circuits for predicted ports, leaves unreachable relays out of new paths
// for a while, and sheds idle circuits under memory pressure. Onion
// services get circuits to a chosen last hop from it too.
package circmgr

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"tinytor/tor/cbt"
	"tinytor/tor/cell"
	"tinytor/tor/chanmgr"
	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/dirmgr"
	"tinytor/tor/event"
	"tinytor/tor/guard"
	"tinytor/tor/lock"
	"tinytor/tor/rng"
	"tinytor/tor/torlog"
)

// ErrNotBootstrapped is returned when a circuit is asked for before the
// client has enough directory information.
var ErrNotBootstrapped = errors.New("not bootstrapped: not enough directory information yet")

// Progress is told the bootstrap phases a circuit build reaches.
type Progress interface{ Reach(event.Phase) }

// Config is what a Manager works with.
type Config struct {
	// Torrc returns the configuration in force (path rules, timeouts,
	// dirtiness), read at each build.
	Torrc func() *config.Config
	Log   *torlog.Logger
	Now   func() time.Time
	// Pool supplies the circuits' cells.
	Pool *cell.Pool
	// Events receives CIRC events (*event.Circuit); the IDs come from it.
	Events *event.Bus
	// Progress is told the bootstrap phases of the first circuit.
	Progress Progress
	Channels *chanmgr.Manager
	// Dir returns the directory view in use (nil before the first).
	Dir    func() *dirmgr.NetDir
	Guards *guard.Manager
	Rand   *rng.Source
	// AllowPrebuild, if set, is asked before a circuit is built ahead of
	// need; false (memory pressure) builds nothing.
	AllowPrebuild func() bool
	// CBT, if set, learns the circuit build timeout (LearnCircuitBuildTimeout)
	// and gives the timeouts; nil means the fixed CircuitBuildTimeout (60 s
	// when unset).
	CBT *cbt.Estimator
}

// Manager builds circuits and keeps the exit circuit pool.
type Manager struct {
	cfg Config

	pool pool

	downMu lock.Mutex
	down   map[[20]byte]time.Time // relays recently unreachable

	portsMu lock.Mutex
	ports   map[uint16]time.Time // predicted ports and when each was last used

	built, failed atomic.Int64

	// life ends with CloseAll: measurement circuits outlive their callers
	// until then.
	life     context.Context
	stopLife context.CancelFunc
	// cbtConsensus is the consensus whose parameters CBT has.
	cbtConsensus atomic.Pointer[dir.Consensus]
	// testing is set while a timeout test circuit is built; wg waits for
	// it.
	testing atomic.Bool
	wg      sync.WaitGroup
	// anyOpenHook replaces anyOpen in tests.
	anyOpenHook func() bool
}

// New returns a Manager with an empty pool. Like C tor, it predicts the
// web ports at start so that the first request finds a circuit ready.
func New(cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = torlog.Discard()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{cfg: cfg, down: map[[20]byte]time.Time{}, ports: map[uint16]time.Time{}}
	m.life, m.stopLife = context.WithCancel(context.Background())
	for _, p := range []uint16{80, 443} {
		m.ports[p] = cfg.Now()
	}
	return m
}

// Stats returns the circuits built and the builds that failed.
func (m *Manager) Stats() (built, failed int64) { return m.built.Load(), m.failed.Load() }

// Probe takes and releases the pool's lock: a watchdog probe that does not
// return when the pool is wedged.
func (m *Manager) Probe() {
	m.pool.mu.Lock()
	//lint:ignore SA2001 an empty critical section is the probe
	m.pool.mu.Unlock()
}

// dirtiness is MaxCircuitDirtiness.
func (m *Manager) dirtiness() time.Duration {
	if d := m.cfg.Torrc().MaxCircuitDirtiness; d > 0 {
		return d
	}
	return 10 * time.Minute
}

// buildTimeout is how long one circuit build may take before it is
// abandoned: with CBT the close timeout (the caller may have given up
// earlier, at the timeout; see cbt.go).
func (m *Manager) buildTimeout() time.Duration {
	if m.cfg.CBT != nil {
		_, closeAfter := m.cfg.CBT.Timeouts()
		return closeAfter
	}
	if t := m.cfg.Torrc().CircuitBuildTimeout; t > 0 {
		return t
	}
	return 60 * time.Second
}
