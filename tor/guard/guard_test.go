package guard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/tor/dir"
	"tinytor/tor/path"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mapStore is a Persister over a map.
type mapStore struct {
	mu     sync.Mutex
	files  map[string][]byte
	writes int
}

func newMapStore() *mapStore { return &mapStore{files: map[string][]byte{}} }

func (s *mapStore) Read(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[name]
	if !ok {
		return nil, fmt.Errorf("reading %s: %w", name, fs.ErrNotExist)
	}
	return append([]byte(nil), b...), nil
}

func (s *mapStore) Write(name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = append([]byte(nil), data...)
	s.writes++
	return nil
}

func seeded(seed uint64) *rand.Rand {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	return rand.New(rand.NewChaCha8(b))
}

const goodFlags = dir.FlagGuard | dir.FlagStable | dir.FlagFast | dir.FlagV2Dir | dir.FlagValid | dir.FlagRunning

// relaySpec describes one synthetic relay.
type relaySpec struct {
	bw    uint32
	flags dir.Flags
	noMD  bool
}

// makeDir builds a consensus valid at now with the given relays; relay i
// has identity byte i+1 (so the list is sorted) and nickname "relayI".
func makeDir(now time.Time, specs []relaySpec, params map[string]int32) *path.Dir {
	c := &dir.Consensus{
		ValidAfter: now.Add(-30 * time.Minute),
		FreshUntil: now.Add(30 * time.Minute),
		ValidUntil: now.Add(150 * time.Minute),
		Params:     params,
	}
	mds := map[[32]byte]*dir.Microdesc{}
	for i, s := range specs {
		r := dir.Relay{Bandwidth: s.bw, ORPort: 9001, Flags: s.flags, Nickname: fmt.Sprintf("relay%d", i)}
		r.Identity[0] = byte(i + 1)
		r.Identity[19] = 0xEE
		r.Microdesc[0] = byte(i + 1)
		r.Addr = [4]byte{10, byte(i), 0, 1}
		c.Relays = append(c.Relays, r)
		if !s.noMD {
			mds[r.Microdesc] = &dir.Microdesc{Digest: r.Microdesc, HasNtorKey: true}
		}
	}
	return path.NewDir(c, mds)
}

// thirty is the standard synthetic network: 30 relays, bandwidth
// 100*(i+1); relays 5, 11, 17, 23 and 29 are not guards (no Guard flag or
// no Stable), the rest are.
func thirty() []relaySpec {
	var s []relaySpec
	for i := 0; i < 30; i++ {
		f := goodFlags
		switch i % 6 {
		case 5:
			if i%12 == 5 {
				f &^= dir.FlagGuard
			} else {
				f &^= dir.FlagStable
			}
		}
		s = append(s, relaySpec{bw: uint32(100 * (i + 1)), flags: f})
	}
	return s
}

func idx(id [20]byte) int { return int(id[0]) - 1 }

type fixture struct {
	clk   *clock
	store *mapStore
	m     *Manager
	specs []relaySpec
	d     *path.Dir
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{clk: newClock(), store: newMapStore(), specs: thirty()}
	opts.Now = f.clk.Now
	if opts.Rand == nil {
		opts.Rand = seeded(1)
	}
	if opts.Store == nil {
		opts.Store = f.store
	}
	f.m = New(opts)
	f.setConsensus(nil)
	return f
}

func (f *fixture) setConsensus(params map[string]int32) {
	f.d = makeDir(f.clk.Now(), f.specs, params)
	f.m.SetConsensus(f.d)
}

func (f *fixture) pick(t *testing.T) (*path.Node, *Handle) {
	t.Helper()
	n, h, err := f.m.Pick(ForCircuit, nil)
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	return n, h
}

func TestSampleSizeAndFlags(t *testing.T) {
	f := newFixture(t, Options{})
	gs := f.m.Guards()
	// 25 guards in the consensus: max(min(20% of 25, 60), 20) = 20, and
	// the sample stops growing at 20 usable filtered guards.
	if len(gs) != 20 {
		t.Fatalf("sampled %d guards, want 20", len(gs))
	}
	seen := map[[20]byte]bool{}
	for _, g := range gs {
		if seen[g.ID] {
			t.Fatalf("guard %X sampled twice", g.ID)
		}
		seen[g.ID] = true
		if i := idx(g.ID); i%6 == 5 {
			t.Fatalf("relay %d without Guard+Stable sampled", i)
		}
		if !g.Listed || !g.Filtered {
			t.Fatalf("fresh guard %+v not listed+filtered", g)
		}
		now := f.clk.Now()
		if g.SampledOn.After(now) || now.Sub(g.SampledOn) > 12*24*time.Hour {
			t.Fatalf("sampled_on %v not within RAND(now, 120d/10)", g.SampledOn)
		}
	}
	if p := f.m.Primary(); len(p) != 3 {
		t.Fatalf("%d primary guards, want 3", len(p))
	}
}

func TestSampleLimitsWithParams(t *testing.T) {
	// With a filter excluding most guards, the sample grows to its
	// maximum (guard-max-sample-size) without reaching 20 usable ones.
	f := newFixture(t, Options{Filter: func(n *path.Node) bool { return idx(n.Identity)%2 == 0 }})
	// max(min(20% of 25, 60), 20) = 20 guards, although fewer than 20
	// of them pass the filter.
	filtered := 0
	for _, g := range f.m.Guards() {
		if g.Filtered {
			filtered++
		}
	}
	if n := len(f.m.Guards()); n != 20 || filtered >= 20 || filtered == 0 {
		t.Fatalf("filtered sample: %d guards, %d filtered; want 20 guards, fewer filtered", n, filtered)
	}
	f.m = New(Options{Now: f.clk.Now, Rand: seeded(2), Filter: func(n *path.Node) bool { return idx(n.Identity)%2 == 0 }})
	f.setConsensus(map[string]int32{"guard-max-sample-size": 7, "guard-min-filtered-sample-size": 5})
	// max(min(25*20%=5, 7), 5) = 5 guards at most.
	if n := len(f.m.Guards()); n != 5 {
		t.Fatalf("with max sample 7 and threshold 20%%: %d guards, want 5", n)
	}
	f.m = New(Options{Now: f.clk.Now, Rand: seeded(3)})
	f.setConsensus(map[string]int32{"guard-max-sample-threshold-percent": 100, "guard-max-sample-size": 8, "guard-min-filtered-sample-size": 2})
	// Two usable guards suffice (as in C tor, the primary list is filled
	// from the sample and does not grow it beyond the minimum).
	if n, np := len(f.m.Guards()), len(f.m.Primary()); n != 2 || np != 2 {
		t.Fatalf("min filtered sample 2: %d guards, %d primary; want 2 and 2", n, np)
	}
}

func TestSamplingWeighted(t *testing.T) {
	clk := newClock()
	specs := thirty()
	d := makeDir(clk.Now(), specs, map[string]int32{"guard-max-sample-size": 1, "guard-min-filtered-sample-size": 1, "guard-n-primary-guards": 1})
	var total, high float64
	for i, s := range specs {
		if s.flags.Has(goodFlags) {
			total += float64(s.bw)
			if i >= 15 {
				high += float64(s.bw)
			}
		}
	}
	const trials = 3000
	counts := map[int]int{}
	for k := 0; k < trials; k++ {
		m := New(Options{Now: clk.Now, Rand: seeded(uint64(k + 100))})
		m.SetConsensus(d)
		gs := m.Guards()
		if len(gs) != 1 {
			t.Fatalf("trial %d: %d guards sampled, want 1", k, len(gs))
		}
		counts[idx(gs[0].ID)]++
	}
	gotHigh := 0
	for i, c := range counts {
		if i >= 15 {
			gotHigh += c
		}
	}
	want := high / total
	got := float64(gotHigh) / trials
	if got < want-0.03 || got > want+0.03 {
		t.Fatalf("share of the heavier half: %.3f, want %.3f (bandwidth weighting)", got, want)
	}
	// The heaviest guard (bw 2900) is picked more often than the lightest
	// (bw 100) by a wide margin.
	if counts[28] < 5*counts[0] {
		t.Fatalf("heaviest guard %d times, lightest %d", counts[28], counts[0])
	}
}

func TestPrimaryStable(t *testing.T) {
	f := newFixture(t, Options{})
	p := f.m.Primary()
	first := p[0]
	for i := 0; i < 50; i++ {
		n, h := f.pick(t)
		if n.Identity != first {
			t.Fatalf("pick %d: got %X, want first primary %X", i, n.Identity, first)
		}
		if h.State() != UsableOnCompletion {
			t.Fatalf("primary pick state %v", h.State())
		}
		h.Succeeded()
		if !h.Usable() {
			t.Fatal("circuit through a primary guard not usable after success")
		}
		h.Close()
		f.clk.Advance(time.Minute)
		if i%10 == 0 {
			f.setConsensus(nil)
		}
		if q := f.m.Primary(); fmt.Sprint(q) != fmt.Sprint(p) {
			t.Fatalf("primary guards changed: %X -> %X", p, q)
		}
	}
	// Primary guards come first in sample order.
	gs := f.m.Guards()
	for i := 0; i < 3; i++ {
		if gs[i].ID != p[i] || !gs[i].Primary {
			t.Fatalf("primary %d is %X, sample[%d] is %X", i, p[i], i, gs[i].ID)
		}
	}
}

func TestNumEntryGuards(t *testing.T) {
	f := newFixture(t, Options{NumEntryGuards: 2})
	p := f.m.Primary()
	got := map[[20]byte]int{}
	for i := 0; i < 200; i++ {
		n, h := f.pick(t)
		got[n.Identity]++
		h.Close()
	}
	if len(got) != 2 || got[p[0]] == 0 || got[p[1]] == 0 {
		t.Fatalf("NumEntryGuards 2: picks %v, primaries %X", got, p)
	}
	f2 := newFixture(t, Options{NumEntryGuards: 5})
	if n := len(f2.m.Primary()); n != 5 {
		t.Fatalf("NumEntryGuards 5: %d primary guards", n)
	}
}

func TestFailedPrimaryNext(t *testing.T) {
	f := newFixture(t, Options{})
	p := f.m.Primary()
	for i := 0; i < 3; i++ {
		n, h := f.pick(t)
		if n.Identity != p[i] {
			t.Fatalf("after %d failures: picked %X, want primary %d %X", i, n.Identity, i, p[i])
		}
		if h.State() != UsableOnCompletion {
			t.Fatalf("state %v", h.State())
		}
		h.Failed()
		if h.Usable() {
			t.Fatal("failed circuit usable")
		}
	}
	// All primaries down: the next guard is non-primary, in sample order.
	gs := f.m.Guards()
	n, h := f.pick(t)
	if n.Identity != gs[3].ID {
		t.Fatalf("picked %X, want sample[3] %X", n.Identity, gs[3].ID)
	}
	if h.State() != UsableIfNoBetterGuard {
		t.Fatalf("non-primary pick state %v", h.State())
	}
	// A second circuit does not reuse the pending guard.
	n2, h2 := f.pick(t)
	if n2.Identity != gs[4].ID {
		t.Fatalf("second exploratory pick %X, want sample[4] %X", n2.Identity, gs[4].ID)
	}
	h.Close()
	h2.Close()
	n3, h3 := f.pick(t)
	if n3.Identity != gs[3].ID {
		t.Fatalf("after Close the first non-primary is free again: got %X", n3.Identity)
	}
	h3.Close()
}

func TestRetryDelay(t *testing.T) {
	h := time.Hour
	d := 24 * h
	for _, c := range []struct {
		failing time.Duration
		primary bool
		want    time.Duration
	}{
		{0, true, 10 * time.Minute},
		{6 * h, true, 10 * time.Minute},
		{6*h + time.Second, true, 90 * time.Minute},
		{4 * d, true, 90 * time.Minute},
		{4*d + time.Second, true, 4 * h},
		{7 * d, true, 4 * h},
		{7*d + time.Second, true, 9 * h},
		{100 * d, true, 9 * h},
		{0, false, h},
		{5 * h, false, h},
		{3 * d, false, 4 * h},
		{6 * d, false, 18 * h},
		{8 * d, false, 36 * h},
	} {
		if got := RetryDelay(c.failing, c.primary); got != c.want {
			t.Errorf("RetryDelay(%v, primary=%v) = %v, want %v", c.failing, c.primary, got, c.want)
		}
	}
}

func TestRetrySchedule(t *testing.T) {
	f := newFixture(t, Options{})
	p := f.m.Primary()
	_, h := f.pick(t)
	h.Failed()
	f.clk.Advance(9*time.Minute + 59*time.Second)
	n, h := f.pick(t)
	if n.Identity != p[1] {
		t.Fatalf("primary 0 retried before 10 minutes: got %X", n.Identity)
	}
	h.Close()
	f.clk.Advance(time.Second)
	n, h = f.pick(t)
	if n.Identity != p[0] {
		t.Fatalf("primary 0 not retried after 10 minutes: got %X", n.Identity)
	}
	// It fails again: 7 hours into the failure, the delay is 90 minutes.
	h.Failed()
	f.clk.Advance(7 * time.Hour)
	n, h = f.pick(t)
	if n.Identity != p[0] {
		t.Fatalf("primary 0 not retried after 7 hours")
	}
	h.Failed()
	f.clk.Advance(89 * time.Minute)
	n, h = f.pick(t)
	if n.Identity != p[1] {
		t.Fatalf("primary 0 retried 89 minutes into a 90-minute delay")
	}
	h.Close()
	f.clk.Advance(time.Minute)
	n, h = f.pick(t)
	if n.Identity != p[0] {
		t.Fatalf("primary 0 not retried after 90 minutes")
	}
	h.Succeeded()
	if info := f.m.Guards()[0]; info.Reachable != Yes || !info.FailingSince.IsZero() {
		t.Fatalf("after success: %+v", info)
	}
}

func TestNonPrimaryRetrySchedule(t *testing.T) {
	f := newFixture(t, Options{})
	for i := 0; i < 3; i++ {
		_, h := f.pick(t)
		h.Failed()
	}
	gs := f.m.Guards()
	n, h := f.pick(t)
	if n.Identity != gs[3].ID {
		t.Fatal("expected sample[3]")
	}
	h.Failed()
	// Primaries retry after 10 minutes: move the clock just under an hour
	// while failing them again each time they come back.
	for k := 0; k < 6; k++ {
		f.clk.Advance(10 * time.Minute)
		for i := 0; i < 3; i++ {
			n, h := f.pick(t)
			if !isIn(n.Identity, f.m.Primary()) {
				t.Fatalf("step %d: expected a retried primary, got %X", k, n.Identity)
			}
			h.Failed()
		}
		n, h := f.pick(t)
		want := gs[4].ID
		if k == 5 {
			want = gs[3].ID // 60 minutes: sample[3] is retried
		}
		if n.Identity != want {
			t.Fatalf("after %d minutes: got %X, want %X", 10*(k+1), n.Identity, want)
		}
		h.Close()
	}
}

func isIn(id [20]byte, ids [][20]byte) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestConfirmedOrder(t *testing.T) {
	f := newFixture(t, Options{})
	p := f.m.Primary()
	gs := f.m.Guards()
	// Primary 1 is confirmed first (primary 0 failed), then primary 0.
	_, h := f.pick(t)
	h.Failed()
	n, h := f.pick(t)
	if n.Identity != p[1] {
		t.Fatal("expected primary 1")
	}
	h.Succeeded()
	h.Close()
	f.clk.Advance(11 * time.Minute)
	n, h = f.pick(t)
	if n.Identity != p[1] {
		// Primaries are now [p1 (confirmed), p0, p2].
		t.Fatalf("confirmed guard not first: got %X", n.Identity)
	}
	h.Close()
	if q := f.m.Primary(); q[0] != p[1] || q[1] != p[0] || q[2] != p[2] {
		t.Fatalf("primaries %X, want confirmed %X first then %X %X", q, p[1], p[0], p[2])
	}
	byID := map[[20]byte]Info{}
	for _, g := range f.m.Guards() {
		byID[g.ID] = g
	}
	if byID[p[1]].ConfirmedIdx != 0 || byID[p[0]].ConfirmedIdx != -1 {
		t.Fatalf("confirmed_idx: p1 %d, p0 %d", byID[p[1]].ConfirmedIdx, byID[p[0]].ConfirmedIdx)
	}
	// A non-primary guard confirmed while primaries are down replaces
	// the last unconfirmed primary.
	for i := 0; i < 3; i++ {
		_, h := f.pick(t)
		h.Failed()
	}
	n, h = f.pick(t)
	if n.Identity != gs[3].ID || h.State() != UsableIfNoBetterGuard {
		t.Fatalf("got %X state %v, want sample[3] usable_if_no_better_guard", n.Identity, h.State())
	}
	h.Succeeded()
	if h.State() != Complete {
		t.Fatalf("guard that became primary by confirmation: state %v, want complete", h.State())
	}
	if q := f.m.Primary(); q[0] != p[1] || q[1] != gs[3].ID || q[2] != p[0] {
		t.Fatalf("primaries %X, want [%X %X %X]", q, p[1], gs[3].ID, p[0])
	}
	for _, g := range f.m.Guards() {
		byID[g.ID] = g
	}
	if byID[gs[3].ID].ConfirmedIdx != 1 {
		t.Fatalf("second confirmed guard has index %d", byID[gs[3].ID].ConfirmedIdx)
	}
	h.Close()
}

// confirmThree confirms the three primary guards and returns them.
func confirmThree(t *testing.T, f *fixture) [][20]byte {
	t.Helper()
	p := f.m.Primary()
	for i := 0; i < 3; i++ {
		for j := 0; j < i; j++ {
			_, h := f.pick(t)
			h.Failed()
		}
		n, h := f.pick(t)
		if n.Identity != p[i] {
			t.Fatalf("confirming: got %X want %X", n.Identity, p[i])
		}
		h.Succeeded()
		h.Close()
		f.clk.Advance(11 * time.Minute) // failures expire
	}
	if q := f.m.Primary(); fmt.Sprint(q) != fmt.Sprint(p) {
		t.Fatalf("primaries changed while confirming: %X -> %X", p, q)
	}
	return p
}

func TestWaitingForBetterGuard(t *testing.T) {
	f := newFixture(t, Options{})
	confirmThree(t, f)
	gs := f.m.Guards()
	// A circuit through a primary guard just succeeded: we are online.
	_, h := f.pick(t)
	h.Succeeded()
	h.Close()
	// Primaries 0 and 1 go down; 2 is untried: a non-primary circuit
	// waits while it may be reachable.
	for i := 0; i < 2; i++ {
		_, h := f.pick(t)
		h.Failed()
	}
	// Pretend the next pick's primary also fails; before that, launch an
	// exploratory circuit (only possible once all primaries are down).
	n, hp := f.pick(t)
	hp.Failed()
	n, h = f.pick(t)
	if n.Identity != gs[3].ID || h.State() != UsableIfNoBetterGuard {
		t.Fatalf("exploratory pick %X %v", n.Identity, h.State())
	}
	h.Succeeded()
	if h.State() != WaitingForBetterGuard && h.State() != Complete {
		t.Fatalf("state %v", h.State())
	}
	// All primaries are down and nothing better is pending: usable.
	if !h.Usable() {
		t.Fatalf("non-primary circuit not usable although all primaries are down (state %v)", h.State())
	}
	h.Close()
}

func TestWaitingBlockedByPrimaryRetry(t *testing.T) {
	f := newFixture(t, Options{})
	p := confirmThree(t, f)
	_, h := f.pick(t)
	h.Succeeded()
	h.Close()
	for i := 0; i < 3; i++ {
		_, h := f.pick(t)
		h.Failed()
	}
	n, h := f.pick(t)
	if isIn(n.Identity, p) || h.State() != UsableIfNoBetterGuard {
		t.Fatalf("got %X %v, want an exploratory non-primary pick", n.Identity, h.State())
	}
	// The circuit takes ten minutes; meanwhile the primaries became due
	// for retry. (Ten minutes since the last success is not yet "offline".)
	f.clk.Advance(10 * time.Minute)
	h.Succeeded()
	if st := h.State(); st != WaitingForBetterGuard {
		t.Fatalf("state %v, want waiting_for_better_guard", st)
	}
	if h.Usable() {
		t.Fatal("waiting circuit became usable while primary guards may be reachable")
	}
	n, h2 := f.pick(t)
	if !isIn(n.Identity, p) || h2.State() != UsableOnCompletion {
		t.Fatalf("after retry time: got %X %v, want a primary", n.Identity, h2.State())
	}
	h2.Close()
	// After the idle timeout the waiting circuit expires.
	f.clk.Advance(10*time.Minute + time.Second)
	if st := h.State(); st != Expired {
		t.Fatalf("state after the idle timeout: %v, want expired", st)
	}
	if h.Usable() {
		t.Fatal("expired circuit usable")
	}
	h.Close()
}

func TestWaitingBlockedByHigherPriority(t *testing.T) {
	f := newFixture(t, Options{})
	p := confirmThree(t, f)
	_, h := f.pick(t)
	h.Succeeded()
	h.Close()
	for i := 0; i < 3; i++ {
		_, h := f.pick(t)
		h.Failed()
	}
	gs := f.m.Guards()
	nA, hA := f.pick(t)
	nB, hB := f.pick(t)
	if nA.Identity != gs[3].ID || nB.Identity != gs[4].ID || isIn(nA.Identity, p) {
		t.Fatalf("exploratory picks %X %X, want sample[3] and sample[4]", nA.Identity, nB.Identity)
	}
	// A succeeds first and is confirmed (#3): nothing better is pending.
	hA.Succeeded()
	if !hA.Usable() {
		t.Fatalf("best exploratory circuit not usable (state %v)", hA.State())
	}
	// B is confirmed as #4; the complete circuit through A blocks it.
	hB.Succeeded()
	if hB.Usable() {
		t.Fatal("lower-priority circuit usable while a higher-priority one is complete")
	}
	hA.Close()
	if !hB.Usable() {
		t.Fatal("circuit still blocked after the better circuit closed")
	}
	hB.Close()
	// Both are confirmed now: A (#3) is tried first, B (#4) next. While
	// A's circuit is pending (up to the 15 s connect timeout) B waits.
	nA, hA = f.pick(t)
	nB, hB = f.pick(t)
	if nA.Identity != gs[3].ID || nB.Identity != gs[4].ID {
		t.Fatalf("confirmed picks %X %X", nA.Identity, nB.Identity)
	}
	hB.Succeeded()
	if hB.Usable() {
		t.Fatal("circuit usable while a higher-priority confirmed guard is pending")
	}
	f.clk.Advance(16 * time.Second)
	if !hB.Usable() {
		t.Fatal("circuit still blocked after the connect timeout")
	}
	hA.Succeeded()
	if !hA.Usable() {
		t.Fatal("higher-priority circuit not usable")
	}
	hA.Close()
	hB.Close()
}

func TestNetworkDownRetriesPrimaries(t *testing.T) {
	f := newFixture(t, Options{})
	p := confirmThree(t, f)
	// Offline for a while: every primary fails.
	f.clk.Advance(30 * time.Minute)
	for i := 0; i < 3; i++ {
		_, h := f.pick(t)
		h.Failed()
	}
	n, h := f.pick(t)
	if isIn(n.Identity, p) {
		t.Fatal("picked a failed primary")
	}
	// The network is back: the exploratory circuit succeeds; since the
	// last success was long ago, the primaries are retried.
	h.Succeeded()
	if h.Usable() {
		t.Fatal("exploratory circuit usable right after the network came back")
	}
	n2, h2 := f.pick(t)
	if n2.Identity != p[0] || h2.State() != UsableOnCompletion {
		t.Fatalf("after network-down recovery: picked %X %v, want primary 0", n2.Identity, h2.State())
	}
	h2.Succeeded()
	h2.Close()
	h.Close()
}

func TestPersistenceRoundTrip(t *testing.T) {
	f := newFixture(t, Options{})
	_, h := f.pick(t)
	h.Failed()
	_, h = f.pick(t)
	h.Succeeded() // confirms primary 1
	h.Close()
	before := f.m.Primary()
	beforeGuards := f.m.Guards()
	if f.store.writes == 0 {
		t.Fatal("nothing persisted")
	}
	data := f.store.files[DefaultStateName]
	if !strings.Contains(string(data), "Guard in=default rsa_id=") || !strings.Contains(string(data), " confirmed_idx=0") {
		t.Fatalf("state lacks C tor style Guard lines:\n%s", data)
	}
	m2 := New(Options{Now: f.clk.Now, Rand: seeded(99), Store: f.store})
	g2 := m2.Guards()
	if len(g2) != len(beforeGuards) {
		t.Fatalf("reloaded %d guards, had %d", len(g2), len(beforeGuards))
	}
	for i := range g2 {
		a, b := beforeGuards[i], g2[i]
		if a.ID != b.ID || a.Nickname != b.Nickname || !a.SampledOn.Equal(b.SampledOn) || a.ConfirmedIdx != b.ConfirmedIdx ||
			!a.ConfirmedOn.Equal(b.ConfirmedOn) || a.Listed != b.Listed {
			t.Fatalf("guard %d differs after reload:\n%+v\n%+v", i, a, b)
		}
	}
	m2.SetConsensus(f.d)
	if after := m2.Primary(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("primaries after reload %X, before %X", after, before)
	}
	if got := m2.Encode(); string(got) != string(data) {
		t.Fatalf("re-encoded state differs:\n%s\nvs\n%s", got, data)
	}
}

func TestUntrustedClockNotPersisted(t *testing.T) {
	trusted := false
	var mu sync.Mutex
	isTrusted := func() bool { mu.Lock(); defer mu.Unlock(); return trusted }
	f := newFixture(t, Options{Trusted: isTrusted})
	if f.store.writes != 0 {
		t.Fatal("state written while the clock is untrusted")
	}
	mu.Lock()
	trusted = true
	mu.Unlock()
	if err := f.m.Save(); err != nil {
		t.Fatal(err)
	}
	if f.store.writes != 1 {
		t.Fatalf("%d writes after the clock became trusted, want 1", f.store.writes)
	}
	if err := f.m.Save(); err != nil || f.store.writes != 1 {
		t.Fatalf("unchanged state rewritten (%d writes, err %v)", f.store.writes, err)
	}
}

func TestUnlistedRemoved(t *testing.T) {
	f := newFixture(t, Options{})
	p := f.m.Primary()
	gone := idx(p[0])
	// The relay loses its Guard flag.
	f.specs[gone].flags &^= dir.FlagGuard
	f.setConsensus(nil)
	var info Info
	for _, g := range f.m.Guards() {
		if g.ID == p[0] {
			info = g
		}
	}
	if info.ID != p[0] || info.Listed || info.Filtered || info.Primary {
		t.Fatalf("unlisted guard: %+v", info)
	}
	if q := f.m.Primary(); isIn(p[0], q) || q[0] != p[1] {
		t.Fatalf("primaries %X still include the unlisted guard or changed order", q)
	}
	if !strings.Contains(string(f.store.files[DefaultStateName]), "unlisted_since=") {
		t.Fatal("unlisted_since not persisted")
	}
	// 19 days later (unlisted_since is randomized up to 4 days back) it is
	// still sampled; after 20+4 days it is gone.
	f.clk.Advance(15 * 24 * time.Hour)
	f.setConsensus(nil)
	if !has(f.m.Guards(), p[0]) {
		t.Fatal("unlisted guard removed too early")
	}
	f.clk.Advance(9*24*time.Hour + time.Second)
	f.setConsensus(nil)
	if has(f.m.Guards(), p[0]) {
		t.Fatal("unlisted guard not removed after guard-remove-unlisted-guards-after-days")
	}
}

func TestRelistedKept(t *testing.T) {
	f := newFixture(t, Options{})
	p := f.m.Primary()
	saved := f.specs
	f.specs = append([]relaySpec(nil), saved...)
	f.specs[idx(p[0])].flags = 0
	f.setConsensus(nil)
	f.specs = saved
	f.setConsensus(nil)
	if q := f.m.Primary(); isIn(p[0], q) && q[0] == p[0] {
		// Re-listed guards are filtered again but the primary list is not
		// reshuffled back: p0 (unconfirmed) was replaced.
		t.Fatalf("unconfirmed guard regained its old primary place: %X", q)
	}
	for _, g := range f.m.Guards() {
		if g.ID == p[0] && (!g.Listed || !g.Filtered) {
			t.Fatalf("re-listed guard: %+v", g)
		}
	}
}

func has(gs []Info, id [20]byte) bool {
	for _, g := range gs {
		if g.ID == id {
			return true
		}
	}
	return false
}

func TestLifetimeExpiry(t *testing.T) {
	f := newFixture(t, Options{})
	// 100 days on (sampled_on is up to 12 days before the start):
	// nothing expires yet. Confirm the first primary now.
	f.clk.Advance(100 * 24 * time.Hour)
	f.setConsensus(nil)
	if n := len(f.m.Guards()); n != 20 {
		t.Fatalf("%d guards after 100 days", n)
	}
	n, h := f.pick(t)
	h.Succeeded()
	h.Close()
	confirmedID := n.Identity
	oldSample := f.m.Guards()
	// Day 133: every guard was sampled over 120 days ago. The unconfirmed
	// ones go; the confirmed one stays (confirmed less than 60 days ago).
	f.clk.Advance(33 * 24 * time.Hour)
	f.setConsensus(nil)
	gs := f.m.Guards()
	cutoff := f.clk.Now().Add(-120 * 24 * time.Hour)
	for _, g := range gs {
		if g.ID == confirmedID {
			if g.ConfirmedIdx != 0 || !g.Primary {
				t.Fatalf("confirmed guard lost its place: %+v", g)
			}
			continue
		}
		if g.SampledOn.Before(cutoff) {
			t.Fatalf("unconfirmed guard %X sampled %v kept past the lifetime", g.ID, g.SampledOn)
		}
	}
	if gs[0].ID != confirmedID || !gs[0].SampledOn.Equal(oldSample[indexOf(oldSample, confirmedID)].SampledOn) {
		t.Fatalf("confirmed guard not kept with its sampled_on: %+v", gs[0])
	}
	if len(gs) != 20 {
		t.Fatalf("sample not refilled: %d guards", len(gs))
	}
	// Day 193: confirmed over 60 days ago and sampled over 120: removed
	// (it may be sampled again, but as a new, unconfirmed guard).
	f.clk.Advance(60 * 24 * time.Hour)
	f.setConsensus(nil)
	for _, g := range f.m.Guards() {
		if g.ID == confirmedID && g.ConfirmedIdx >= 0 {
			t.Fatalf("expired confirmed guard kept: %+v", g)
		}
	}
}

func indexOf(gs []Info, id [20]byte) int {
	for i, g := range gs {
		if g.ID == id {
			return i
		}
	}
	return -1
}

func TestExcludeNodesKeepsGuards(t *testing.T) {
	f := newFixture(t, Options{})
	p := confirmThree(t, f)
	excluded := p[0]
	f.m.SetFilter(func(n *path.Node) bool { return n.Identity != excluded })
	q := f.m.Primary()
	if isIn(excluded, q) {
		t.Fatalf("excluded guard still primary: %X", q)
	}
	for i := 0; i < 20; i++ {
		n, h := f.pick(t)
		if n.Identity == excluded {
			t.Fatal("excluded guard picked")
		}
		h.Close()
	}
	var info Info
	for _, g := range f.m.Guards() {
		if g.ID == excluded {
			info = g
		}
	}
	if info.ID != excluded || info.Filtered || info.ConfirmedIdx != 0 {
		t.Fatalf("excluded guard forgotten or changed: %+v", info)
	}
	f.m.SetFilter(nil)
	if q := f.m.Primary(); fmt.Sprint(q) != fmt.Sprint(p) {
		t.Fatalf("after lifting ExcludeNodes primaries %X, want %X", q, p)
	}
}

func TestMissingDescriptor(t *testing.T) {
	f := &fixture{clk: newClock(), store: newMapStore(), specs: thirty()}
	f.m = New(Options{Now: f.clk.Now, Rand: seeded(1)})
	f.setConsensus(nil)
	p := f.m.Primary()
	// Same sample, but the first primary's microdescriptor is missing.
	f.specs[idx(p[0])].noMD = true
	f.setConsensus(nil)
	if q := f.m.Primary(); fmt.Sprint(q) != fmt.Sprint(p) {
		t.Fatalf("missing microdescriptor changed the primaries")
	}
	if md := f.m.MissingDescriptors(); len(md) != 1 || md[0][0] != p[0][0] {
		t.Fatalf("MissingDescriptors = %x", md)
	}
	n, h := f.pick(t)
	if n.Identity == p[0] || n.MD == nil {
		t.Fatal("circuit guard without a microdescriptor")
	}
	h.Close()
	n, h, err := f.m.Pick(ForDir, func(n *path.Node) bool { return n.Identity == p[0] })
	if err != nil || n.Identity != p[0] {
		t.Fatalf("directory guard without microdescriptor: %v", err)
	}
	h.Close()
}

func TestRestriction(t *testing.T) {
	f := newFixture(t, Options{})
	p := f.m.Primary()
	n, h, err := f.m.Pick(ForCircuit, func(n *path.Node) bool { return n.Identity != p[0] })
	if err != nil || n.Identity != p[1] {
		t.Fatalf("restricted pick: %v %v", n, err)
	}
	if h.State() != UsableOnCompletion {
		t.Fatalf("state %v", h.State())
	}
	h.Close()
}

func TestDisableGuards(t *testing.T) {
	clk := newClock()
	store := newMapStore()
	m := New(Options{Now: clk.Now, Rand: seeded(5), DisableGuards: true, Store: store,
		Filter: func(n *path.Node) bool { return idx(n.Identity) != 28 }})
	d := makeDir(clk.Now(), thirty(), nil)
	m.SetConsensus(d)
	seen := map[[20]byte]bool{}
	for i := 0; i < 300; i++ {
		n, h, err := m.Pick(ForCircuit, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !n.Flags.Has(dir.FlagGuard) || idx(n.Identity) == 28 {
			t.Fatalf("picked %d (flags %v)", idx(n.Identity), n.Flags)
		}
		seen[n.Identity] = true
		h.Succeeded()
		if !h.Usable() {
			t.Fatal("unguarded circuit not usable")
		}
		h.Close()
	}
	if len(seen) < 10 {
		t.Fatalf("UseEntryGuards 0 used only %d distinct first hops", len(seen))
	}
	if len(m.Guards()) != 0 || store.writes != 0 {
		t.Fatal("UseEntryGuards 0 sampled or persisted guards")
	}
}

func TestNoConsensus(t *testing.T) {
	m := New(Options{Rand: seeded(1)})
	if _, _, err := m.Pick(ForCircuit, nil); !errors.Is(err, ErrNoConsensus) {
		t.Fatalf("err = %v", err)
	}
}

func TestAllExhausted(t *testing.T) {
	clk := newClock()
	specs := thirty()[:4] // guards 0..3, relay... all four are guards
	m := New(Options{Now: clk.Now, Rand: seeded(1)})
	m.SetConsensus(makeDir(clk.Now(), specs, nil))
	if n := len(m.Guards()); n != 4 {
		t.Fatalf("%d guards sampled of 4", n)
	}
	for i := 0; i < 4; i++ {
		_, h, err := m.Pick(ForCircuit, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.Failed()
	}
	// Everything failed: all guards are marked for retry and the first
	// primary comes back.
	n, h, err := m.Pick(ForCircuit, nil)
	if err != nil {
		t.Fatalf("after exhausting the sample: %v", err)
	}
	if n.Identity != m.Primary()[0] {
		t.Fatalf("got %X, want primary 0", n.Identity)
	}
	h.Close()
}

func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, Options{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_, h, err := f.m.Pick(Usage(i%2), nil)
				if err != nil {
					t.Error(err)
					return
				}
				switch (i + w) % 3 {
				case 0:
					h.Failed()
				case 1:
					h.Succeeded()
					h.Usable()
				}
				h.Close()
				if i%50 == 0 {
					f.m.SetConsensus(f.d)
					f.m.Guards()
				}
			}
		}(w)
	}
	wg.Wait()
}
