package cell

import "sync/atomic"

// Pool recycles fixed-size cells, in the manner of wireguard-go's
// device/pools.go: a bounded free list of fixed-size buffers, so that the
// data path does not allocate and the memory kept for idle cells is capped.
//
// Get never blocks. When the free list is empty it allocates a new cell;
// allocations beyond the pool's bound are counted as overflow (see
// [Pool.Stats]) so that a memory budget can notice a leak or a burst. Put
// keeps at most the bound's number of idle cells and lets the garbage
// collector take the rest.
//
// Ownership: a *Cell obtained from Get belongs to the caller until it is
// handed on (to a channel's Send, to a circuit's handler) or returned with
// Put. A cell must not be used after Put.
//
// A nil *Pool is valid: Get allocates and Put discards.
type Pool struct {
	free     chan *Cell
	bound    int
	made     atomic.Int64 // cells allocated while at or under the bound
	overflow atomic.Int64 // cells allocated beyond the bound
}

// PoolStats is a snapshot of a Pool's counters.
type PoolStats struct {
	Bound     int   // the most idle cells the pool keeps
	Idle      int   // cells in the free list now
	Allocated int64 // cells allocated within the bound
	Overflow  int64 // cells allocated beyond the bound
}

// NewPool returns a pool that keeps at most n idle cells (n < 1 means 1).
// Cells are allocated on demand; call [Pool.Preallocate] to allocate them up
// front.
func NewPool(n int) *Pool {
	if n < 1 {
		n = 1
	}
	return &Pool{free: make(chan *Cell, n), bound: n}
}

// Preallocate fills the free list up to the pool's bound.
func (p *Pool) Preallocate() {
	if p == nil {
		return
	}
	for int(p.made.Load()) < p.bound {
		p.made.Add(1)
		select {
		case p.free <- new(Cell):
		default:
			p.made.Add(-1)
			return
		}
	}
}

// Get returns a zeroed cell. It never blocks.
func (p *Pool) Get() *Cell {
	if p == nil {
		return new(Cell)
	}
	select {
	case c := <-p.free:
		return c
	default:
	}
	if p.made.Add(1) > int64(p.bound) {
		p.made.Add(-1)
		p.overflow.Add(1)
	}
	return new(Cell)
}

// Put zeroes c and returns it to the free list. Put(nil) does nothing.
func (p *Pool) Put(c *Cell) {
	if c == nil || p == nil {
		return
	}
	c.Reset()
	select {
	case p.free <- c:
	default:
	}
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	if p == nil {
		return PoolStats{}
	}
	return PoolStats{
		Bound:     p.bound,
		Idle:      len(p.free),
		Allocated: p.made.Load(),
		Overflow:  p.overflow.Load(),
	}
}
