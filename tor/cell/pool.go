package cell

import (
	"context"
	"sync/atomic"
	"time"

	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
)

// Pool defaults.
const (
	// DefaultPoolCapacity is the capacity of a pool made with a capacity
	// of 0: 8192 cells, about 4 MiB.
	DefaultPoolCapacity = 8192
	// DefaultStallTimeout is how long an inbound Get waits without a
	// single cell coming back before the pool reclaims cells from the
	// consumer that holds the most (see [Reclaimer]).
	DefaultStallTimeout = 20 * time.Second
	// maxReserve caps the default outbound reserve.
	maxReserve = 512
)

// Pool hands out fixed-size cells, in the manner of wireguard-go's
// device/pools.go with PreallocatedBuffersPerPool set: a bounded set of
// fixed-size buffers, recycled so that the data path does not allocate,
// whose size is a hard cap. The pool never holds more than its capacity
// of cells, handed out or idle: when all are in use, Get waits for one to
// come back. That wait is the back-pressure of the whole client; the
// package comment of tor/cell explains where it acts and why it cannot
// deadlock.
//
// Cells are allocated on first demand (or up front with
// [Pool.Preallocate]) and then kept for reuse.
//
// Two classes of users share the capacity:
//
//   - inbound ([Pool.GetInbound]): the channel read loops. They may take
//     cells only while more than the reserve is free, and they wait with
//     a context.
//   - outbound ([Pool.Get]): everything that builds a cell to send. It
//     may use the whole capacity, so that a pool filled with received
//     data that nobody reads never stops a SENDME, an END or a DESTROY
//     from going out: outbound cells come back as soon as the channel's
//     write loop has written them, whatever the readers do.
//
// Ownership: a *Cell obtained from Get or GetInbound belongs to the caller
// until it is handed on (to a channel's Send, to a circuit's handler) or
// returned with Put. Every cell taken must come back with Put exactly
// once, or the pool's capacity shrinks for good. A cell must not be used
// after Put.
//
// A nil *Pool is valid: Get allocates and Put discards.
type Pool struct {
	capacity int
	reserve  int
	stall    time.Duration

	mu         lock.Mutex
	idle       []*Cell // allocated cells not in use
	made       int     // cells allocated: len(idle) + inUse
	inUse      int     // cells handed out and not yet returned
	peak       int     // highest inUse
	waitingIn  int     // inbound Gets waiting now
	waitingOut int     // outbound Gets waiting now
	reclaimers map[*reclaimerEntry]struct{}
	lastGive   time.Time // when a cell last came back to a waiting pool

	availIn  chan struct{} // capacity 1: room for an inbound Get
	availOut chan struct{} // capacity 1: room for an outbound Get

	waits    atomic.Int64
	reclaims atomic.Int64
}

// PoolConfig holds the settings of a Pool.
type PoolConfig struct {
	// Capacity is the most cells the pool ever has, in use or idle;
	// 0 means DefaultPoolCapacity.
	Capacity int
	// Reserve is the part of the capacity that only outbound cells may
	// use; 0 means Capacity/8, at most 512 (and none below 8 cells);
	// a negative value means none.
	Reserve int
	// StallTimeout is how long inbound Gets wait without progress before
	// the pool calls its reclaimers; 0 means DefaultStallTimeout and a
	// negative value never.
	StallTimeout time.Duration
}

// PoolStats is a snapshot of a Pool's state and counters.
type PoolStats struct {
	// Capacity is the most cells the pool ever has.
	Capacity int
	// Reserve is the part of Capacity kept for outbound cells.
	Reserve int
	// InUse is the number of cells handed out and not yet returned.
	InUse int
	// Peak is the highest InUse so far.
	Peak int
	// Idle is the number of allocated cells waiting for reuse.
	Idle int
	// Allocated is the number of cells allocated so far (at most
	// Capacity).
	Allocated int
	// Waiting is the number of Gets waiting for a cell now.
	Waiting int
	// Waits counts the Gets that had to wait (back-pressure events).
	Waits int64
	// Reclaims counts the consumers ended because the pool stalled.
	Reclaims int64
}

// Reclaimer is a holder of cells that the pool can ask to let go: a
// circuit whose streams have received data that their readers do not
// consume. When inbound Gets have waited for StallTimeout without a single
// cell coming back, the pool calls Reclaim on the registered Reclaimer
// that holds the most cells, and again after each further StallTimeout,
// so that consumers that stopped reading cannot stop the client forever.
type Reclaimer interface {
	// HeldCells returns the number of pool cells held for consumers.
	HeldCells() int
	// Reclaim returns cells to the pool by ending a consumer (the
	// circuit's stream with the most unread cells). It is called without
	// any pool lock held and may call Put and Get.
	Reclaim()
}

type reclaimerEntry struct{ r Reclaimer }

// NewPool returns a pool of capacity cells (0 means DefaultPoolCapacity)
// with the default reserve and stall timeout.
func NewPool(capacity int) *Pool {
	return NewPoolConfig(PoolConfig{Capacity: capacity})
}

// NewPoolConfig returns a pool with the settings of cfg.
func NewPoolConfig(cfg PoolConfig) *Pool {
	n := cfg.Capacity
	if n <= 0 {
		n = DefaultPoolCapacity
	}
	r := cfg.Reserve
	switch {
	case r == 0:
		r = min(n/8, maxReserve)
	case r < 0:
		r = 0
	}
	r = min(r, n-1) // inbound always gets at least one cell
	stall := cfg.StallTimeout
	if stall == 0 {
		stall = DefaultStallTimeout
	}
	return &Pool{
		capacity:   n,
		reserve:    r,
		stall:      stall,
		reclaimers: map[*reclaimerEntry]struct{}{},
		availIn:    make(chan struct{}, 1),
		availOut:   make(chan struct{}, 1),
	}
}

// Capacity returns the most cells the pool ever has (0 for a nil pool).
func (p *Pool) Capacity() int {
	if p == nil {
		return 0
	}
	return p.capacity
}

// Preallocate allocates cells until the pool has its full capacity.
func (p *Pool) Preallocate() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.made < p.capacity {
		p.idle = append(p.idle, new(Cell))
		p.made++
	}
}

// Get returns a zeroed cell for sending. It waits while every cell of the
// pool is in use; cells taken for sending come back once written, so the
// wait is short.
func (p *Pool) Get() *Cell {
	if p == nil {
		return new(Cell)
	}
	p.mu.Lock()
	if p.inUse < p.capacity {
		return p.takeLocked()
	}
	c, _ := p.wait(context.Background(), false)
	return c
}

// GetInbound returns a zeroed cell to read a received cell into. It waits
// while no more than the pool's reserve is free, until ctx is done (the
// error then wraps ctx.Err()). A channel's read loop calls it: while it
// waits, the channel is not read and TCP pushes back on the relay.
func (p *Pool) GetInbound(ctx context.Context) (*Cell, error) {
	if p == nil {
		return new(Cell), nil
	}
	p.mu.Lock()
	if p.inUse < p.capacity-p.reserve {
		return p.takeLocked(), nil
	}
	return p.wait(ctx, true)
}

// takeLocked hands out a cell and unlocks p.mu.
func (p *Pool) takeLocked() *Cell {
	p.inUse++
	if p.inUse > p.peak {
		p.peak = p.inUse
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c
	}
	p.made++
	p.mu.Unlock()
	return new(Cell)
}

// wait waits for room for a Get of the given class. p.mu is held on entry
// and released on return.
func (p *Pool) wait(ctx context.Context, inbound bool) (*Cell, error) {
	p.waits.Add(1)
	limit, avail, waiting := p.capacity, p.availOut, &p.waitingOut
	if inbound {
		limit, avail, waiting = p.capacity-p.reserve, p.availIn, &p.waitingIn
	}
	*waiting++
	var stall <-chan time.Time
	if inbound && p.stall > 0 {
		t := time.NewTimer(p.stall)
		defer t.Stop()
		stall = t.C
	}
	for {
		if p.inUse < limit {
			*waiting--
			// Pass the wake-up on to the next waiter of this class
			// if there is still room for it.
			if *waiting > 0 && p.inUse+1 < limit {
				signal(avail)
			}
			return p.takeLocked(), nil
		}
		p.mu.Unlock()
		select {
		case <-avail:
		case <-ctx.Done():
			p.mu.Lock()
			*waiting--
			if *waiting > 0 && p.inUse < limit {
				signal(avail)
			}
			p.mu.Unlock()
			return nil, errfmt.Errorf("waiting for a free cell (%d of %d in use): %w", p.Stats().InUse, p.capacity, ctx.Err())
		case <-stall:
			p.reclaim()
			stall = time.After(p.stall)
		}
		p.mu.Lock()
	}
}

// signal wakes one waiter on ch without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// reclaim asks the reclaimer holding the most cells to let go, unless a
// cell came back within the stall timeout (another waiter reclaimed, or a
// reader woke up).
func (p *Pool) reclaim() {
	p.mu.Lock()
	if time.Since(p.lastGive) < p.stall {
		p.mu.Unlock()
		return
	}
	p.lastGive = time.Now() // one reclaim per stall timeout
	rs := make([]Reclaimer, 0, len(p.reclaimers))
	for e := range p.reclaimers {
		rs = append(rs, e.r)
	}
	p.mu.Unlock()
	// Reclaimers are asked without p.mu held: they take their own locks,
	// under which they call Put.
	var best Reclaimer
	most := 0
	for _, r := range rs {
		if n := r.HeldCells(); n > most {
			best, most = r, n
		}
	}
	if best != nil {
		p.reclaims.Add(1)
		best.Reclaim()
	}
}

// AddReclaimer registers r until remove is called. Both may be called
// with locks held under which r's methods are not called by the pool
// (the pool calls them with no lock of its own held).
func (p *Pool) AddReclaimer(r Reclaimer) (remove func()) {
	if p == nil {
		return func() {}
	}
	e := &reclaimerEntry{r}
	p.mu.Lock()
	p.reclaimers[e] = struct{}{}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.reclaimers, e)
		p.mu.Unlock()
	}
}

// Put zeroes c and returns it to the pool, waking a waiting Get. Put(nil)
// does nothing. c must come from this pool's Get or GetInbound.
func (p *Pool) Put(c *Cell) {
	if c == nil || p == nil {
		return
	}
	c.Reset()
	p.mu.Lock()
	if p.inUse == 0 {
		// Not one of ours: let the garbage collector have it.
		p.mu.Unlock()
		return
	}
	p.inUse--
	p.idle = append(p.idle, c)
	if p.waitingIn+p.waitingOut == 0 {
		p.mu.Unlock()
		return
	}
	p.lastGive = time.Now()
	in := p.waitingIn > 0 && p.inUse < p.capacity-p.reserve
	out := p.waitingOut > 0
	p.mu.Unlock()
	if in {
		signal(p.availIn)
	}
	if out {
		signal(p.availOut)
	}
}

// Stats returns the pool's state and counters.
func (p *Pool) Stats() PoolStats {
	if p == nil {
		return PoolStats{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{
		Capacity:  p.capacity,
		Reserve:   p.reserve,
		InUse:     p.inUse,
		Peak:      p.peak,
		Idle:      len(p.idle),
		Allocated: p.made,
		Waiting:   p.waitingIn + p.waitingOut,
		Waits:     p.waits.Load(),
		Reclaims:  p.reclaims.Load(),
	}
}
