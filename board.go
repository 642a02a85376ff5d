package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tinytor/board/clock"
	"tinytor/board/mem"
	"tinytor/board/state"
	"tinytor/board/watchdog"
	"tinytor/tor"
	"tinytor/tor/config"
	"tinytor/tor/event"
	"tinytor/tor/torlog"
)

// The router layer (package board/...) around the client, set up in one
// place: runTor calls newBoard first (memory plan, network clock, systemd
// notifier), passes stateOptions to state.Open and the client's Config
// through clientConfig, calls start once the listeners are bound (watchdogs,
// memory pressure, systemd readiness, dropping privileges), and close on
// the way out (flash statistics, magic close of the watchdog).

// clockOffsetEnv shifts the wall clock that tinytor sees, for tests of a
// wrong clock on a test network. It is honoured only with TestingTorNetwork
// 1. The value is a Go duration ("-26280h" is three years back).
const clockOffsetEnv = "TINYTOR_TESTING_CLOCK_OFFSET"

// Components registered with the watchdog's heartbeat.
const (
	beatClient = "client" // the client's locks (tor.Client.Ping)
	beatState  = "state"  // the state writer's lock (state.Store.Stats)
)

// Memory pressure handling.
const (
	pressurePoll  = time.Second      // how often the Budget is checked
	shedInterval  = 10 * time.Second // least time between two sheddings
	avoidDiskMin  = time.Hour        // state MinInterval with AvoidDiskWrites 1
	stateStatsLog = 6 * time.Hour    // how often flash statistics are logged
)

// board is the router layer of one run of the client.
type board struct {
	cfg    *config.Config
	log    *torlog.Logger
	getenv func(string) string

	plan    mem.Plan
	budget  *mem.Budget
	clock   *clock.Clock
	notify  *watchdog.Notifier // nil when not run by systemd
	started time.Time

	mu          sync.Mutex
	netinfoSeen bool      // a NETINFO cell arrived: later consensuses came from the network
	cachedVA    time.Time // valid-after of the consensus loaded from the cache
	lastVA      time.Time // valid-after of the last consensus observed
	streams     map[uint64]bool
	circuits    map[uint64]bool
	ready       bool

	st     *state.Store
	device *watchdog.Device
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines close waits for
	unsub  func()
}

// newBoard applies the memory plan (before the client allocates much) and
// makes the network clock and the systemd notifier. getenv is os.Getenv
// outside tests.
func newBoard(cfg *config.Config, log *torlog.Logger, getenv func(string) string) (*board, error) {
	b := &board{cfg: cfg, log: log, getenv: getenv, started: time.Now(),
		streams: map[uint64]bool{}, circuits: map[uint64]bool{}}

	// Memory: the Go limit and GC from MaxMemInQueues or the RAM and cgroup
	// limits; the Budget refuses streams under pressure.
	info, err := mem.ReadInfo("")
	if err != nil {
		log.Warnf("Couldn't read the memory size and limits (%v): leaving the Go memory limit and GC as they are.", err)
		b.budget = mem.NewBudget(mem.Plan{MaxMemInQueues: max(cfg.MaxMemInQueues, mem.MinQueues)}.Caps(), 0, nil)
	} else {
		plan, err := mem.NewPlan(info, cfg.MaxMemInQueues)
		if err != nil {
			return nil, fmt.Errorf("MaxMemInQueues: %w", err)
		}
		b.applyPlan(plan)
		b.budget = mem.NewBudget(b.plan.Caps(), uint64(b.plan.GoMemLimit), newMemInUse())
	}

	// Clock: network time from the consensus and NETINFO cells.
	copts := clock.Options{Log: log, MinNetinfo: minNetinfo(cfg)}
	if v := getenv(clockOffsetEnv); v != "" {
		if !cfg.TestingTorNetwork {
			log.Warnf("Ignoring %s: it is honoured only with TestingTorNetwork 1.", clockOffsetEnv)
		} else {
			off, err := time.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", clockOffsetEnv, err)
			}
			log.Warnf("Testing: the wall clock is shifted by %s (%s).", off, clockOffsetEnv)
			copts.Now = func() time.Time { return time.Now().Add(off) }
			copts.Synced = func() bool { return false }
		}
	}
	b.floorClock(&copts)
	b.clock = clock.New(copts)

	n, err := watchdog.NotifierFromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("NOTIFY_SOCKET: %w", err)
	}
	b.notify = n
	return b, nil
}

// applyPlan sets the Go memory limit and GC percent. GOMEMLIMIT and GOGC
// from the environment win where they are stricter (the limit) or set
// (the GC percent).
func (b *board) applyPlan(p mem.Plan) {
	envLimit := b.getenv("GOMEMLIMIT") != ""
	if envLimit {
		if cur := debug.SetMemoryLimit(-1); cur > 0 && cur < p.GoMemLimit {
			p.GoMemLimit = cur
		}
	}
	_, prevGC := p.Apply()
	if b.getenv("GOGC") != "" {
		debug.SetGCPercent(prevGC)
		p.GCPercent = prevGC
	}
	b.plan = p
	auto := " (automatic)"
	if b.cfg.MaxMemInQueues != 0 {
		auto = ""
	}
	from := ""
	if envLimit {
		from = ", GOMEMLIMIT considered"
	}
	b.log.Noticef("Memory: %s usable; MaxMemInQueues %s%s; Go memory limit %s%s, GC %d%%.",
		mib(p.Effective), mib(p.MaxMemInQueues), auto, mib(uint64(p.GoMemLimit)), from, p.GCPercent)
}

// newMemInUse returns the Budget's measure of memory in use: what the Go
// runtime has mapped and not released, less the free heap it keeps for
// reuse and the garbage that the next collection frees. Mapped memory
// alone stays near the Go memory limit after a burst (the runtime returns
// it to the kernel only as it approaches the limit), which would refuse
// streams long after the load has gone.
func newMemInUse() func() uint64 {
	var mu sync.Mutex
	samples := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		metrics.Read(samples)
		var v [5]uint64
		for i, s := range samples {
			if s.Value.Kind() != metrics.KindUint64 {
				return 0
			}
			v[i] = s.Value.Uint64()
		}
		total, released, free, objects, live := v[0], v[1], v[2], v[3], v[4]
		used := total - released - free
		if objects > live && live > 0 {
			used -= objects - live
		}
		return used
	}
}

// buildEpoch is the time tinytor was built, in seconds since 1970; release
// builds set it with -ldflags "-X main.buildEpoch=$SOURCE_DATE_EPOCH". It is
// a lower bound for the clock (see floorClock).
var buildEpoch = ""

// clockFloor returns the earliest time it can be now: when this binary was
// built (buildEpoch) or written (the executable's modification time, which
// firmware images set to their build time), and where that came from.
func clockFloor() (time.Time, string) {
	var floor time.Time
	var from string
	if s, err := strconv.ParseInt(buildEpoch, 10, 64); err == nil && s > 0 {
		floor, from = time.Unix(s, 0), "the build time"
	}
	if exe, err := os.Executable(); err == nil {
		if fi, err := os.Stat(exe); err == nil && fi.ModTime().After(floor) {
			floor, from = fi.ModTime(), "the modification time of "+exe
		}
	}
	return floor, from
}

// floorClock keeps an unsynchronised wall clock from running before
// clockFloor, as systemd and OpenWrt's sysfixtime do at boot: a router
// without a real-time clock says 1970, and relays' link certificates are
// then "not yet valid" (C tor's rule: at most 30 days early), so no channel
// and no NETINFO time could ever be had. The network's time then refines
// the estimate (board/clock).
func (b *board) floorClock(o *clock.Options) {
	synced := o.Synced
	if synced == nil {
		synced = clock.KernelSynced
	}
	wall := o.Now
	if wall == nil {
		wall = time.Now
	}
	floor, from := clockFloor()
	begin := time.Now() // for its monotonic reading
	start := wall()
	if synced() || floor.IsZero() || !start.Before(floor) {
		return
	}
	b.log.Warnf("Our clock says %s, but %s is %s: the clock is %s behind at least. Using that time until the network tells us better. Please check your time and date settings!",
		start.UTC().Format(time.DateTime), from, floor.UTC().Format(time.DateTime), roughInterval(floor.Sub(start)))
	// Floor plus the time elapsed since (monotonic), until the wall clock
	// passes it (NTP): continuous, so board/clock sees a step only then.
	o.Now = func() time.Time {
		t := wall()
		if f := floor.Add(time.Since(begin)); t.Before(f) {
			return f
		}
		return t
	}
}

// roughInterval formats d as "3 years, 12 days" or "5 hours, 3 minutes".
func roughInterval(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day {
		d = d.Round(day)
	}
	years, days := d/(365*day), (d%(365*day))/day
	switch {
	case years > 0 && days > 0:
		return fmt.Sprintf("%d years, %d days", years, days)
	case years > 0:
		return fmt.Sprintf("%d years", years)
	case days > 0:
		return fmt.Sprintf("%d days, %d hours", days, (d%day)/time.Hour)
	}
	return d.Round(time.Minute).String()
}

// minNetinfo is how many NETINFO cells make the clock estimate count: the
// clock package's default, or fewer when fewer directory sources are
// configured (a test network with three authorities), since those are
// the first relays a client with a wrong clock talks to. NETINFO cells
// come over links authenticated to the relays' identities.
func minNetinfo(cfg *config.Config) int {
	n := len(cfg.Fallbacks())
	for _, a := range cfg.Authorities() {
		if a.ORPort != 0 && a.IsV3() {
			n++
		}
	}
	return min(max(n, 1), clock.DefaultMinNetinfo)
}

// stateOptions are the state writer's options: the network clock says
// when time-stamped files may be written.
func (b *board) stateOptions() state.Options {
	o := state.Options{Log: b.log, Clock: b.clock}
	if b.cfg.AvoidDiskWrites {
		o.MinInterval = avoidDiskMin
	}
	return o
}

// clientConfig adds the board's hooks to the client's configuration.
func (b *board) clientConfig(c tor.Config) tor.Config {
	c.Now = b.clock.Now
	c.AllowNewStream = b.budget.AllowNewStream
	return c
}

// observeNetinfo feeds a relay's NETINFO time to the clock. skew is the
// relay's time minus the client's clock, which is the clock's estimate.
func (b *board) observeNetinfo(skew time.Duration) {
	b.mu.Lock()
	b.netinfoSeen = true
	b.mu.Unlock()
	b.clock.ObserveNetinfo(b.clock.Now().Add(skew))
}

// observeConsensus feeds the validity of a verified consensus to the
// clock, but not that of one loaded from the cache (it may be old), nor
// again one already observed (it is reported again with its
// microdescriptors).
func (b *board) observeConsensus(e event.Consensus) {
	validAfter, freshUntil := e.ValidAfter, e.FreshUntil
	b.mu.Lock()
	if e.Cached || !b.netinfoSeen {
		b.cachedVA = validAfter
		b.mu.Unlock()
		return
	}
	// The same consensus is reported again with its microdescriptors:
	// once is enough.
	skip := validAfter.Equal(b.cachedVA) || validAfter.Equal(b.lastVA)
	b.lastVA = validAfter
	b.mu.Unlock()
	if !skip {
		b.clock.ObserveConsensus(validAfter, freshUntil)
	}
}

// start runs the board's loops for client and st. Call it once the
// listeners are bound: it opens the hardware watchdog and then drops
// privileges (User). The loops end in close; systemd is told STOPPING=1
// when runCtx ends.
func (b *board) start(runCtx context.Context, client *tor.Client, bus *event.Bus, st *state.Store) error {
	b.st = st
	// The board's loops outlive runCtx (the signal): the watchdog is fed
	// during the shutdown too, until close.
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	if b.notify != nil {
		context.AfterFunc(runCtx, b.stopping)
	}

	// systemd: STATUS with each bootstrap phase, READY at 100%.
	// Budget: count streams and circuits from the client's events; the
	// clock hears the NETINFO skews and consensuses.
	b.unsub = bus.Subscribe(b.onEvent)
	if b.notify != nil {
		b.onBootstrap(client.Status())
	}

	// Watchdogs: the hardware one and systemd's.
	var kickers []watchdog.Kicker
	var timeout time.Duration
	if path := b.cfg.HardwareWatchdog; path != "" {
		dev, err := watchdog.OpenDevice(path, b.cfg.HardwareWatchdogTimeout)
		if err != nil {
			cancel()
			return fmt.Errorf("HardwareWatchdog: %w", err)
		}
		b.device = dev
		kickers = append(kickers, dev)
		timeout = dev.Timeout()
		if timeout <= 0 {
			timeout = b.cfg.HardwareWatchdogTimeout
		}
		b.log.Noticef("Feeding the hardware watchdog %s (timeout %s) while the client is healthy.", dev, timeout)
	}
	if b.notify != nil {
		sd, err := watchdog.WatchdogInterval(b.getenv, os.Getpid())
		switch {
		case err == nil:
			kickers = append(kickers, b.notify)
			if timeout == 0 || sd < timeout {
				timeout = sd
			}
			b.log.Noticef("Feeding systemd's watchdog (WatchdogSec %s) while the client is healthy.", sd)
		case !errors.Is(err, watchdog.ErrNoWatchdog):
			b.log.Warnf("Ignoring systemd's watchdog settings: %v", err)
		}
	}
	if len(kickers) > 0 {
		probes := map[string]func(){beatClient: client.Ping, beatState: func() { st.Stats() }}
		if err := b.runWatchdog(ctx, kickers, timeout, probes, nil); err != nil {
			cancel()
			return err
		}
	}

	if err := dropPrivileges(b.cfg, b.log); err != nil {
		cancel()
		return err
	}

	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.watchPressure(ctx, client)
	}()
	return nil
}

// runWatchdog starts the heartbeat probes and the watchdog. Each probe
// runs on its own ticker goroutine and beats after it returns, so a probe
// that blocks (a lock held forever) stops its beats and, after timeout/2,
// the kicks. onCheck is for tests.
func (b *board) runWatchdog(ctx context.Context, kickers []watchdog.Kicker, timeout time.Duration, probes map[string]func(), onCheck func(bool, []string)) error {
	hb := watchdog.NewHeartbeat(nil)
	wd, err := watchdog.New(watchdog.Config{Heartbeat: hb, Kickers: kickers, Log: b.log, OnCheck: onCheck})
	if err != nil {
		return err
	}
	deadline := timeout / 2
	every := max(timeout/6, 50*time.Millisecond)
	for name, probe := range probes {
		if err := hb.Register(name, deadline); err != nil {
			return err
		}
		// Not waited for in close: a probe stuck on a wedged client never
		// returns, and the process is exiting anyway.
		go func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				probe()
				hb.Beat(name)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(watchdog.KickInterval(timeout))
		defer t.Stop()
		wd.Run(ctx, t.C)
	}()
	return nil
}

// onBootstrap tells systemd the bootstrap phase, and that we are ready
// at 100%.
func (b *board) onBootstrap(s event.Bootstrap) {
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

// onEvent counts streams and circuits in the Budget. It runs on the
// client's goroutines: it only takes b.mu briefly.
func (b *board) onEvent(ev event.Event) {
	var id uint64
	var status string
	var res mem.Resource
	var held map[uint64]bool
	switch e := ev.(type) {
	case *event.Stream:
		id, status, res, held = e.ID, e.Status, mem.Streams, b.streams
	case *event.Circuit:
		id, status, res, held = e.ID, e.Status, mem.Circuits, b.circuits
	case event.Bootstrap:
		if b.notify != nil {
			b.onBootstrap(e)
		}
		return
	case event.Netinfo:
		b.observeNetinfo(e.Skew)
		return
	case event.Consensus:
		b.observeConsensus(e)
		return
	default:
		return
	}
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

// watchPressure logs changes of memory pressure and, at High or above,
// closes idle circuits (new streams are refused by AllowNewStream
// meanwhile); at Critical it also returns freed memory to the kernel.
func (b *board) watchPressure(ctx context.Context, client *tor.Client) {
	t := time.NewTicker(pressurePoll)
	defer t.Stop()
	prev := mem.PressureNone
	var lastShed time.Time
	lastStats := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := b.budget.Pressure()
		if p != prev {
			used := fmt.Sprintf("%d streams, %d circuits", b.budget.Used(mem.Streams), b.budget.Used(mem.Circuits))
			switch {
			case p >= mem.PressureHigh && prev < mem.PressureHigh:
				b.log.Warnf("Memory pressure %s (%s, Go memory limit %s): closing idle circuits and refusing new streams.", p, used, mib(uint64(b.plan.GoMemLimit)))
			case p < mem.PressureHigh && prev >= mem.PressureHigh:
				b.log.Noticef("Memory pressure down to %s (%s): accepting new streams again.", p, used)
			default:
				b.log.Infof("Memory pressure %s (%s).", p, used)
			}
			prev = p
		}
		if p >= mem.PressureHigh && time.Since(lastShed) >= shedInterval {
			lastShed = time.Now()
			if n := client.ShedIdleCircuits(); n > 0 {
				b.log.Infof("Closed %d idle circuits under memory pressure.", n)
			}
			if p >= mem.PressureCritical {
				debug.FreeOSMemory()
			}
		}
		if time.Since(lastStats) >= stateStatsLog {
			lastStats = time.Now()
			b.logStateStats("so far")
		}
	}
}

// logStateStats logs what the state writer put on flash.
func (b *board) logStateStats(when string) {
	if b.st == nil {
		return
	}
	s := b.st.Stats()
	up := time.Since(b.started)
	rate := ""
	if up >= time.Hour {
		rate = fmt.Sprintf(" (%.0f bytes/hour)", float64(s.BytesWritten)/up.Hours())
	}
	b.log.Noticef("State writes %s: %d bytes to flash in %d writes over %s%s; %d coalesced, %d failed, %d pending.",
		when, s.BytesWritten, s.Writes, up.Round(time.Second), rate, s.Coalesced, s.Failed, s.Pending)
}

// stopping tells systemd that we are shutting down.
func (b *board) stopping() {
	if err := b.notify.Stopping(); err != nil {
		b.log.Infof("Couldn't notify systemd: %v", err)
	}
}

// close stops the board's loops, disarms the hardware watchdog (magic
// close: this is a clean exit) and logs the flash statistics. Call it
// after the state writer has been closed.
func (b *board) close() {
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

// dropPrivileges switches to the torrc's User, if any: supplementary
// groups, group and user, for every thread of the process (Go 1.16+).
// The data directories become the user's first, so that state can still
// be written.
func dropPrivileges(cfg *config.Config, log *torlog.Logger) error {
	if cfg.User == "" {
		return nil
	}
	u, err := user.Lookup(cfg.User)
	if err != nil {
		return fmt.Errorf("User %s: %w", cfg.User, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("User %s: bad uid/gid: %w", cfg.User, err)
	}
	if os.Geteuid() == uid && os.Getuid() == uid {
		log.Infof("Already running as User %s.", cfg.User)
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("User %s: cannot switch users: tinytor must be started as root for that (running as uid %d); remove the User line or start it as root", cfg.User, os.Geteuid())
	}
	groups := []int{gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}
	for _, d := range []string{cfg.DataDirectory, cfg.CacheDirectory} {
		if err := chownTree(d, uid, gid); err != nil {
			return fmt.Errorf("User %s: giving %s to the user: %w", cfg.User, d, err)
		}
	}
	// syscall.Setgroups, not unix.Setgroups: the latter changes only the
	// calling thread.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("User %s: setgroups: %w", cfg.User, err)
	}
	if err := unix.Setgid(gid); err != nil {
		return fmt.Errorf("User %s: setgid(%d): %w", cfg.User, gid, err)
	}
	if err := unix.Setuid(uid); err != nil {
		return fmt.Errorf("User %s: setuid(%d): %w", cfg.User, uid, err)
	}
	if uid != 0 && unix.Setuid(0) == nil {
		return fmt.Errorf("User %s: could regain root after dropping privileges", cfg.User)
	}
	log.Noticef("Switched to User %s (uid %d, gid %d) after opening the listeners.", cfg.User, uid, gid)
	return nil
}

// chownTree gives dir and everything in it to uid:gid, without following
// symbolic links.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// mib formats a byte count in MiB for logs.
func mib(n uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
