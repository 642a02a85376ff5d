package board

import (
	"context"
	"math"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tinytor/board/mem"
	"tinytor/board/state"
	"tinytor/board/watchdog"
	"tinytor/tor/config"
	"tinytor/tor/event"
	"tinytor/tor/torlog"
)

// testBoard makes a board for cfgText with env as its environment, and
// restores the Go memory settings New changes.
func testBoard(t *testing.T, cfgText string, env map[string]string) (*Board, *strings.Builder) {
	t.Helper()
	cfg, err := config.Parse([]byte("DataDirectory "+t.TempDir()+"\n"+cfgText), "torrc", config.Env{})
	if err != nil {
		t.Fatal(err)
	}
	limit := debug.SetMemoryLimit(-1)
	gc := debug.SetGCPercent(100)
	debug.SetGCPercent(gc)
	t.Cleanup(func() {
		debug.SetMemoryLimit(limit)
		debug.SetGCPercent(gc)
	})
	var logs syncBuilder
	log := torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logs})
	b, err := New(cfg, log, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return b, &logs.b
}

type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func TestBoardMemoryPlan(t *testing.T) {
	b, logs := testBoard(t, "MaxMemInQueues 4 MB\n", nil)
	if b.plan.MaxMemInQueues != 4<<20 {
		t.Errorf("plan MaxMemInQueues %d, want 4 MiB", b.plan.MaxMemInQueues)
	}
	if got := debug.SetMemoryLimit(-1); got != b.plan.GoMemLimit || got > 24<<20 {
		t.Errorf("Go memory limit %d, plan %d; want the plan's, at most 24 MiB", got, b.plan.GoMemLimit)
	}
	if !strings.Contains(logs.String(), "MaxMemInQueues 4.0 MiB;") {
		t.Errorf("no memory notice: %s", logs.String())
	}
	if !b.budget.AllowNewStream() {
		t.Error("a fresh budget refuses streams")
	}

	// GOMEMLIMIT below the plan wins.
	debug.SetMemoryLimit(10 << 20)
	b, _ = testBoard(t, "MaxMemInQueues 4 MB\n", map[string]string{"GOMEMLIMIT": "10MiB"})
	if b.plan.GoMemLimit != 10<<20 {
		t.Errorf("with GOMEMLIMIT 10 MiB the plan says %d", b.plan.GoMemLimit)
	}
	debug.SetMemoryLimit(math.MaxInt64)

	// Too small a MaxMemInQueues is a configuration error.
	cfg, _ := config.Parse([]byte("DataDirectory "+t.TempDir()+"\nMaxMemInQueues 1000\n"), "torrc", config.Env{})
	if _, err := New(cfg, torlog.Discard(), func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "MaxMemInQueues") {
		t.Errorf("MaxMemInQueues 1000: err %v", err)
	}
}

func TestBoardBudgetCountsEvents(t *testing.T) {
	b, _ := testBoard(t, "MaxMemInQueues 4 MB\n", nil)
	for _, st := range []string{"NEW", "SENTCONNECT", "SUCCEEDED"} {
		b.onEvent(&event.Stream{ID: 7, Status: st})
	}
	b.onEvent(&event.Circuit{ID: 8, Status: "LAUNCHED"})
	if s, c := b.budget.Used(mem.Streams), b.budget.Used(mem.Circuits); s != 1 || c != 1 {
		t.Fatalf("used %d streams, %d circuits; want 1, 1", s, c)
	}
	b.onEvent(&event.Stream{ID: 7, Status: "CLOSED"})
	b.onEvent(&event.Stream{ID: 7, Status: "CLOSED"})
	b.onEvent(&event.Circuit{ID: 8, Status: "FAILED"})
	if s, c := b.budget.Used(mem.Streams), b.budget.Used(mem.Circuits); s != 0 || c != 0 {
		t.Fatalf("after close: used %d streams, %d circuits; want 0, 0", s, c)
	}
	// Streams up to the cap push the pressure up until streams are refused.
	caps := b.plan.Caps()
	for i := range caps.Streams {
		b.onEvent(&event.Stream{ID: uint64(100 + i), Status: "NEW"})
	}
	if b.budget.AllowNewStream() {
		t.Fatalf("%d streams at a cap of %d: new streams still allowed", b.budget.Used(mem.Streams), caps.Streams)
	}
}

func TestBoardClockOffset(t *testing.T) {
	const threeYears = 3 * 365 * 24 * time.Hour
	env := map[string]string{clockOffsetEnv: "-26280h"}
	// Ignored without TestingTorNetwork.
	b, logs := testBoard(t, "", env)
	if d := time.Until(b.clock.Now()); d < -time.Minute || d > time.Minute {
		t.Errorf("offset applied without TestingTorNetwork: clock off by %s", d)
	}
	if !strings.Contains(logs.String(), "Ignoring "+clockOffsetEnv) {
		t.Errorf("no warning: %s", logs.String())
	}
	testnet := "TestingTorNetwork 1\nDirAuthority a orport=5000 v3ident=" + strings.Repeat("AA", 20) + " 127.0.0.1:7000 " + strings.Repeat("BB", 20) + "\n"
	b, logs = testBoard(t, testnet, env)
	// The wall clock is three years back, but not before this (test)
	// binary was written: that is the floor.
	if d := time.Until(b.clock.Now()); d > time.Minute || d < -time.Hour {
		t.Errorf("clock with offset: %s from now, want the floor (the test binary's mtime)", d)
	}
	if !strings.Contains(logs.String(), "the clock is 3 years behind") {
		t.Errorf("no warning about the floor: %s", logs.String())
	}
	if b.clock.Trusted() {
		t.Error("a shifted clock is trusted before any network time")
	}
	if got := minNetinfo(b.cfg); got != 1 {
		t.Errorf("minNetinfo with one authority: %d", got)
	}

	// A NETINFO cell makes it right (one authority: one cell suffices).
	// The client reports the skew against the clock's own estimate.
	skew := time.Now().Sub(b.clock.Now())
	b.onEvent(event.Netinfo{Skew: skew})
	if d := time.Until(b.clock.Now()); d < -time.Minute || d > time.Minute {
		t.Errorf("after NETINFO: clock %s off", d)
	}
	if !b.clock.Trusted() {
		t.Error("not trusted after NETINFO")
	}

	cfg, _ := config.Parse([]byte("DataDirectory /x\n"+testnet), "torrc", config.Env{})
	if _, err := New(cfg, torlog.Discard(), func(k string) string {
		if k == clockOffsetEnv {
			return "three years"
		}
		return ""
	}); err == nil {
		t.Error("bad offset accepted")
	}
}

func TestBoardIgnoresCachedConsensus(t *testing.T) {
	testnet := "TestingTorNetwork 1\nDirAuthority a orport=5000 v3ident=" + strings.Repeat("AA", 20) + " 127.0.0.1:7000 " + strings.Repeat("BB", 20) + "\n"
	b, _ := testBoard(t, testnet, map[string]string{clockOffsetEnv: "-1s"})
	var bus event.Bus
	defer bus.Subscribe(b.onEvent)()
	old := time.Now().Add(-20 * time.Hour)
	// Loaded from the cache: ignored (else the clock would be pulled 17
	// hours back), and again when it is installed with its
	// microdescriptors.
	bus.Publish(event.Consensus{ValidAfter: old, FreshUntil: old.Add(time.Hour), ValidUntil: old.Add(3 * time.Hour), Cached: true})
	bus.Publish(event.Consensus{ValidAfter: old, FreshUntil: old.Add(time.Hour), ValidUntil: old.Add(3 * time.Hour)})
	if d := time.Until(b.clock.Now()); d < -time.Minute {
		t.Fatalf("a cached consensus moved the clock by %s", d)
	}
	// A fresh one counts: it makes the clock trusted.
	now := time.Now()
	bus.Publish(event.Consensus{ValidAfter: now.Add(-time.Minute), FreshUntil: now.Add(time.Hour), ValidUntil: now.Add(3 * time.Hour)})
	if !b.clock.Trusted() {
		t.Error("fresh consensus not observed")
	}
}

// fakeKicker counts kicks.
type fakeKicker struct{ n atomic.Int64 }

func (k *fakeKicker) Kick() error { k.n.Add(1); return nil }

func TestBoardWatchdogStopsWhenClientStalls(t *testing.T) {
	b, logs := testBoard(t, "", nil)
	devPath := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(devPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dev, err := watchdog.OpenDevice(devPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	var kicker fakeKicker
	var stall sync.Mutex // held: the "client" probe blocks, as on a deadlock
	type check struct {
		kicked  bool
		stalled []string
	}
	checks := make(chan check, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	probes := map[string]func(){
		beatClient: func() { stall.Lock(); stall.Unlock() },
		beatState:  func() {},
	}
	err = b.runWatchdog(ctx, []watchdog.Kicker{dev, &kicker}, 900*time.Millisecond, probes, func(kicked bool, stalled []string) {
		checks <- check{kicked, stalled}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Healthy: kicked.
	for c := (check{}); !c.kicked; {
		c = <-checks
	}
	stall.Lock()
	for len(checks) > 0 { // forget checks from before the stall
		<-checks
	}
	// Stalled: once the beat is late, kicks stop, naming the client.
	c := <-checks
	for c.kicked {
		c = <-checks
	}
	if !slices.Equal(c.stalled, []string{beatClient}) {
		t.Errorf("stalled %v, want [%s]", c.stalled, beatClient)
	}
	before := kicker.n.Load()
	for range 3 {
		if c := <-checks; c.kicked {
			t.Fatal("kicked while the client is stalled")
		}
	}
	if kicker.n.Load() != before {
		t.Fatal("kicks while stalled")
	}
	// Recovers.
	stall.Unlock()
	for c := (check{}); !c.kicked; {
		c = <-checks
	}
	cancel()
	b.wg.Wait()
	// The device got a keepalive byte per kick.
	if data, err := os.ReadFile(devPath); err != nil || !strings.HasPrefix(string(data), "k") || strings.Trim(string(data), "k") != "" {
		t.Errorf("device file %q (%v): want keepalive bytes 'k'", data, err)
	}
	if !strings.Contains(logs.String(), "stopped reporting") {
		t.Errorf("no warning about the stall: %s", logs.String())
	}
}

func TestBoardSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, _ := testBoard(t, "", map[string]string{"NOTIFY_SOCKET": sock})
	if b.notify == nil {
		t.Fatal("no notifier with NOTIFY_SOCKET set")
	}
	read := func() string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	b.onBootstrap(event.Bootstrap{Phase: event.PhaseStarting})
	if got := read(); got != "STATUS=Bootstrapped 0% (starting): Starting" {
		t.Errorf("first message %q", got)
	}
	b.onBootstrap(event.Bootstrap{Phase: event.PhaseDone})
	if got := read(); got != "READY=1\nSTATUS=Bootstrapped 100% (done): Done" {
		t.Errorf("at 100%%: %q", got)
	}
	b.onBootstrap(event.Bootstrap{Phase: event.PhaseDone})
	if got := read(); strings.Contains(got, "READY") {
		t.Errorf("READY sent twice: %q", got)
	}
	b.stopping()
	if got := read(); got != "STOPPING=1" {
		t.Errorf("stopping: %q", got)
	}
}

func TestDropPrivilegesChecks(t *testing.T) {
	cfg := &config.Config{User: "no-such-user-tinytor"}
	if err := dropPrivileges(cfg, torlog.Discard()); err == nil {
		t.Error("unknown user accepted")
	}
	me, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	// Already that user: nothing to do (and no setuid in the test process).
	cfg.User = me.Username
	if err := dropPrivileges(cfg, torlog.Discard()); err != nil {
		t.Errorf("User = current user: %v", err)
	}
	if os.Geteuid() != 0 {
		cfg.User = "root"
		if err := dropPrivileges(cfg, torlog.Discard()); err == nil || !strings.Contains(err.Error(), "must be started as root") {
			t.Errorf("switching users as non-root: %v", err)
		}
	}
}

// fakeClient is a Client whose bootstrap is done.
type fakeClient struct{ pings, sheds, dirtySheds atomic.Int64 }

func (c *fakeClient) Status() event.Bootstrap    { return event.Bootstrap{Phase: event.PhaseDone} }
func (c *fakeClient) Ping()                      { c.pings.Add(1) }
func (c *fakeClient) ShedIdleCircuits() int      { c.sheds.Add(1); return 0 }
func (c *fakeClient) ShedDirtyIdleCircuits() int { c.dirtySheds.Add(1); return 0 }

// TestBoardStartAndClose runs the board's API as main does: New, the
// state writer with StateOptions, Start with a bus, events, the end of the
// run (STOPPING=1), Close.
func TestBoardStartAndClose(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, logs := testBoard(t, "MaxMemInQueues 4 MB\n", map[string]string{"NOTIFY_SOCKET": sock})
	if !b.AllowNewStream() {
		t.Error("a fresh board refuses streams")
	}
	if d := time.Until(b.Now()); d < -time.Minute || d > time.Minute {
		t.Errorf("Now is %s off", d)
	}
	if c := b.Caps(); c.QueuedCells <= 0 || c.Streams <= 0 || c.Circuits <= 0 {
		t.Errorf("caps %+v", c)
	}
	st, err := state.Open(t.TempDir(), b.StateOptions())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, endRun := context.WithCancel(context.Background())
	defer endRun()
	var bus event.Bus
	client := &fakeClient{}
	if err := b.Start(runCtx, client, &bus, st); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	// The client's status at Start goes to systemd.
	if got := read(); got != "READY=1\nSTATUS=Bootstrapped 100% (done): Done" {
		t.Errorf("at Start: %q", got)
	}
	bus.Publish(&event.Stream{ID: 1, Status: "NEW"})
	bus.Publish(&event.Circuit{ID: 2, Status: "LAUNCHED"})
	if s, c := b.budget.Used(mem.Streams), b.budget.Used(mem.Circuits); s != 1 || c != 1 {
		t.Errorf("used %d streams, %d circuits after events on the bus; want 1, 1", s, c)
	}
	endRun()
	if got := read(); got != "STOPPING=1" {
		t.Errorf("at the end of the run: %q", got)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// Unsubscribed: events after Close are not counted.
	bus.Publish(&event.Stream{ID: 3, Status: "NEW"})
	if s := b.budget.Used(mem.Streams); s != 1 {
		t.Errorf("used %d streams after Close, want 1", s)
	}
	if !strings.Contains(logs.String(), "State writes at exit: ") {
		t.Errorf("no flash statistics at exit: %s", logs.String())
	}
}

func TestRoughInterval(t *testing.T) {
	const day = 24 * time.Hour
	for d, want := range map[time.Duration]string{
		3*365*day + 12*day + 5*time.Hour: "3 years, 12 days",
		2*365*day + 3*time.Hour:          "2 years",
		5*day + 13*time.Hour:             "6 days, 0 hours",
		5*time.Hour + 3*time.Minute:      "5h3m0s",
		365 * day:                        "1 years",
		day:                              "1 days, 0 hours",
	} {
		if got := roughInterval(d); got != want {
			t.Errorf("roughInterval(%v) = %q, want %q", d, got, want)
		}
	}
}
