package pow

import (
	"container/heap"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"time"

	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
)

// Service-side constants of C tor (hs_pow.h, hs_service.h, hs_common.h,
// hs_circuit.c).
const (
	// UpdatePeriod is HS_UPDATE_PERIOD: how often the suggested effort is
	// recomputed.
	UpdatePeriod = 300 * time.Second
	// seedRotateMin and seedRotateMax bound a seed's lifetime
	// (HS_SERVICE_POW_SEED_ROTATE_TIME_MIN/MAX: RAND_TIME(now+7200, 900)).
	seedRotateMin = (7200 - 900) * time.Second
	seedRotateMax = 7200 * time.Second
	// maxRendTimeout is MAX_REND_TIMEOUT; an introduction that waited
	// half of it is discarded rather than answered.
	maxRendTimeout = 30
	maxQueuedAge   = maxRendTimeout / 2 * time.Second
	// maxCheapInFlight is MAX_CHEAP_REND_CIRCUITS_IN_PROGRESS: with this
	// many rendezvous circuits in progress, only introductions at the
	// suggested effort or above are launched.
	maxCheapInFlight = 16
	// retryDelay is how long the dequeuer waits when it may not launch.
	retryDelay = 100 * time.Millisecond
	// maxReplayEntries bounds the replay cache of one seed: when it is
	// full the seeds are rotated early (which forgets the older seed's
	// entries), so a flood of solutions cannot grow memory without bound.
	maxReplayEntries = 1 << 16
)

// DefenseConfig is a service's PoW configuration: C tor's
// HiddenServicePoWQueueRate and HiddenServicePoWQueueBurst (defaults 250
// and 2500). A Rate of 0, or a Burst below Rate, disables the dequeue rate
// limit, as in C tor.
type DefenseConfig struct {
	QueueRate  int
	QueueBurst int
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// Params are the pow-params of the service's descriptor.
type Params struct {
	Seed            [SeedLen]byte
	SuggestedEffort uint32
	Expires         time.Time
}

// Stats are the defense's counters for metrics and logs.
type Stats struct {
	SuggestedEffort uint32
	Queued          int // introductions waiting in the priority queue
	Verified        uint64
	Rejected        uint64 // failed verification or replayed
	Trimmed         uint64 // discarded for age or from a full queue
}

// Errors of Defense.Verify.
var (
	// ErrReplay means the (nonce, seed) pair was used before.
	ErrReplay = errors.New("pow: solution replayed")
	// ErrUnknownSeed means the solution names neither the current nor the
	// previous seed.
	ErrUnknownSeed = errors.New("pow: solution for an unknown seed")
)

// Defense is an onion service's proof-of-work state (C tor's
// hs_pow_service_state_t): its seeds, the replay cache, the priority queue
// of verified introductions ordered by effort, the dequeue rate limit and
// the AIMD estimate of the suggested effort. It is safe for concurrent use.
type Defense struct {
	now  func() time.Time
	rand io.Reader

	mu        lock.Mutex
	verifier  Verifier
	cur, prev [SeedLen]byte
	expires   time.Time
	replay    map[replayKey]struct{}

	queue      pending
	seq        uint64
	low, high  int
	rate       float64 // tokens per second; 0: no bucket
	burst      float64
	tokens     float64
	lastRefill time.Time

	suggested   uint32
	totalEffort uint64
	handled     uint64
	maxTrimmed  uint32
	hadQueue    bool
	nextUpdate  time.Time

	published Params // the pow-params last handed to a descriptor
	stats     Stats
}

type replayKey struct {
	nonce [NonceLen]byte
	head  [SeedHeadLen]byte
}

// NewDefense starts a service's defenses: two random seeds, suggested
// effort 0, the first effort update UpdatePeriod from now.
func NewDefense(cfg DefenseConfig) (*Defense, error) {
	d := &Defense{now: cfg.Now, rand: cfg.Rand, replay: make(map[replayKey]struct{}), low: 16, high: 16384}
	if d.now == nil {
		d.now = time.Now
	}
	if d.rand == nil {
		d.rand = rand.Reader
	}
	if cfg.QueueRate > 0 && cfg.QueueBurst >= cfg.QueueRate {
		d.rate, d.burst, d.tokens = float64(cfg.QueueRate), float64(cfg.QueueBurst), float64(cfg.QueueBurst)
		d.low = max(8, cfg.QueueRate/4)
		d.high = cfg.QueueBurst + cfg.QueueRate*maxRendTimeout*2
	}
	now := d.now()
	d.lastRefill, d.nextUpdate = now, now.Add(UpdatePeriod)
	// Both seeds are random, so that the previous one is not predictable
	// and its replay entries are told apart (initialize_pow_defenses).
	if _, err := io.ReadFull(d.rand, d.prev[:]); err != nil {
		return nil, errfmt.Errorf("pow: seed: %w", err)
	}
	if err := d.newSeedLocked(now); err != nil {
		return nil, err
	}
	return d, nil
}

// rotateLocked makes the current seed the previous one, forgets the
// replay entries of the seed it drops, and draws a new current seed
// (rotate_pow_seeds).
func (d *Defense) rotateLocked(now time.Time) error {
	old := [SeedHeadLen]byte(d.prev[:SeedHeadLen])
	for k := range d.replay {
		if k.head == old {
			delete(d.replay, k)
		}
	}
	d.prev = d.cur
	return d.newSeedLocked(now)
}

// newSeedLocked draws a current seed whose head differs from the
// previous seed's, and its expiry: RAND_TIME(now+7200, 900).
func (d *Defense) newSeedLocked(now time.Time) error {
	for {
		if _, err := io.ReadFull(d.rand, d.cur[:]); err != nil {
			return errfmt.Errorf("pow: seed: %w", err)
		}
		if [SeedHeadLen]byte(d.cur[:SeedHeadLen]) != [SeedHeadLen]byte(d.prev[:SeedHeadLen]) {
			break
		}
	}
	var r [8]byte
	if _, err := io.ReadFull(d.rand, r[:]); err != nil {
		return errfmt.Errorf("pow: seed lifetime: %w", err)
	}
	span := uint64(seedRotateMax - seedRotateMin)
	d.expires = now.Add(seedRotateMin + time.Duration(binary.LittleEndian.Uint64(r[:])%span)).Truncate(time.Second)
	return nil
}

// Verify checks a solution from an INTRODUCE2 (hs_pow_verify): the seed
// is picked by its head among the current and previous seeds, a (nonce,
// seed) pair is accepted once, then the effort and Equi-X checks of
// Verifier.Verify against the service's blinded key — each of ids in
// turn, for a service whose introduction points serve the descriptors of
// several time periods.
func (d *Defense) Verify(sol *Solution, ids ...[IDLen]byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.verifyLocked(sol, ids)
	if err != nil {
		d.stats.Rejected++
		return err
	}
	d.stats.Verified++
	return nil
}

func (d *Defense) verifyLocked(sol *Solution, ids [][IDLen]byte) error {
	var seed *[SeedLen]byte
	switch sol.SeedHead {
	case [SeedHeadLen]byte(d.cur[:SeedHeadLen]):
		seed = &d.cur
	case [SeedHeadLen]byte(d.prev[:SeedHeadLen]):
		seed = &d.prev
	default:
		return ErrUnknownSeed
	}
	key := replayKey{sol.Nonce, sol.SeedHead}
	if _, ok := d.replay[key]; ok {
		return ErrReplay
	}
	err := errors.New("pow: no blinded key to verify against")
	for i := range ids {
		if err = d.verifier.Verify(&ids[i], seed, sol); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	d.replay[key] = struct{}{}
	if len(d.replay) >= maxReplayEntries {
		// Rotating twice forgets every entry; clients holding the old
		// seeds are refused until they fetch the new descriptor.
		for range 2 {
			if err := d.rotateLocked(d.now()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Enqueue adds a verified introduction with the given effort (0 for one
// without a solution) to the priority queue; launch is called by Next
// when its turn comes. A queue that reaches its high level keeps its best
// half (trim_rend_pqueue).
func (d *Defense) Enqueue(effort uint32, launch func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.seq++
	heap.Push(&d.queue, &request{effort: effort, seq: d.seq, enqueued: now, launch: launch})
	d.totalEffort += uint64(effort)
	if len(d.queue) >= d.high {
		d.trimLocked(now)
	}
}

// trimLocked keeps the best high/2 introductions that are not too old and
// drops the rest, remembering the largest effort it dropped.
func (d *Defense) trimLocked(now time.Time) {
	var keep pending
	for len(d.queue) > 0 && len(keep) < d.high/2 {
		r := heap.Pop(&d.queue).(*request)
		if now.Sub(r.enqueued) > maxQueuedAge {
			d.drop(r)
			continue
		}
		keep = append(keep, r)
	}
	for _, r := range d.queue {
		d.drop(r)
	}
	d.queue = keep
	heap.Init(&d.queue)
}

func (d *Defense) drop(r *request) {
	d.maxTrimmed = max(d.maxTrimmed, r.effort)
	d.stats.Trimmed++
}

// Next takes the introduction to answer now (handle_rend_pqueue_cb): the
// highest effort, the oldest among equals, skipping those that waited too
// long. With inFlight rendezvous circuits already being built it launches
// only introductions at the suggested effort or above once 16 are in
// flight, and no faster than the queue rate. It returns the launch
// function, or nil and how long to wait before asking again (0 when the
// queue is empty).
func (d *Defense) Next(inFlight int) (launch func(), wait time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for len(d.queue) > 0 {
		if inFlight >= maxCheapInFlight && d.queue[0].effort < d.suggested {
			return nil, retryDelay
		}
		if d.rate > 0 {
			d.tokens = min(d.burst, d.tokens+now.Sub(d.lastRefill).Seconds()*d.rate)
			d.lastRefill = now
			if d.tokens < 1 {
				return nil, retryDelay
			}
			d.tokens--
		}
		r := heap.Pop(&d.queue).(*request)
		if now.Sub(r.enqueued) > maxQueuedAge {
			d.stats.Trimmed++
			continue
		}
		d.handled++
		if len(d.queue) >= d.low {
			d.hadQueue = true
		}
		return r.launch, 0
	}
	return nil, 0
}

// Housekeeping rotates an expired seed and, every UpdatePeriod, updates
// the suggested effort by C tor's AIMD rules (update_suggested_effort).
// Call it at least once a minute.
func (d *Defense) Housekeeping() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if !now.Before(d.expires) {
		if err := d.rotateLocked(now); err != nil {
			return err
		}
	}
	if now.Before(d.nextUpdate) {
		return nil
	}
	switch {
	case d.maxTrimmed > d.suggested,
		d.hadQueue && len(d.queue) > 0 && d.queue[0].effort >= d.suggested:
		// Requests that follow our advice are dropped, or wait: increase.
		avg := d.suggested + 1
		if d.handled > 0 {
			avg = uint32(min(d.totalEffort/d.handled, 1<<32-1))
		}
		if d.suggested < 1<<32-1 {
			d.suggested = max(d.suggested+1, avg)
		}
	case !d.hadQueue && len(d.queue) < d.low:
		d.suggested = 2 * d.suggested / 3
	}
	d.totalEffort, d.handled, d.maxTrimmed, d.hadQueue = 0, 0, 0, false
	d.nextUpdate = now.Add(UpdatePeriod)
	return nil
}

// DescriptorParams returns the pow-params for the service's descriptor
// and whether they differ enough from those it returned last time to
// upload new descriptors (update_all_descriptors_pow_params): a new seed,
// or a suggested effort that moved by more than 15%.
func (d *Defense) DescriptorParams() (p Params, changed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.published.Expires.Equal(d.expires) {
		d.published = Params{Seed: d.cur, SuggestedEffort: d.suggested, Expires: d.expires}
		return d.published, true
	}
	prev := float64(d.published.SuggestedEffort)
	if s := float64(d.suggested); s < prev*0.85 || prev*1.15 < s {
		d.published.SuggestedEffort = d.suggested
		changed = true
	}
	return d.published, changed
}

// Stats returns the defense's counters.
func (d *Defense) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.SuggestedEffort, s.Queued = d.suggested, len(d.queue)
	return s
}

// request is a queued introduction.
type request struct {
	effort   uint32
	seq      uint64 // enqueue order: older first among equal efforts
	enqueued time.Time
	launch   func()
}

// pending is a heap of requests, highest effort first.
type pending []*request

func (q pending) Len() int { return len(q) }
func (q pending) Less(i, j int) bool {
	if q[i].effort != q[j].effort {
		return q[i].effort > q[j].effort
	}
	return q[i].seq < q[j].seq
}
func (q pending) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pending) Push(x any)   { *q = append(*q, x.(*request)) }
func (q *pending) Pop() any {
	old := *q
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return r
}
