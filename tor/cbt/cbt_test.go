package cbt

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/tor/event"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(t *testing.T, opts Options) (*Estimator, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.New(rand.NewPCG(1, 2))
	}
	return New(opts), clk
}

// TestXmAlpha is C tor's test_circuit_timeout_xm_alpha: 110 build times
// (9 modes, 8 mode ties, 10 abandoned) and the Xm and alpha expected for
// 1, 3, 5, 10, 15 and 20 modes.
func TestXmAlpha(t *testing.T) {
	e, _ := newTest(t, Options{})
	base := []int32{100, 20, 1000, 500, 200, 5000, 30, 600, 200, 300, abandoned}
	var times []int32
	for i := int32(0); i < 10; i++ {
		for _, b := range base {
			if b == abandoned {
				times = append(times, b)
			} else {
				times = append(times, b+i)
			}
		}
	}
	copy(e.times[:], times)
	e.total = 110
	for _, tc := range []struct {
		modes int
		xm    int32
		alpha float64
	}{
		{1, 205, 1.394401},
		{3, 117, 0.902313},
		{5, 146, 1.049032},
		{10, 800, 4.851754},
		{15, 800, 4.851754},
		{20, 800, 4.851754},
	} {
		e.params.NumModes = tc.modes
		if xm := e.xmLocked(); xm != tc.xm {
			t.Errorf("modes %d: Xm = %d, want %d", tc.modes, xm, tc.xm)
		}
		if !e.updateAlphaLocked() {
			t.Fatalf("modes %d: update alpha failed", tc.modes)
		}
		if e.xm != tc.xm || math.Abs(e.alpha-tc.alpha) >= 0.00001 {
			t.Errorf("modes %d: Xm %d alpha %f, want %d %f", tc.modes, e.xm, e.alpha, tc.xm, tc.alpha)
		}
	}
}

// paretoCDF is circuit_build_times_cdf.
func paretoCDF(xm, alpha, x float64) float64 { return 1 - math.Pow(xm/x, alpha) }

// sample is circuit_build_times_generate_sample: a time in the
// [qlo, qhi) quantile range of the curve (xm, alpha).
func sample(r *rand.Rand, xm, alpha, qlo, qhi float64) int32 {
	qhi -= 1.0 / math.MaxInt32
	u := qlo + (qhi-qlo)*r.Float64()
	return int32(math.Round(paretoQuantile(xm, alpha, u)))
}

// TestCircuitTimeout follows C tor's test_circuit_timeout: samples of a
// known Pareto curve (Xm 3000 ms, alpha such that the 80 % point is 30 s)
// are learned until the estimated timeout is within 2 % of the true CDF;
// the history survives the state lines within 5 %; then the liveness
// rules: no reset after successes, recording stops after a close without
// network activity, and cbtmaxtimeouts timeouts after the first hop reset
// the history while one fewer does not.
func TestCircuitTimeout(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 42))
	const xm0, timeout0 = 3000.0, 30000.0
	alpha0 := math.Log(1-0.8) / (math.Log(xm0) - math.Log(timeout0)) // circuit_build_times_initial_alpha

	estimate, clk := newTest(t, Options{})
	var timeout1 float64
	for rounds := 0; ; rounds++ {
		for range 100 {
			estimate.mu.Lock()
			estimate.addTimeLocked(sample(r, xm0, alpha0, 0, 1))
			estimate.mu.Unlock()
		}
		estimate.mu.Lock()
		estimate.updateAlphaLocked()
		timeout1 = estimate.quantileLocked(0.8)
		estimate.setTimeoutLocked()
		estimate.mu.Unlock()
		if math.Abs(paretoCDF(xm0, alpha0, timeout0)-paretoCDF(xm0, alpha0, timeout1)) <= 0.02 {
			t.Logf("after %d samples: timeout %.0f ms, Xm %d, alpha %f", (rounds+1)*100, timeout1, estimate.xm, estimate.alpha)
			break
		}
		if rounds > 100 {
			t.Fatalf("estimate does not converge: timeout %f", timeout1)
		}
	}
	if estimate.total > NCircuitsToObserve {
		t.Fatalf("total %d", estimate.total)
	}
	if to, learned := estimate.Timeout(); !learned || to <= 0 {
		t.Fatalf("Timeout() = %v, %v", to, learned)
	}

	final, _ := newTest(t, Options{Now: clk.Now})
	if err := final.LoadState(estimate.MarshalState()); err != nil {
		t.Fatal(err)
	}
	final.mu.Lock()
	final.updateAlphaLocked()
	timeout2 := final.quantileLocked(0.8)
	final.mu.Unlock()
	t.Logf("after the state round trip: timeout %.0f ms, Xm %d", timeout2, final.xm)
	if d := math.Abs(paretoCDF(xm0, alpha0, timeout0) - paretoCDF(xm0, alpha0, timeout2)); d >= 0.05 {
		t.Fatalf("after state round trip the CDF differs by %f", d)
	}

	for run := range 50 {
		for _, c := range []*Estimator{estimate, final} {
			c.mu.Lock()
			c.timeoutMS, c.closeMS = 60000, 60000
			c.mu.Unlock()
		}
		for range 20 * 2 {
			estimate.mu.Lock()
			estimate.networkSuccessLocked()
			estimate.addTimeLocked(sample(r, float64(estimate.xm), estimate.alpha, 0, 0.8))
			estimate.networkSuccessLocked()
			estimate.mu.Unlock()
			final.mu.Lock()
			final.addTimeLocked(sample(r, float64(final.xm), final.alpha, 0, 0.8))
			final.mu.Unlock()
		}
		for _, c := range []*Estimator{estimate, final} {
			c.mu.Lock()
			if c.checkChangedLocked() != nil {
				t.Fatalf("run %d: reset after successes", run)
			}
			// The network was last live long ago.
			c.live.lastLive = time.Time{}
			c.mu.Unlock()
			if !c.IsLive() {
				t.Fatalf("run %d: not live before a close", run)
			}
		}
		idx, total := estimate.idx, estimate.total
		for _, c := range []*Estimator{estimate, final} {
			_, closeAfter := c.Timeouts()
			c.Abandoned(false, clk.Now().Add(-closeAfter-time.Second))
			if c.IsLive() {
				t.Fatalf("run %d: live after a close without activity", run)
			}
		}
		if estimate.idx != idx || (total != NCircuitsToObserve && estimate.total != total) {
			t.Fatalf("run %d: a close without activity was recorded", run)
		}
		estimate.NetworkLive()
		final.NetworkLive()
		for i := range 18 {
			estimate.TimedOut(true)
			if i < 18-1 {
				final.TimedOut(true)
			}
		}
		if estimate.live.recentIdx != 0 {
			t.Fatalf("run %d: after the reset the ring index is %d", run, estimate.live.recentIdx)
		}
		if final.live.recentIdx != 18-1 {
			t.Fatalf("run %d: ring index %d, want 17", run, final.live.recentIdx)
		}
		if !estimate.IsLive() || !final.IsLive() {
			t.Fatalf("run %d: not live", run)
		}
		final.TimedOut(true)
	}
	// Degenerate curves are clamped.
	if q := paretoQuantile(3000, math.MaxInt32, 0.99999999); q > math.MaxInt32 {
		t.Fatal(q)
	}
	if q := paretoQuantile(3000, 0, 0.5); q != math.MaxInt32 {
		t.Fatal(q)
	}
}

// TestLearnedTimeout checks the timeout and close timeout against values
// computed by hand for a simple history, with the caps of path-spec 2.4.3.
func TestLearnedTimeout(t *testing.T) {
	bus := &event.Bus{}
	var got []event.BuildTimeoutSet
	var mu sync.Mutex
	bus.Subscribe(func(ev event.Event) {
		if b, ok := ev.(*event.BuildTimeoutSet); ok {
			mu.Lock()
			got = append(got, *b)
			mu.Unlock()
		}
	})
	e, _ := newTest(t, Options{Events: bus})
	if to, learned := e.Timeout(); to != 60*time.Second || learned {
		t.Fatalf("initial timeout %v %v", to, learned)
	}
	// 50 builds of 100 ms and 50 of 400 ms: bins 10 (105 ms) and 40
	// (405 ms), Xm = (105*50+405*50)/100 = 255.
	for i := range 100 {
		d := 100 * time.Millisecond
		if i%2 == 1 {
			d = 400 * time.Millisecond
		}
		if e.EnoughToCompute() {
			t.Fatalf("enough after %d", i)
		}
		e.Built(d, false)
	}
	xm := 255.0
	sum := 50*math.Log(xm) + 50*math.Log(400) // 100 < Xm counts as Xm
	alpha := 100 / (sum - 100*math.Log(xm))
	wantTimeout := xm / math.Pow(0.2, 1/alpha)
	if wantTimeout > 400 {
		wantTimeout = 400 // capped at the longest build seen
	}
	to, closeAfter := e.Timeouts()
	if !approx(to, wantTimeout) {
		t.Fatalf("timeout %v, want %.3f ms (Xm %d alpha %f)", to, wantTimeout, e.xm, e.alpha)
	}
	// The close quantile is capped at twice the maximum (800 ms) but is
	// at least cbtinitialtimeout.
	if closeAfter != 60*time.Second {
		t.Fatalf("close %v", closeAfter)
	}
	if _, learned := e.Timeout(); !learned {
		t.Fatal("not learned")
	}
	mu.Lock()
	last := got[len(got)-1]
	mu.Unlock()
	if last.Type != "COMPUTED" || last.TotalTimes != 100 || last.Xm != 255*time.Millisecond || last.Quantile != 0.8 || math.Abs(last.Alpha-alpha) > 1e-9 {
		t.Fatalf("last event %+v", last)
	}
	if last.TimeoutRate != 0 || last.CloseRate != 0 {
		t.Fatalf("rates %+v", last)
	}
}

func approx(d time.Duration, ms float64) bool {
	return math.Abs(float64(d)/float64(time.Millisecond)-ms) < 0.001
}

// TestMinTimeout: a history of very fast builds gives a timeout no lower
// than cbtmintimeout (10 ms by default).
func TestMinTimeout(t *testing.T) {
	e, _ := newTest(t, Options{})
	for range 100 {
		e.Built(time.Millisecond, false)
	}
	to, closeAfter := e.Timeouts()
	if to != 10*time.Millisecond || closeAfter != 60*time.Second {
		t.Fatalf("timeout %v close %v", to, closeAfter)
	}
	p := DefaultParams()
	p.MinTimeoutMS = 1500
	e.SetParams(p)
	e.Built(time.Millisecond, false)
	if to, _ := e.Timeouts(); to != 1500*time.Millisecond {
		t.Fatalf("timeout %v with cbtmintimeout 1500", to)
	}
}

// TestNetworkChange: cbtmaxtimeouts of the last cbtrecentcount circuits
// timing out after their first hop reset the learned timeout to the
// initial value; a second time, from the initial value, it doubles.
// Timeouts before the first hop do not count.
func TestNetworkChange(t *testing.T) {
	e, _ := newTest(t, Options{})
	e.NetworkLive()
	for range 100 {
		e.Built(200*time.Millisecond, false)
	}
	if _, learned := e.Timeout(); !learned {
		t.Fatal("not learned")
	}
	for range 30 {
		e.TimedOut(false)
	}
	if _, learned := e.Timeout(); !learned {
		t.Fatal("timeouts before the first hop reset the history")
	}
	for range 17 {
		e.TimedOut(true)
	}
	if _, learned := e.Timeout(); !learned {
		t.Fatal("17 timeouts reset the history")
	}
	e.TimedOut(true)
	to, closeAfter := e.Timeouts()
	if _, learned := e.Timeout(); learned || to != 60*time.Second || closeAfter != 60*time.Second || e.EnoughToCompute() {
		t.Fatalf("after 18 timeouts: %v %v enough=%v", to, closeAfter, e.EnoughToCompute())
	}
	for range 18 {
		e.TimedOut(true)
	}
	if to, closeAfter := e.Timeouts(); to != 120*time.Second || closeAfter != 120*time.Second {
		t.Fatalf("second reset: %v %v, want doubled", to, closeAfter)
	}
	// Successes in between keep the count below the limit.
	for range 18 {
		e.Built(100*time.Millisecond, false)
		e.TimedOut(true)
	}
	if to, _ := e.Timeouts(); to != 120*time.Second {
		t.Fatalf("reset although half the circuits succeeded: %v", to)
	}
}

// TestNonLive: a circuit abandoned with no network activity since its
// launch stops the recording of build times until the network is live
// again.
func TestNonLive(t *testing.T) {
	e, clk := newTest(t, Options{})
	e.NetworkLive()
	clk.Add(time.Minute)
	started := clk.Now()
	clk.Add(time.Minute)
	e.Abandoned(true, started)
	if e.IsLive() {
		t.Fatal("live")
	}
	e.Built(300*time.Millisecond, false)
	if e.total != 0 {
		t.Fatalf("recorded %d times while not live", e.total)
	}
	e.NetworkLive()
	started = clk.Now()
	e.Abandoned(true, started)
	e.Built(300*time.Millisecond, false)
	if !e.IsLive() || e.total != 2 || e.closeRateLocked() != 0.5 {
		t.Fatalf("live %v total %d", e.IsLive(), e.total)
	}
}

// memStore is a Persister in memory.
type memStore struct {
	mu     sync.Mutex
	files  map[string][]byte
	writes int
}

func (m *memStore) Read(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return append([]byte(nil), b...), nil
}

func (m *memStore) Write(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[string][]byte{}
	}
	m.files[name] = append([]byte(nil), data...)
	m.writes++
	return nil
}

// TestStateRoundTrip: the state lines are C tor's, written every 10 times
// and at Save, and a new Estimator that loads them has the same histogram
// and timeout.
func TestStateRoundTrip(t *testing.T) {
	st := &memStore{}
	e, _ := newTest(t, Options{Store: st})
	if err := e.Load(); err != nil {
		t.Fatalf("load without a file: %v", err)
	}
	e.NetworkLive()
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 149 {
		e.Built(time.Duration(sample(r, 800, 3, 0, 0.95))*time.Millisecond, false)
		if want := (i + 1) / 10; st.writes != want {
			t.Fatalf("after %d times %d writes, want %d", i+1, st.writes, want)
		}
	}
	e.Abandoned(true, e.opts.Now())
	if st.writes != 15 {
		t.Fatalf("%d writes", st.writes)
	}
	if err := e.Save(); err != nil {
		t.Fatal(err)
	}
	if st.writes != 15 {
		t.Fatal("Save wrote an unchanged state")
	}
	e.Built(time.Second, false)
	if err := e.Save(); err != nil || st.writes != 16 {
		t.Fatalf("Save: %v, %d writes", err, st.writes)
	}
	text, _ := st.Read(DefaultStateName)
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	if len(lines) < 3 || lines[len(lines)-1] != "TotalBuildTimes 151" || lines[len(lines)-2] != "CircuitBuildAbandonedCount 1" || !strings.HasPrefix(lines[0], "CircuitBuildTimeBin ") {
		t.Fatalf("state:\n%s", text)
	}
	if !bytes.Equal(text, e.MarshalState()) {
		t.Fatal("stored state differs from MarshalState")
	}

	e2, _ := newTest(t, Options{Store: st, Rand: rand.New(rand.NewPCG(9, 9))})
	if err := e2.Load(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e2.MarshalState(), text) {
		t.Fatalf("reloaded state differs:\n%s\nvs\n%s", e2.MarshalState(), text)
	}
	to1, c1 := e.Timeouts()
	to2, c2 := e2.Timeouts()
	// Binning changes the times by at most 5 ms each: the fit moves a
	// little.
	if math.Abs(float64(to1-to2)) > float64(to1)/20 || c2 < 60*time.Second {
		t.Fatalf("timeouts %v/%v before, %v/%v after", to1, c1, to2, c2)
	}
	if _, learned := e2.Timeout(); !learned {
		t.Fatal("loaded history not used")
	}
}

// TestStateCTor reads a state written by C tor (lines of a real state
// file among others).
func TestStateCTor(t *testing.T) {
	state := `# Tor state file last generated on 2026-12-03 12:00:00 local time
# Other times below are in UTC
# You *do not* need to edit this file.

Guard in=guards rsa_id=0000000000000000000000000000000000000000 sampled_on=2026-12-01T00:00:00
TotalBuildTimes 103
CircuitBuildAbandonedCount 3
CircuitBuildTimeBin 15 40
CircuitBuildTimeBin 25 50
CircuitBuildTimeBin 105 10
LastWritten 2026-12-03 12:00:00
`
	e, _ := newTest(t, Options{})
	if err := e.LoadState([]byte(state)); err != nil {
		t.Fatal(err)
	}
	if e.total != 103 || e.closeRateLocked() != 3.0/103 {
		t.Fatalf("total %d", e.total)
	}
	want := "CircuitBuildTimeBin 15 40\nCircuitBuildTimeBin 25 50\nCircuitBuildTimeBin 105 10\nCircuitBuildAbandonedCount 3\nTotalBuildTimes 103\n"
	if got := string(e.MarshalState()); got != want {
		t.Fatalf("state %q", got)
	}
	if _, learned := e.Timeout(); !learned {
		t.Fatal("not learned")
	}
	// Xm = (25*50 + 15*40 + 105*10) / 100 = 29 (integer division).
	if e.xm != 29 {
		t.Fatalf("Xm %d", e.xm)
	}
}

func TestStateBad(t *testing.T) {
	for _, s := range []string{
		"TotalBuildTimes 10\nCircuitBuildTimeBin 15 11\n",
		"TotalBuildTimes 10\nCircuitBuildTimeBin 15 9\n",
		"TotalBuildTimes 10\nCircuitBuildAbandonedCount 11\n",
		"TotalBuildTimes 10\nCircuitBuildTimeBin 15\n",
		"TotalBuildTimes 10\nCircuitBuildTimeBin x 10\n",
		"TotalBuildTimes 10\nCircuitBuildTimeBin 0 10\n",
		"TotalBuildTimes -1\n",
		"TotalBuildTimes 99999999999\n",
		"CircuitBuildTimeBin 15 1\n",
	} {
		e, _ := newTest(t, Options{})
		err := e.LoadState([]byte(s))
		if !errors.Is(err, ErrBadState) {
			t.Errorf("%q: err %v", s, err)
		}
		if e.total != 0 {
			t.Errorf("%q: kept %d times", s, e.total)
		}
	}
	// More than NCircuitsToObserve: a random subset is kept.
	e, _ := newTest(t, Options{})
	if err := e.LoadState([]byte("TotalBuildTimes 1500\nCircuitBuildTimeBin 15 1500\n")); err != nil {
		t.Fatal(err)
	}
	if e.total != NCircuitsToObserve {
		t.Fatalf("total %d", e.total)
	}
}

// TestConfig: LearnCircuitBuildTimeout 0 uses CircuitBuildTimeout (or
// 60 s); with both set, CircuitBuildTimeout is the timeout until one is
// learned; the consensus can disable learning.
func TestConfig(t *testing.T) {
	e, _ := newTest(t, Options{NoLearn: true, Fixed: 5 * time.Second})
	for range 200 {
		e.Built(100*time.Millisecond, false)
		e.TimedOut(true)
	}
	if to, c := e.Timeouts(); to != 5*time.Second || c != 5*time.Second || !e.Disabled() || e.total != 0 {
		t.Fatalf("fixed: %v %v %d", to, c, e.total)
	}
	if _, learned := e.Timeout(); learned {
		t.Fatal("learned while disabled")
	}
	e, _ = newTest(t, Options{NoLearn: true})
	if to, _ := e.Timeouts(); to != 60*time.Second {
		t.Fatalf("default %v", to)
	}
	// Learning with a configured start.
	e, _ = newTest(t, Options{Fixed: 30 * time.Second})
	if to, _ := e.Timeouts(); to != 30*time.Second {
		t.Fatalf("start %v", to)
	}
	for range 100 {
		e.Built(100*time.Millisecond, false)
	}
	if to, _ := e.Timeouts(); to >= time.Second {
		t.Fatalf("not learned: %v", to)
	}
	// cbtdisabled in the consensus.
	p := DefaultParams()
	p.Disabled = true
	e.SetParams(p)
	if !e.Disabled() {
		t.Fatal("not disabled")
	}
	e.TimedOut(true)
	if to, _ := e.Timeouts(); to != 30*time.Second {
		t.Fatalf("disabled by consensus: %v", to)
	}
	// Reconfigure: learning off, no fixed value.
	e, _ = newTest(t, Options{})
	e.SetConfig(false, 0)
	if to, _ := e.Timeouts(); to != 60*time.Second || !e.Disabled() {
		t.Fatalf("SetConfig: %v", to)
	}
	e.SetConfig(true, 20*time.Second)
	if to, _ := e.Timeouts(); to != 20*time.Second || e.Disabled() {
		t.Fatalf("SetConfig: %v", to)
	}
}

func TestParams(t *testing.T) {
	vals := map[string]int32{"cbtquantile": 90, "cbtclosequantile": 85, "cbtmintimeout": 2000, "cbtinitialtimeout": 1000, "cbtnummodes": 50, "cbtrecentcount": 2}
	p := ParamsFrom(func(name string, def, lo, hi int32) int32 {
		v, ok := vals[name]
		if !ok {
			return def
		}
		return max(lo, min(hi, v))
	})
	if p.Quantile != 90 || p.CloseQuantile != 90 || p.MinTimeoutMS != 2000 || p.InitialTimeoutMS != 2000 || p.NumModes != 20 || p.RecentCount != 3 {
		t.Fatalf("%+v", p)
	}
	d := DefaultParams()
	if d.Quantile != 80 || d.CloseQuantile != 99 || d.MinCircs != 100 || d.MaxTimeouts != 18 || d.RecentCount != 20 ||
		d.TestFreq != 10*time.Second || d.MinTimeoutMS != 10 || d.InitialTimeoutMS != 60000 || d.MaxOpenCircs != 10 || d.NumModes != 10 || d.Disabled {
		t.Fatalf("%+v", d)
	}
	// A smaller ring keeps the index inside it.
	e, _ := newTest(t, Options{})
	for range 15 {
		e.TimedOut(true)
	}
	small := d
	small.RecentCount = 5
	e.SetParams(small)
	if len(e.live.recent) != 5 || e.live.recentIdx != 4 {
		t.Fatalf("ring %d idx %d", len(e.live.recent), e.live.recentIdx)
	}
	e.TimedOut(true)
}

func TestNeedsCircuits(t *testing.T) {
	e, clk := newTest(t, Options{})
	if !e.NeedsCircuitsNow() {
		t.Fatal("no test circuit wanted at start")
	}
	e.NoteLaunch()
	clk.Add(10 * time.Second)
	if e.NeedsCircuitsNow() {
		t.Fatal("wanted before cbttestfreq")
	}
	clk.Add(time.Second)
	if !e.NeedsCircuitsNow() {
		t.Fatal("not wanted after cbttestfreq")
	}
	for range 100 {
		e.Built(50*time.Millisecond, false)
	}
	if e.NeedsCircuitsNow() {
		t.Fatal("wanted after cbtmincircs")
	}
}

func FuzzLoadState(f *testing.F) {
	f.Add([]byte("TotalBuildTimes 3\nCircuitBuildAbandonedCount 1\nCircuitBuildTimeBin 15 2\n"))
	f.Add([]byte("TotalBuildTimes 1\nCircuitBuildTimeBin 2147483646 1\n"))
	f.Add([]byte("CircuitBuildTimeBin 15 4294967295\nTotalBuildTimes 100000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e := New(Options{Rand: rand.New(rand.NewPCG(1, 1))})
		err := e.LoadState(data)
		to, c := e.Timeouts()
		if to <= 0 || c < to {
			t.Fatalf("timeouts %v %v (err %v)", to, c, err)
		}
		if err == nil {
			again := New(Options{Rand: rand.New(rand.NewPCG(2, 2))})
			if err := again.LoadState(e.MarshalState()); err != nil {
				t.Fatalf("own state refused: %v", err)
			}
		}
	})
}

// TestAgainstCTor: states read by C tor 0.4.9.11 (Debian's /usr/sbin/tor
// started with DisableNetwork 1 and Log info on a DataDirectory holding
// only this state file) and the timeout, close timeout, Xm, alpha and
// timeout rate it logged ("Circuit timeout data: ...").
func TestAgainstCTor(t *testing.T) {
	for _, tc := range []struct {
		state            string
		timeout, closeMS float64
		xm               int32
		alpha, rate      float64
	}{
		{"TotalBuildTimes 160\nCircuitBuildAbandonedCount 4\nCircuitBuildTimeBin 155 10\nCircuitBuildTimeBin 185 22\n" +
			"CircuitBuildTimeBin 205 30\nCircuitBuildTimeBin 235 25\nCircuitBuildTimeBin 265 18\nCircuitBuildTimeBin 305 12\n" +
			"CircuitBuildTimeBin 355 9\nCircuitBuildTimeBin 425 8\nCircuitBuildTimeBin 515 6\nCircuitBuildTimeBin 705 5\n" +
			"CircuitBuildTimeBin 995 4\nCircuitBuildTimeBin 1505 3\nCircuitBuildTimeBin 2995 2\nCircuitBuildTimeBin 7005 2\n",
			399.290120, 60000, 270, 4.113408, 0.212500},
		// The timeout is capped at the longest time seen.
		{"TotalBuildTimes 100\nCircuitBuildTimeBin 205 95\nCircuitBuildTimeBin 215 5\n",
			205.787215, 60000, 205, 419.920623, 0.05},
		// Abandoned circuits and far modes.
		{"TotalBuildTimes 130\nCircuitBuildAbandonedCount 30\nCircuitBuildTimeBin 45 30\nCircuitBuildTimeBin 55 40\n" +
			"CircuitBuildTimeBin 65 10\nCircuitBuildTimeBin 125 10\nCircuitBuildTimeBin 5005 10\n",
			790.700811, 60000, 555, 4.547057, 0.307692},
	} {
		e, _ := newTest(t, Options{})
		if err := e.LoadState([]byte(tc.state)); err != nil {
			t.Fatal(err)
		}
		if math.Abs(e.timeoutMS-tc.timeout) > 1e-6 || e.closeMS != tc.closeMS || e.xm != tc.xm ||
			math.Abs(e.alpha-tc.alpha) > 1e-6 || math.Abs(e.timeoutRateLocked()-tc.rate) > 1e-6 {
			t.Errorf("got %fms, %fms, Xm: %d, a: %f, r: %f; C tor %fms, %fms, Xm: %d, a: %f, r: %f",
				e.timeoutMS, e.closeMS, e.xm, e.alpha, e.timeoutRateLocked(), tc.timeout, tc.closeMS, tc.xm, tc.alpha, tc.rate)
		}
	}
	// All times in one bin: C tor's alpha comes out as a huge negative
	// number (rounding), the quantile as INT32_MAX, capped to the longest
	// time (5 ms) and raised to cbtmintimeout.
	e, _ := newTest(t, Options{})
	if err := e.LoadState([]byte("TotalBuildTimes 100\nCircuitBuildTimeBin 5 100\n")); err != nil {
		t.Fatal(err)
	}
	if e.timeoutMS != 10 || e.closeMS != 60000 || e.xm != 5 {
		t.Errorf("one bin: %fms, %fms, Xm %d, a %f", e.timeoutMS, e.closeMS, e.xm, e.alpha)
	}
	t.Logf("one bin: alpha %f (C tor: -1172812402961066.750000)", e.alpha)
}

// TestWritesAsCTor: the history lines C tor 0.4.9.11 wrote in its state
// file (other lines removed; the second after learning on the test
// network with --latency-ms 25) come back byte for byte.
func TestWritesAsCTor(t *testing.T) {
	for _, ctor := range []string{
		"CircuitBuildTimeBin 155 10\nCircuitBuildTimeBin 185 22\nCircuitBuildTimeBin 205 30\nCircuitBuildTimeBin 235 25\n" +
			"CircuitBuildTimeBin 265 18\nCircuitBuildTimeBin 305 12\nCircuitBuildTimeBin 355 9\nCircuitBuildTimeBin 425 8\n" +
			"CircuitBuildTimeBin 515 6\nCircuitBuildTimeBin 705 5\nCircuitBuildTimeBin 995 4\nCircuitBuildTimeBin 1505 3\n" +
			"CircuitBuildTimeBin 2995 2\nCircuitBuildTimeBin 7005 2\nCircuitBuildAbandonedCount 4\nTotalBuildTimes 160\n",
		"CircuitBuildTimeBin 305 2\nCircuitBuildTimeBin 315 91\nCircuitBuildTimeBin 325 34\nCircuitBuildTimeBin 335 24\n" +
			"CircuitBuildTimeBin 345 11\nCircuitBuildTimeBin 355 8\nCircuitBuildTimeBin 365 3\nCircuitBuildTimeBin 375 1\n" +
			"CircuitBuildTimeBin 385 3\nCircuitBuildTimeBin 405 1\nCircuitBuildTimeBin 435 2\nTotalBuildTimes 180\n",
	} {
		e, _ := newTest(t, Options{})
		if err := e.LoadState([]byte(ctor)); err != nil {
			t.Fatal(err)
		}
		if got := string(e.MarshalState()); got != ctor {
			t.Errorf("wrote\n%s\nC tor wrote\n%s", got, ctor)
		}
	}
}
