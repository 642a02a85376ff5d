package vanguards

import (
	"bytes"
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

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// memStore is an in-memory Persister counting writes.
type memStore struct {
	mu     sync.Mutex
	data   map[string][]byte
	writes int
}

func (s *memStore) Read(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.data[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return bytes.Clone(b), nil
}

func (s *memStore) Write(name string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data == nil {
		s.data = map[string][]byte{}
	}
	s.data[name] = bytes.Clone(b)
	s.writes++
	return nil
}

// relaySpec describes a test relay: its identity byte and flags.
type relaySpec struct {
	id    byte
	flags dir.Flags
}

const good = dir.FlagRunning | dir.FlagValid | dir.FlagStable | dir.FlagFast

// testDir makes a directory valid at now (one hour) with the given
// relays, in identity order, every one with a microdescriptor, and the
// given consensus parameters.
func testDir(now time.Time, params map[string]int32, relays ...relaySpec) *path.Dir {
	c := &dir.Consensus{ValidAfter: now.Add(-time.Minute), FreshUntil: now.Add(time.Hour), ValidUntil: now.Add(3 * time.Hour), Params: params}
	mds := map[[32]byte]*dir.Microdesc{}
	for _, s := range relays {
		r := dir.Relay{Bandwidth: 1000, ORPort: 9000 + uint16(s.id), Flags: s.flags, Nickname: fmt.Sprintf("r%d", s.id)}
		r.Identity[0] = s.id
		r.Microdesc[0] = s.id
		r.Addr = [4]byte{127, 0, 0, 1}
		c.Relays = append(c.Relays, r)
		mds[r.Microdesc] = &dir.Microdesc{Digest: r.Microdesc, HasNtorKey: true}
	}
	return path.NewDir(c, mds)
}

// goodRelays returns n relays with every flag, ids 1..n.
func goodRelays(n int) []relaySpec {
	out := make([]relaySpec, n)
	for i := range out {
		out[i] = relaySpec{id: byte(i + 1), flags: good}
	}
	return out
}

func newTest(t *testing.T, st *memStore, c *clock, seed uint64) *Manager {
	t.Helper()
	o := Options{Now: c.now, Rand: rand.New(rand.NewPCG(seed, 1))}
	if st != nil {
		o.Store = st
	}
	return New(o)
}

func ids(m *Manager) map[[20]byte]time.Time {
	out := map[[20]byte]time.Time{}
	for _, g := range m.Guards() {
		out[g.ID] = g.Expires
	}
	return out
}

func TestSetSize(t *testing.T) {
	c := &clock{t: t0}
	for _, tc := range []struct {
		param  map[string]int32
		relays int
		want   int
	}{
		{nil, 9, DefaultNumber},
		{map[string]int32{"guard-hs-l2-number": 2}, 9, 2},
		{map[string]int32{"guard-hs-l2-number": 0}, 9, 1},    // clamped to 1
		{map[string]int32{"guard-hs-l2-number": 50}, 40, 19}, // clamped to 19
		{nil, 3, 3}, // not enough relays
	} {
		m := newTest(t, nil, c, 1)
		m.SetConsensus(testDir(c.now(), tc.param, goodRelays(tc.relays)...))
		got := m.Guards()
		if len(got) != tc.want {
			t.Errorf("params %v, %d relays: %d layer-2 guards, want %d", tc.param, tc.relays, len(got), tc.want)
		}
		seen := map[[20]byte]bool{}
		for _, g := range got {
			if seen[g.ID] {
				t.Errorf("params %v: %X chosen twice", tc.param, g.ID[0])
			}
			seen[g.ID] = true
		}
	}
}

func TestPicksOnlyStableUsableRelays(t *testing.T) {
	c := &clock{t: t0}
	relays := []relaySpec{
		{1, good &^ dir.FlagStable},
		{2, good &^ dir.FlagRunning},
		{3, good &^ dir.FlagValid},
		{4, good}, {5, good}, {6, good},
		{7, good &^ dir.FlagFast}, // C tor picks without Fast (CRN_NEED_UPTIME only)
		{8, good},                 // excluded by the configuration
	}
	for seed := range uint64(20) {
		m := New(Options{Now: c.now, Rand: rand.New(rand.NewPCG(seed, 2)),
			Exclude: func(n *path.Node) bool { return n.Identity[0] == 8 }})
		m.SetConsensus(testDir(c.now(), nil, relays...))
		for _, g := range m.Guards() {
			switch g.ID[0] {
			case 1, 2, 3, 8:
				t.Fatalf("seed %d: relay %d chosen as a layer-2 guard", seed, g.ID[0])
			}
		}
	}
	// TestingTorNetwork: Stable is not needed.
	m := New(Options{Now: c.now, RelaxFlags: true})
	m.SetConsensus(testDir(c.now(), map[string]int32{"guard-hs-l2-number": 3}, relaySpec{1, dir.FlagRunning | dir.FlagValid},
		relaySpec{2, dir.FlagRunning | dir.FlagValid}, relaySpec{3, dir.FlagRunning | dir.FlagValid}))
	if n := len(m.Guards()); n != 3 {
		t.Fatalf("relaxed flags: %d layer-2 guards, want 3", n)
	}
}

func TestLifetimes(t *testing.T) {
	c := &clock{t: t0}
	var sum time.Duration
	n := 0
	for seed := range uint64(300) {
		m := newTest(t, nil, c, seed)
		m.SetConsensus(testDir(c.now(), nil, goodRelays(9)...))
		for _, g := range m.Guards() {
			life := g.Expires.Sub(c.now())
			if life < DefaultMinLifetime || life >= DefaultMaxLifetime {
				t.Fatalf("lifetime %v outside [1 day, 12 days)", life)
			}
			if life%time.Second != 0 {
				t.Fatalf("lifetime %v not in whole seconds", life)
			}
			sum += life
			n++
		}
	}
	// Uniform over [1, 12) days: mean 6.5 days; 1200 draws put the mean
	// within a few hours of it.
	mean := sum / time.Duration(n)
	if mean < 6*24*time.Hour || mean > 7*24*time.Hour {
		t.Fatalf("mean lifetime %v, want about 6.5 days", mean)
	}

	// Consensus parameters set the bounds (seconds).
	m := newTest(t, nil, c, 7)
	m.SetConsensus(testDir(c.now(), map[string]int32{"guard-hs-l2-lifetime-min": 100, "guard-hs-l2-lifetime-max": 200}, goodRelays(9)...))
	for _, g := range m.Guards() {
		if life := g.Expires.Sub(c.now()); life < 100*time.Second || life >= 200*time.Second {
			t.Fatalf("lifetime %v outside [100 s, 200 s)", life)
		}
	}
	// min >= max gives min.
	m = newTest(t, nil, c, 7)
	m.SetConsensus(testDir(c.now(), map[string]int32{"guard-hs-l2-lifetime-min": 300, "guard-hs-l2-lifetime-max": 200}, goodRelays(9)...))
	for _, g := range m.Guards() {
		if life := g.Expires.Sub(c.now()); life != 300*time.Second {
			t.Fatalf("lifetime %v, want 300 s", life)
		}
	}
}

func TestExpiryReplacesOnlyExpired(t *testing.T) {
	c := &clock{t: t0}
	m := newTest(t, nil, c, 3)
	relays := goodRelays(30)
	m.SetConsensus(testDir(c.now(), nil, relays...))
	before := m.Guards()
	// Advance to the first expiry exactly: that guard goes (C tor:
	// expire_on_date <= now), the others stay.
	first := before[0]
	for _, g := range before {
		if g.Expires.Before(first.Expires) {
			first = g
		}
	}
	c.add(first.Expires.Sub(c.now()))
	d := testDir(c.now(), nil, relays...)
	if _, err := m.Pick(d, nil); err != nil {
		t.Fatal(err)
	}
	after := ids(m)
	if len(after) != DefaultNumber {
		t.Fatalf("%d layer-2 guards after an expiry, want %d", len(after), DefaultNumber)
	}
	if _, ok := after[first.ID]; ok && after[first.ID].Equal(first.Expires) {
		t.Fatalf("expired guard %X still in the set", first.ID[0])
	}
	for _, g := range before {
		if g.ID == first.ID {
			continue
		}
		if exp, ok := after[g.ID]; !ok || !exp.Equal(g.Expires) {
			t.Fatalf("unexpired guard %X replaced or changed", g.ID[0])
		}
	}
	// 13 days on, every original guard has expired.
	c.add(13 * 24 * time.Hour)
	m.SetConsensus(testDir(c.now(), nil, relays...))
	for _, g := range m.Guards() {
		if !g.Expires.After(c.now()) {
			t.Fatalf("guard %X kept past its expiry", g.ID[0])
		}
		for _, b := range before {
			if b.ID == g.ID && b.Expires.Equal(g.Expires) {
				t.Fatalf("guard %X kept past its expiry", g.ID[0])
			}
		}
	}
}

func TestReplacementWhenUnlistedOrUnsuitable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(spec *relaySpec) bool // false: drop the relay
		relax  bool
		kept   bool
	}{
		{"leaves the consensus", func(*relaySpec) bool { return false }, false, false},
		{"loses Stable", func(s *relaySpec) bool { s.flags &^= dir.FlagStable; return true }, false, false},
		{"loses Fast", func(s *relaySpec) bool { s.flags &^= dir.FlagFast; return true }, false, false},
		{"loses Stable, relaxed", func(s *relaySpec) bool { s.flags &^= dir.FlagStable; return true }, true, true},
		{"leaves the consensus, relaxed", func(*relaySpec) bool { return false }, true, false},
		{"loses Guard (irrelevant)", func(s *relaySpec) bool { s.flags &^= dir.FlagGuard; return true }, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: t0}
			st := &memStore{}
			m := New(Options{Now: c.now, Rand: rand.New(rand.NewPCG(5, 5)), Store: st, RelaxFlags: tc.relax})
			relays := goodRelays(12)
			m.SetConsensus(testDir(c.now(), nil, relays...))
			before := m.Guards()
			victim := before[1].ID
			var next []relaySpec
			for _, r := range relays {
				if r.id == victim[0] && !tc.change(&r) {
					continue
				}
				next = append(next, r)
			}
			writes := st.writes
			c.add(time.Hour)
			m.SetConsensus(testDir(c.now(), nil, next...))
			after := ids(m)
			if _, ok := after[victim]; ok != tc.kept {
				t.Fatalf("victim kept = %v, want %v", ok, tc.kept)
			}
			if len(after) != DefaultNumber {
				t.Fatalf("%d layer-2 guards, want %d", len(after), DefaultNumber)
			}
			for _, g := range before {
				if g.ID == victim {
					continue
				}
				if exp, ok := after[g.ID]; !ok || !exp.Equal(g.Expires) {
					t.Fatalf("guard %X replaced along with the victim", g.ID[0])
				}
			}
			if !tc.kept && st.writes == writes {
				t.Fatal("replacement not persisted")
			}
			if tc.kept && st.writes != writes {
				t.Fatal("state written without a change")
			}
		})
	}
}

func TestPersistenceRoundTrip(t *testing.T) {
	c := &clock{t: t0}
	st := &memStore{}
	relays := goodRelays(20)
	m := newTest(t, st, c, 11)
	m.SetConsensus(testDir(c.now(), nil, relays...))
	want := m.Guards()
	if st.writes != 1 {
		t.Fatalf("%d writes after choosing the set, want 1", st.writes)
	}
	data, _ := st.Read(DefaultStateName)
	if !bytes.Equal(data, m.Encode()) {
		t.Fatalf("stored state differs from Encode:\n%s\n%s", data, m.Encode())
	}
	if n := strings.Count(string(data), "\nLayer2Guard rsa_id="); n != DefaultNumber {
		t.Fatalf("state has %d Layer2Guard lines:\n%s", n, data)
	}

	// A restart a day later, with another seed: the same set.
	c.add(24*time.Hour - time.Second)
	m2 := newTest(t, st, c, 99)
	if got := m2.Guards(); len(got) != len(want) {
		t.Fatalf("loaded %d guards, want %d", len(got), len(want))
	}
	m2.SetConsensus(testDir(c.now(), nil, relays...))
	got := m2.Guards()
	for i := range want {
		if got[i].ID != want[i].ID || !got[i].Expires.Equal(want[i].Expires) {
			t.Fatalf("guard %d after reload: %X %v, want %X %v", i, got[i].ID[0], got[i].Expires, want[i].ID[0], want[i].Expires)
		}
	}
	if st.writes != 1 {
		t.Fatalf("reload with nothing changed wrote the state (%d writes)", st.writes)
	}
}

func TestStateDamage(t *testing.T) {
	c := &clock{t: t0}
	st := &memStore{}
	id := strings.Repeat("01", 20)
	exp := t0.Add(48 * time.Hour).Format(timeLayout)
	st.Write(DefaultStateName, []byte(strings.Join([]string{
		"# comment",
		"",
		"Layer2Guard rsa_id=" + id + " expires=" + exp + " future=1",
		"Layer2Guard rsa_id=" + id + " expires=" + exp, // duplicate
		"Layer2Guard rsa_id=zz expires=" + exp,
		"Layer2Guard rsa_id=" + strings.Repeat("02", 20) + " expires=tomorrow",
		"Layer2Guard rsa_id=" + strings.Repeat("03", 20),
		"Guard in=default rsa_id=" + strings.Repeat("04", 20),
		"Layer2Guard noequals",
		"Layer2Guard rsa_id=05" + strings.Repeat("00", 19) + " expires=" + t0.Add(-time.Hour).Format(timeLayout),       // expired
		"Layer2Guard rsa_id=06" + strings.Repeat("00", 19) + " expires=" + t0.Add(400*24*time.Hour).Format(timeLayout), // far future
	}, "\n")))
	guards, problems := parseState(st.data[DefaultStateName])
	if len(guards) != 3 || len(problems) != 6 {
		t.Fatalf("%d guards, %d problems (%v), want 3 and 6", len(guards), len(problems), problems)
	}
	var le *LineError
	if !errors.As(problems[0], &le) || le.Line != 4 {
		t.Fatalf("first problem %v, want line 4", problems[0])
	}
	m := newTest(t, st, c, 1)
	m.SetConsensus(testDir(c.now(), nil, goodRelays(9)...))
	got := ids(m)
	if exp, ok := got[[20]byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}]; ok || !exp.IsZero() {
		// Relay 0x0101... is not in the directory: it is "missing".
		t.Fatalf("unlisted guard kept")
	}
	for id, exp := range got {
		if exp.Equal(t0.Add(-time.Hour)) || exp.Equal(t0.Add(400*24*time.Hour)) {
			t.Fatalf("expired or far-future guard %X kept", id)
		}
	}
	if len(got) != DefaultNumber {
		t.Fatalf("%d guards, want %d", len(got), DefaultNumber)
	}
}

func TestFarFutureBelievedWhileClockDoubtful(t *testing.T) {
	// The consensus is not usable at now (a router clock in 1970): dates
	// far ahead are kept until the clock is right.
	c := &clock{t: time.Date(1970, 1, 1, 0, 0, 10, 0, time.UTC)}
	st := &memStore{}
	st.Write(DefaultStateName, encodeState([]l2{{id: [20]byte{1}, expires: t0.Add(24 * time.Hour)}}))
	m := newTest(t, st, c, 1)
	m.SetConsensus(testDir(t0, nil, goodRelays(9)...))
	if _, ok := ids(m)[[20]byte{1}]; !ok {
		t.Fatal("guard dropped while the clock is not trusted")
	}
}

func TestPickUniformAmongUsable(t *testing.T) {
	c := &clock{t: t0}
	m := newTest(t, nil, c, 21)
	d := testDir(c.now(), nil, goodRelays(9)...)
	m.SetConsensus(d)
	set := m.Guards()
	if len(set) != 4 {
		t.Fatalf("%d guards", len(set))
	}
	banned := set[0].ID
	counts := map[[20]byte]int{}
	const n = 3000
	for range n {
		g, err := m.Pick(d, func(n *path.Node) bool { return n.Identity != banned })
		if err != nil {
			t.Fatal(err)
		}
		if !m.Contains(g.Identity) {
			t.Fatalf("picked %X, not a layer-2 guard", g.Identity[0])
		}
		counts[g.Identity]++
	}
	if counts[banned] != 0 {
		t.Fatalf("unusable guard picked %d times", counts[banned])
	}
	for _, g := range set[1:] {
		// 1000 expected each; binomial sd ~26.
		if c := counts[g.ID]; c < 850 || c > 1150 {
			t.Fatalf("guard %X picked %d times of %d, want about %d", g.ID[0], c, n, n/3)
		}
	}
	_, err := m.Pick(d, func(*path.Node) bool { return false })
	if !errors.Is(err, ErrNoLayer2Guard) {
		t.Fatalf("nothing usable: err = %v", err)
	}
	// A guard no longer Running in the directory of the circuit is
	// skipped.
	var relays []relaySpec
	for _, r := range goodRelays(9) {
		if r.id == set[1].ID[0] {
			r.flags &^= dir.FlagRunning
		}
		relays = append(relays, r)
	}
	d2 := testDir(c.now(), nil, relays...)
	for range 200 {
		g, err := m.Pick(d2, nil)
		if err != nil {
			t.Fatal(err)
		}
		if g.Identity == set[1].ID {
			t.Fatal("non-Running guard picked")
		}
	}
}

func TestPickOlderDirectoryKeepsNewest(t *testing.T) {
	c := &clock{t: t0}
	m := newTest(t, nil, c, 4)
	relays := goodRelays(9)
	m.SetConsensus(testDir(c.now(), nil, relays...))
	victim := m.Guards()[0].ID
	var next []relaySpec
	for _, r := range relays {
		if r.id != victim[0] {
			next = append(next, r)
		}
	}
	old := testDir(c.now(), nil, relays...)
	c.add(time.Hour)
	m.SetConsensus(testDir(c.now(), nil, next...))
	if m.Contains(victim) {
		t.Fatal("unlisted guard kept")
	}
	// A circuit built from the older directory does not bring it back.
	if _, err := m.Pick(old, nil); err != nil {
		t.Fatal(err)
	}
	if m.Contains(victim) {
		t.Fatal("older directory reinstated an unlisted guard")
	}
}

func TestPurge(t *testing.T) {
	c := &clock{t: t0}
	st := &memStore{}
	m := newTest(t, st, c, 8)
	m.SetConsensus(testDir(c.now(), nil, goodRelays(60)...))
	before := ids(m)
	writes := st.writes
	m.Purge()
	after := ids(m)
	if len(after) != DefaultNumber {
		t.Fatalf("%d guards after Purge", len(after))
	}
	same := 0
	for id := range after {
		if _, ok := before[id]; ok {
			same++
		}
	}
	// Four new draws among 60: keeping all four is (4/60)^4-unlikely.
	if same == DefaultNumber {
		t.Fatal("Purge kept the same set")
	}
	if st.writes != writes+1 {
		t.Fatalf("Purge wrote %d times, want 1", st.writes-writes)
	}
	// Before any directory: Purge empties the set.
	m2 := New(Options{Now: c.now})
	m2.Purge()
	if len(m2.Guards()) != 0 {
		t.Fatal("guards without a directory")
	}
}

func TestEnabled(t *testing.T) {
	if !Enabled(testDir(t0, nil)) || !Enabled(nil) {
		t.Fatal("disabled by default")
	}
	if Enabled(testDir(t0, map[string]int32{"vanguards-lite-enabled": 0})) {
		t.Fatal("vanguards-lite-enabled=0 ignored")
	}
	if !Enabled(testDir(t0, map[string]int32{"vanguards-lite-enabled": 5})) {
		t.Fatal("vanguards-lite-enabled=5 (clamped to 1) disables")
	}
}

func TestConcurrentUse(t *testing.T) {
	c := &clock{t: t0}
	m := newTest(t, &memStore{}, c, 9)
	d := testDir(c.now(), nil, goodRelays(9)...)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				switch i {
				case 0:
					m.SetConsensus(d)
				case 1:
					m.Purge()
				default:
					if _, err := m.Pick(d, nil); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := len(m.Guards()); n != DefaultNumber {
		t.Fatalf("%d guards", n)
	}
}
