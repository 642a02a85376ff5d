package board

import (
	"context"
	"sync"
	"time"

	"tinytor/board/clock"
	"tinytor/board/mem"
	"tinytor/board/state"
	"tinytor/board/watchdog"
	"tinytor/tor/config"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Client is what the board needs of the Tor client: its bootstrap status,
// a probe of its locks for the watchdog, and a way to give memory back.
type Client interface {
	// Status is the bootstrap status now.
	Status() event.Bootstrap
	// Ping takes and releases the client's locks; it does not return
	// while one of them is held forever.
	Ping()
	// ShedIdleCircuits closes the circuits that carry no stream and
	// returns how many it closed.
	ShedIdleCircuits() int
	// ShedDirtyIdleCircuits closes the circuits that carry no stream but
	// were used, and returns how many it closed.
	ShedDirtyIdleCircuits() int
}

// avoidDiskMin is the state writer's MinInterval with AvoidDiskWrites 1.
const avoidDiskMin = time.Hour

// Board is the router layer of one run of the client. Make it with New
// before the client, start it with Start once the listeners are bound,
// and close it with Close on the way out.
type Board struct {
	cfg    *config.Config
	log    *torlog.Logger
	getenv func(string) string

	plan    mem.Plan // zero when the memory size could not be read
	caps    mem.Caps
	budget  *mem.Budget
	clock   *clock.Clock
	notify  *watchdog.Notifier // nil when not run by systemd
	started time.Time

	mu       lock.Mutex
	cachedVA time.Time // valid-after of the consensus loaded from the cache
	lastVA   time.Time // valid-after of the last consensus observed
	streams  map[uint64]bool
	circuits map[uint64]bool
	ready    bool // READY=1 was sent to systemd

	st     *state.Store
	device *watchdog.Device
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines Close waits for
	unsub  func()
}

// New applies the memory plan for cfg (call it before the client
// allocates much: it sets the Go memory limit and GC percent) and makes
// the network clock and the systemd notifier. getenv is os.Getenv outside
// tests. Its errors are configuration errors.
func New(cfg *config.Config, log *torlog.Logger, getenv func(string) string) (*Board, error) {
	b := &Board{cfg: cfg, log: log, getenv: getenv, started: time.Now(),
		streams: map[uint64]bool{}, circuits: map[uint64]bool{}}
	if err := b.planMemory(); err != nil {
		return nil, err
	}
	c, err := newClock(cfg, log, getenv)
	if err != nil {
		return nil, err
	}
	b.clock = c
	n, err := watchdog.NotifierFromEnv(getenv)
	if err != nil {
		return nil, errfmt.Errorf("NOTIFY_SOCKET: %w", err)
	}
	b.notify = n
	return b, nil
}

// StateOptions are the state writer's options: the network clock says
// when time-stamped files may be written.
func (b *Board) StateOptions() state.Options {
	o := state.Options{Log: b.log, Clock: b.clock}
	if b.cfg.AvoidDiskWrites {
		o.MinInterval = avoidDiskMin
	}
	return o
}

// Now is the network clock's estimate of the time, for the client's
// configuration.
func (b *Board) Now() time.Time { return b.clock.Now() }

// AllowNewStream reports whether the memory budget admits a new stream,
// for the client's configuration.
func (b *Board) AllowNewStream() bool { return b.budget.AllowNewStream() }

// Caps are the memory budget's caps (circuits, streams, queued cells).
func (b *Board) Caps() mem.Caps { return b.caps }

// Start runs the board's loops for client and st. Call it once the
// listeners are bound and before the client runs: it subscribes to bus
// (bootstrap status for systemd, circuits and streams for the memory
// budget, NETINFO skews and consensuses for the clock), opens the hardware
// watchdog and then drops privileges (User). The loops end in Close;
// systemd is told STOPPING=1 when runCtx ends.
func (b *Board) Start(runCtx context.Context, client Client, bus *event.Bus, st *state.Store) error {
	b.st = st
	// The board's loops outlive runCtx (the signal): the watchdog is fed
	// during the shutdown too, until Close.
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	if b.notify != nil {
		context.AfterFunc(runCtx, b.stopping)
	}

	b.unsub = bus.Subscribe(b.onEvent)
	if b.notify != nil {
		b.onBootstrap(client.Status())
	}

	probes := map[string]func(){beatClient: client.Ping, beatState: func() { st.Stats() }}
	if err := b.startWatchdogs(ctx, probes); err != nil {
		return err
	}
	if err := dropPrivileges(b.cfg, b.log); err != nil {
		return err
	}

	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.watchPressure(ctx, client)
	}()
	return nil
}

// Close stops the board's loops, disarms the hardware watchdog (magic
// close: this is a clean exit) and logs the flash statistics. Call it
// after the state writer has been closed, whether or not Start was called
// or succeeded.
func (b *Board) Close() {
	if b.cancel != nil {
		b.cancel()
	}
	if b.unsub != nil {
		b.unsub()
	}
	b.wg.Wait()
	if b.device != nil {
		if err := b.device.Close(); err != nil {
			b.log.Warnf("Couldn't disarm the hardware watchdog: %v", err)
		}
	}
	b.logStateStats("at exit")
}

// onEvent takes what the board needs from the bus: it counts streams and
// circuits in the Budget, feeds the clock and tells systemd the bootstrap
// status. It runs on the publishers' goroutines: it only takes b.mu
// briefly.
func (b *Board) onEvent(ev event.Event) {
	switch e := ev.(type) {
	case *event.Stream:
		b.count(mem.Streams, b.streams, e.ID, e.Status)
	case *event.Circuit:
		b.count(mem.Circuits, b.circuits, e.ID, e.Status)
	case event.Bootstrap:
		if b.notify != nil {
			b.onBootstrap(e)
		}
	case event.Netinfo:
		b.observeNetinfo(e.Skew)
	case event.Consensus:
		b.observeConsensus(e)
	}
}

// count acquires res in the Budget for a stream or circuit seen for the
// first time, and releases it when it closes or fails.
func (b *Board) count(res mem.Resource, held map[uint64]bool, id uint64, status string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch status {
	case "CLOSED", "FAILED":
		if held[id] {
			delete(held, id)
			b.budget.Release(res, 1)
		}
	default:
		if _, seen := held[id]; !seen {
			// A stream or circuit over the cap is not counted; the
			// pressure is already at its highest then.
			held[id] = b.budget.Acquire(res, 1)
		}
	}
}

// observeNetinfo feeds a relay's NETINFO time to the clock. skew is the
// relay's time minus the client's clock, which is the clock's estimate.
func (b *Board) observeNetinfo(skew time.Duration) {
	b.clock.ObserveNetinfo(b.clock.Now().Add(skew))
}

// observeConsensus feeds the validity of a verified consensus to the
// clock, but not that of one loaded from the cache (it may be old: it is
// ignored again when it is installed later with its microdescriptors),
// nor again one already observed.
func (b *Board) observeConsensus(e event.Consensus) {
	b.mu.Lock()
	if e.Cached {
		b.cachedVA = e.ValidAfter
		b.mu.Unlock()
		return
	}
	skip := e.ValidAfter.Equal(b.cachedVA) || e.ValidAfter.Equal(b.lastVA)
	b.lastVA = e.ValidAfter
	b.mu.Unlock()
	if !skip {
		b.clock.ObserveConsensus(e.ValidAfter, e.FreshUntil)
	}
}

// onBootstrap tells systemd the bootstrap phase, and that we are ready
// at 100%.
func (b *Board) onBootstrap(s event.Bootstrap) {
	status := "Bootstrapped " + s.String()
	if s.Problem != "" {
		status += " (problem: " + s.Problem + ")"
	}
	var msgs []string
	b.mu.Lock()
	if s.Phase == event.PhaseDone && !b.ready {
		b.ready = true
		msgs = append(msgs, "READY=1")
	}
	b.mu.Unlock()
	msgs = append(msgs, "STATUS="+status)
	if err := b.notify.Send(msgs...); err != nil {
		b.log.Infof("Couldn't notify systemd: %v", err)
	}
}

// stopping tells systemd that we are shutting down.
func (b *Board) stopping() {
	if err := b.notify.Stopping(); err != nil {
		b.log.Infof("Couldn't notify systemd: %v", err)
	}
}
