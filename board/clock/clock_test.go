package clock

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/tor/torlog"
)

// fakeBase is a local wall clock and a monotonic clock the test moves.
type fakeBase struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

func (f *fakeBase) Now() time.Time      { f.mu.Lock(); defer f.mu.Unlock(); return f.wall }
func (f *fakeBase) Mono() time.Duration { f.mu.Lock(); defer f.mu.Unlock(); return f.mono }
func (f *fakeBase) Pass(d time.Duration) {
	f.mu.Lock()
	f.wall = f.wall.Add(d)
	f.mono += d
	f.mu.Unlock()
}
func (f *fakeBase) Step(d time.Duration)          { f.mu.Lock(); f.wall = f.wall.Add(d); f.mu.Unlock() }
func never() bool                                 { return false }
func near(a, b time.Time, tol time.Duration) bool { return abs(a.Sub(b)) <= tol }

var realTime = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func newTest(t *testing.T, wall time.Time) (*Clock, *fakeBase, *bytes.Buffer) {
	base := &fakeBase{wall: wall}
	var logbuf bytes.Buffer
	c := New(Options{
		Now: base.Now, Mono: base.Mono, Synced: never,
		Log: torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logbuf}),
	})
	return c, base, &logbuf
}

func TestClockThreeYearsBehind(t *testing.T) {
	threeYears := realTime.Sub(realTime.AddDate(-3, 0, 0))
	c, base, logbuf := newTest(t, realTime.AddDate(-3, 0, 0))
	network := func() time.Time { return base.Now().Add(threeYears) }
	if c.Trusted() || c.Skew() != 0 {
		t.Fatal("trusted or skewed before any observation")
	}
	c.ObserveConsensus(network().Add(-30*time.Minute), network().Add(30*time.Minute))
	if !c.Trusted() {
		t.Fatal("not trusted after a fresh consensus")
	}
	if !near(c.Now(), network(), 30*time.Minute) || c.Now().After(network()) {
		t.Fatalf("after consensus Now = %v, network %v: want valid-after", c.Now(), network())
	}
	if !strings.Contains(logbuf.String(), "[warn] Our clock is 3 years, 23 hours, 30 minutes behind the time published in the consensus") {
		t.Fatalf("log: %s", logbuf.String())
	}
	// NETINFO from relays with good clocks, one liar ten years ahead.
	offsets := []time.Duration{2 * time.Second, -1 * time.Second, 0, 10 * 365 * 24 * time.Hour, time.Second}
	for i, o := range offsets {
		c.ObserveNetinfo(network().Add(o))
		if i < len(offsets)-1 && !near(c.Now(), network().Add(-30*time.Minute), time.Second) {
			t.Fatalf("after %d NETINFO the estimate moved before MinNetinfo", i+1)
		}
	}
	if !near(c.Now(), network(), 2*time.Second) {
		t.Fatalf("after NETINFO Now = %v, network %v", c.Now(), network())
	}
	if !strings.Contains(logbuf.String(), "Received NETINFO cells with skewed time: it seems that our clock is behind by 3 years") {
		t.Fatalf("no NETINFO skew warning: %s", logbuf.String())
	}
	warns := strings.Count(logbuf.String(), "NETINFO")
	c.ObserveNetinfo(network())
	if strings.Count(logbuf.String(), "NETINFO") != warns {
		t.Fatal("same skew logged twice")
	}
	base.Pass(time.Hour)
	if !near(c.Now(), network(), 2*time.Second) {
		t.Fatal("estimate does not follow the passing of time")
	}
	// NTP finally fixes the system clock: the step is not counted twice.
	base.Step(threeYears)
	if !near(c.Now(), base.Now(), 2*time.Second) || abs(c.Skew()) > 2*time.Second {
		t.Fatalf("after clock step: Now %v, local %v, skew %v", c.Now(), base.Now(), c.Skew())
	}
	if !strings.Contains(logbuf.String(), "System clock stepped by +3 years") {
		t.Fatalf("step not logged: %s", logbuf.String())
	}
}

func TestClockAheadClampedByConsensus(t *testing.T) {
	c, base, logbuf := newTest(t, realTime.Add(48*time.Hour))
	c.ObserveConsensus(realTime.Add(-10*time.Minute), realTime.Add(50*time.Minute))
	wantMax := realTime.Add(50*time.Minute + DefaultConsensusSlack)
	if !c.Now().Equal(wantMax) {
		t.Fatalf("Now %v, want clamped to %v", c.Now(), wantMax)
	}
	if c.Skew() >= 0 {
		t.Fatalf("skew %v, want negative (we are ahead)", c.Skew())
	}
	if !strings.Contains(logbuf.String(), "ahead of the time published in the consensus") {
		t.Fatalf("log: %s", logbuf.String())
	}
	// A good local clock inside the interval is left alone.
	c2, base2, logbuf2 := newTest(t, realTime)
	c2.ObserveConsensus(realTime.Add(-10*time.Minute), realTime.Add(50*time.Minute))
	if c2.Skew() != 0 || !c2.Now().Equal(base2.Now()) || logbuf2.Len() != 0 {
		t.Fatalf("good clock adjusted: skew %v, log %q", c2.Skew(), logbuf2)
	}
	_ = base
	c2.ObserveConsensus(realTime, realTime.Add(-time.Hour)) // malformed: ignored
	if c2.Skew() != 0 {
		t.Fatal("malformed consensus times used")
	}
}

func TestNetinfoAloneMakesTrusted(t *testing.T) {
	c, base, _ := newTest(t, time.Unix(1000, 0))
	network := realTime
	for i := range DefaultMinNetinfo {
		if c.Trusted() {
			t.Fatalf("trusted after %d NETINFO", i)
		}
		c.ObserveNetinfo(network)
	}
	if !c.Trusted() || !near(c.Now(), network, time.Second) {
		t.Fatalf("trusted %v, Now %v", c.Trusted(), c.Now())
	}
	c.ObserveNetinfo(time.Unix(0, 0)) // "no time": ignored
	if !near(c.Now(), network, time.Second) {
		t.Fatal("zero NETINFO time used")
	}
	_ = base
	// An even window uses the mean of the middle two.
	c3, _, _ := newTest(t, realTime)
	c3.opts.MinNetinfo = 2
	c3.ObserveNetinfo(realTime.Add(10 * time.Second))
	c3.ObserveNetinfo(realTime.Add(20 * time.Second))
	if c3.Skew() != 15*time.Second {
		t.Fatalf("even median %v", c3.Skew())
	}
	// The window slides: old skews are forgotten.
	for range DefaultNetinfoWindow {
		c3.ObserveNetinfo(realTime.Add(time.Minute))
	}
	if c3.Skew() != time.Minute {
		t.Fatalf("after window slid: %v", c3.Skew())
	}
}

func TestSyncedIsTrusted(t *testing.T) {
	c := New(Options{Synced: func() bool { return true }})
	if !c.Trusted() || !near(c.Now(), time.Now(), time.Second) {
		t.Fatal("synced clock not trusted or off")
	}
	_ = KernelSynced() // must not fail or panic on this machine
}

func TestInterval(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                              "0 seconds",
		time.Second:                    "1 second",
		59 * time.Second:               "59 seconds",
		61 * time.Minute:               "1 hour, 1 minute",
		(365*24 + 25) * time.Hour:      "1 year, 1 day, 1 hour",
		2*24*time.Hour + 3*time.Minute: "2 days, 3 minutes",
	} {
		if got := interval(d); got != want {
			t.Errorf("interval(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	c := New(Options{Synced: never})
	start := time.Now()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				switch (g + i) % 4 {
				case 0:
					c.ObserveNetinfo(time.Now())
				case 1:
					c.ObserveConsensus(time.Now().Add(-time.Hour), time.Now())
				case 2:
					c.Now()
				default:
					c.Skew()
					c.Trusted()
				}
			}
		}()
	}
	wg.Wait()
	// Each NETINFO time was read before the clock's own reading, during the
	// run, so each skew (and their median, within the consensus bounds)
	// lies in [-elapsed, 0].
	if s, el := c.Skew(), time.Since(start); s > 0 || s < -el {
		t.Fatalf("skew %v on a good clock (run took %v)", s, el)
	}
}

// TestOlderConsensusDoesNotMoveClockBack: a consensus 27 hours older than
// one already observed (a signed one from the archives, replayed by a
// directory cache) is ignored.
func TestOlderConsensusDoesNotMoveClockBack(t *testing.T) {
	c, _, logbuf := newTest(t, realTime)
	c.ObserveConsensus(realTime.Add(-10*time.Minute), realTime.Add(50*time.Minute))
	skew := c.Skew()
	old := realTime.Add(-27 * time.Hour)
	c.ObserveConsensus(old, old.Add(time.Hour))
	if got := c.Skew(); got != skew {
		t.Fatalf("skew %s after an older consensus, was %s", got, skew)
	}
	if !strings.Contains(logbuf.String(), "Ignoring the time of a consensus valid after") {
		t.Errorf("log: %s", logbuf.String())
	}
	// A newer one still counts.
	c.ObserveConsensus(realTime.Add(-5*time.Minute), realTime.Add(55*time.Minute))
	if !c.Trusted() {
		t.Fatal("not trusted")
	}
}

// TestSyncedClockNotOverridden: with the kernel clock synchronised, neither
// an old consensus nor skewed NETINFO cells move the estimate.
func TestSyncedClockNotOverridden(t *testing.T) {
	base := &fakeBase{wall: realTime}
	var logbuf bytes.Buffer
	c := New(Options{Now: base.Now, Mono: base.Mono, Synced: func() bool { return true },
		Log: torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logbuf})})
	old := realTime.Add(-23 * time.Hour)
	c.ObserveConsensus(old.Add(-time.Hour), old)
	for range DefaultMinNetinfo {
		c.ObserveNetinfo(old)
	}
	if s := c.Skew(); s != 0 {
		t.Fatalf("a synchronised clock was moved by %s", s)
	}
	if !near(c.Now(), realTime, time.Second) {
		t.Fatalf("Now = %v, want the kernel's %v", c.Now(), realTime)
	}
	if !strings.Contains(logbuf.String(), "keeping it") {
		t.Errorf("the disagreement is not logged as such: %s", logbuf.String())
	}
}
