package pow

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// fakeClock is a settable clock for Defense.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// seeds returns a Rand stream: the previous seed, the current seed, and a
// lifetime draw, then more seeds for rotations.
func seeds(t *testing.T, parts ...string) *bytes.Reader {
	var b []byte
	for _, p := range parts {
		b = append(b, unhex(t, p)...)
	}
	return bytes.NewReader(b)
}

const (
	seedA    = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	seed1    = "0101010101010101010101010101010101010101010101010101010101010101"
	seed2    = "0202020202020202020202020202020202020202020202020202020202020202"
	seed3    = "0303030303030303030303030303030303030303030303030303030303030303"
	lifetime = "0000000000000000"
)

func newTestDefense(t *testing.T, rate, burst int, rand *bytes.Reader) (*Defense, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	d, err := NewDefense(DefenseConfig{QueueRate: rate, QueueBurst: burst, Now: clk.now, Rand: rand})
	if err != nil {
		t.Fatal(err)
	}
	return d, clk
}

// TestDefenseVerify checks the top half against C tor's solution vectors
// (seed aa..aa): seed lookup by head, the replay cache, seed rotation
// keeping the previous seed, and forgetting the seed after that.
func TestDefenseVerify(t *testing.T) {
	d, clk := newTestDefense(t, 250, 2500, seeds(t, seed1, seedA, lifetime, seed2, lifetime, seed3, lifetime))
	p, changed := d.DescriptorParams()
	if !changed || p.Seed != [SeedLen]byte(unhex(t, seedA)) || p.SuggestedEffort != 0 {
		t.Fatalf("first params %x effort %d changed %v", p.Seed, p.SuggestedEffort, changed)
	}
	if want := clk.t.Add(seedRotateMin); !p.Expires.Equal(want) {
		t.Errorf("seed expires %v, want %v", p.Expires, want)
	}
	in, _, sol := slowVectors[4].parse(t) // effort 10
	if err := d.Verify(&sol, in.BlindedID); err != nil {
		t.Fatalf("valid solution: %v", err)
	}
	if err := d.Verify(&sol, in.BlindedID); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed solution: %v, want ErrReplay", err)
	}
	// Same nonce, another solution: still the same (nonce, seed) pair.
	_, _, other := slowVectors[8].parse(t)
	if err := d.Verify(&other, in.BlindedID); !errors.Is(err, ErrReplay) {
		t.Fatalf("same nonce again: %v, want ErrReplay", err)
	}
	bad := sol
	bad.Nonce[0] ^= 0x40
	if err := d.Verify(&bad, in.BlindedID); err == nil || errors.Is(err, ErrReplay) {
		t.Fatalf("corrupted solution: %v", err)
	}
	bad = sol
	bad.SeedHead[0] ^= 1
	if err := d.Verify(&bad, in.BlindedID); !errors.Is(err, ErrUnknownSeed) {
		t.Fatalf("other seed: %v, want ErrUnknownSeed", err)
	}

	// The seed expires: it becomes the previous seed and still verifies.
	clk.advance(seedRotateMin)
	if err := d.Housekeeping(); err != nil {
		t.Fatal(err)
	}
	if p, changed := d.DescriptorParams(); !changed || p.Seed != [SeedLen]byte(unhex(t, seed2)) {
		t.Fatalf("after rotation: seed %x changed %v", p.Seed, changed)
	}
	_, _, sol9 := slowVectors[9].parse(t) // effort 1000, another nonce
	wrongID := in.BlindedID
	wrongID[0] ^= 1
	if err := d.Verify(&sol9, wrongID); err == nil {
		t.Fatal("solution verified against another blinded key")
	}
	// The right key second in the list (a descriptor of another period).
	if err := d.Verify(&sol9, wrongID, in.BlindedID); err != nil {
		t.Fatalf("solution for the previous seed: %v", err)
	}
	if err := d.Verify(&sol, in.BlindedID); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay under the previous seed: %v", err)
	}
	// Rotated again: seed aa..aa is gone, and so are its replay entries.
	clk.advance(seedRotateMin)
	if err := d.Housekeeping(); err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(&sol, in.BlindedID); !errors.Is(err, ErrUnknownSeed) {
		t.Fatalf("solution for a forgotten seed: %v", err)
	}
	if n := len(d.replay); n != 0 {
		t.Errorf("%d replay entries left for a forgotten seed", n)
	}
	if s := d.Stats(); s.Verified != 2 || s.Rejected != 7 {
		t.Errorf("stats %+v, want 2 verified, 7 rejected", s)
	}
}

// launches records the order in which queued introductions are launched.
type launches []string

func (l *launches) add(name string) func() { return func() { *l = append(*l, name) } }

func drain(t *testing.T, d *Defense, inFlight int) {
	t.Helper()
	for {
		f, wait := d.Next(inFlight)
		if f == nil {
			if wait != 0 {
				t.Fatalf("Next asks to wait %v with no limit in the way", wait)
			}
			return
		}
		f()
	}
}

func TestDefenseQueueOrder(t *testing.T) {
	d, _ := newTestDefense(t, 0, 0, seeds(t, seed1, seedA, lifetime))
	var got launches
	d.Enqueue(5, got.add("5a"))
	d.Enqueue(10, got.add("10"))
	d.Enqueue(5, got.add("5b"))
	d.Enqueue(0, got.add("0"))
	if s := d.Stats(); s.Queued != 4 {
		t.Fatalf("queued %d", s.Queued)
	}
	drain(t, d, 0)
	if want := "10 5a 5b 0"; joined(got) != want {
		t.Fatalf("launch order %q, want %q", joined(got), want)
	}
}

func joined(l launches) string {
	var b bytes.Buffer
	for i, s := range l {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

// TestDefenseRateAndAge: the token bucket paces launches, an introduction
// that waited more than 15 s is discarded, and with 16 rendezvous in flight
// only those at the suggested effort go.
func TestDefenseRateAndAge(t *testing.T) {
	d, clk := newTestDefense(t, 2, 2, seeds(t, seed1, seedA, lifetime))
	var got launches
	for _, n := range []string{"a", "b", "c"} {
		d.Enqueue(1, got.add(n))
	}
	for range 2 {
		f, _ := d.Next(0)
		if f == nil {
			t.Fatal("burst of 2 refused")
		}
		f()
	}
	if f, wait := d.Next(0); f != nil || wait != retryDelay {
		t.Fatalf("third launch within the burst: wait %v", wait)
	}
	clk.advance(500 * time.Millisecond) // one token at 2 per second
	if f, _ := d.Next(0); f == nil {
		t.Fatal("no launch after the bucket refilled")
	} else {
		f()
	}
	if joined(got) != "a b c" {
		t.Fatalf("launched %q", joined(got))
	}

	d.Enqueue(1, got.add("old"))
	clk.advance(maxQueuedAge + time.Second)
	if f, wait := d.Next(0); f != nil || wait != 0 {
		t.Fatalf("an introduction queued %v ago was launched", maxQueuedAge+time.Second)
	}
	if s := d.Stats(); s.Trimmed != 1 || s.Queued != 0 {
		t.Fatalf("stats %+v after discarding an old introduction", s)
	}

	// Suggested effort 1 (raised by a trimmed request, below): with 16 in
	// flight an effort-0 request waits and an effort-1 one goes.
	d.mu.Lock()
	d.suggested = 1
	d.mu.Unlock()
	clk.advance(time.Second)
	d.Enqueue(0, got.add("cheap"))
	if f, wait := d.Next(maxCheapInFlight); f != nil || wait != retryDelay {
		t.Fatalf("cheap introduction launched with %d in flight", maxCheapInFlight)
	}
	d.Enqueue(1, got.add("paid"))
	if f, _ := d.Next(maxCheapInFlight); f == nil {
		t.Fatal("introduction at the suggested effort refused")
	} else {
		f()
	}
	if f, _ := d.Next(maxCheapInFlight - 1); f == nil {
		t.Fatal("cheap introduction refused with fewer in flight")
	} else {
		f()
	}
	if joined(got) != "a b c paid cheap" {
		t.Fatalf("launched %q", joined(got))
	}
}

// TestDefenseEffortAIMD: a full queue keeps its best half and the trimmed
// effort raises the suggestion; a quiet period lowers it by a third; the
// descriptor is updated only when the effort moves by more than 15%.
func TestDefenseEffortAIMD(t *testing.T) {
	d, clk := newTestDefense(t, 1, 1, seeds(t, seed1, seedA, lifetime))
	d.DescriptorParams()
	high := 1 + 1*maxRendTimeout*2
	var got launches
	for i := range high {
		d.Enqueue(uint32(i%7), got.add("x"))
	}
	s := d.Stats()
	if s.Queued != high/2 || s.Trimmed != uint64(high-high/2) {
		t.Fatalf("after filling to %d: %+v", high, s)
	}
	d.mu.Lock()
	lowest := d.queue[0].effort
	for _, r := range d.queue {
		lowest = min(lowest, r.effort)
	}
	maxTrimmed := d.maxTrimmed
	d.mu.Unlock()
	if lowest < maxTrimmed {
		t.Errorf("kept an effort-%d request but dropped one of effort %d", lowest, maxTrimmed)
	}

	clk.advance(UpdatePeriod)
	if err := d.Housekeeping(); err != nil {
		t.Fatal(err)
	}
	// Nothing handled: the suggestion rises by one.
	if e := d.Stats().SuggestedEffort; e != 1 {
		t.Fatalf("suggested effort %d after trimming, want 1", e)
	}
	if p, changed := d.DescriptorParams(); !changed || p.SuggestedEffort != 1 {
		t.Fatalf("descriptor effort %d changed %v", p.SuggestedEffort, changed)
	}

	// Handled requests of average effort 30 in a period that had a queue
	// whose top is at the suggestion: increase to the average.
	d.mu.Lock()
	d.queue = nil
	d.totalEffort, d.handled, d.hadQueue = 300, 10, true
	d.mu.Unlock()
	d.Enqueue(5, got.add("y"))
	d.mu.Lock()
	d.totalEffort = 300
	d.mu.Unlock()
	clk.advance(UpdatePeriod)
	d.Housekeeping()
	if e := d.Stats().SuggestedEffort; e != 30 {
		t.Fatalf("suggested effort %d, want the average 30", e)
	}
	if _, changed := d.DescriptorParams(); !changed {
		t.Fatal("1 -> 30 did not update the descriptor")
	}
	drain(t, d, 0)

	// Quiet periods: 30 -> 20 -> 13; the descriptor follows each (>15%).
	for _, want := range []uint32{20, 13} {
		clk.advance(UpdatePeriod)
		d.Housekeeping()
		if e := d.Stats().SuggestedEffort; e != want {
			t.Fatalf("suggested effort %d after a quiet period, want %d", e, want)
		}
		if p, changed := d.DescriptorParams(); !changed || p.SuggestedEffort != want {
			t.Fatalf("descriptor effort %d changed %v, want %d", p.SuggestedEffort, changed, want)
		}
	}
	// A change of less than 15% is not published.
	d.mu.Lock()
	d.suggested = 14
	d.mu.Unlock()
	if p, changed := d.DescriptorParams(); changed || p.SuggestedEffort != 13 {
		t.Fatalf("13 -> 14 published: %d %v", p.SuggestedEffort, changed)
	}
}

func TestDefenseReplayCacheBound(t *testing.T) {
	d, _ := newTestDefense(t, 0, 0, seeds(t, seed1, seedA, lifetime, seed2, lifetime, seed3, lifetime))
	d.mu.Lock()
	for i := range maxReplayEntries - 1 {
		var k replayKey
		k.nonce[0], k.nonce[1], k.nonce[2] = byte(i), byte(i>>8), 0xee
		k.head = [SeedHeadLen]byte(d.cur[:SeedHeadLen])
		d.replay[k] = struct{}{}
	}
	d.mu.Unlock()
	in, _, sol := slowVectors[4].parse(t)
	if err := d.Verify(&sol, in.BlindedID); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	n, cur := len(d.replay), d.cur
	d.mu.Unlock()
	if n != 0 || cur != [SeedLen]byte(unhex(t, seed3)) {
		t.Fatalf("full replay cache: %d entries left, seed %x", n, cur[:4])
	}
}
