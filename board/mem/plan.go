package mem

import (
	"errors"
	"runtime/debug"

	"tinytor/tor/errfmt"
)

// Byte sizes.
const (
	KiB = 1 << 10
	MiB = 1 << 20
)

// Limits of the formula (see the package comment).
const (
	MinQueues       = 2 * MiB   // smallest automatic MaxMemInQueues
	MaxAutoQueues   = 256 * MiB // largest automatic MaxMemInQueues
	MinExplicit     = 1 * MiB   // smallest MaxMemInQueues accepted from torrc
	BinaryOverhead  = 16 * MiB  // what the binary needs besides queues
	cellAccountSize = 600       // a 514-byte cell plus queue bookkeeping
)

// Plan is the memory configuration derived from Info and MaxMemInQueues.
type Plan struct {
	// Effective is the memory we may assume we have.
	Effective uint64
	// MaxMemInQueues bounds memory for queued cells (auto or from torrc).
	MaxMemInQueues uint64
	// Budget is the memory the whole process may hold (VmRSS): the Go
	// memory limit plus the program's code.
	Budget uint64
	// GoMemLimit is for debug.SetMemoryLimit: the Budget less the code.
	GoMemLimit int64
	// GCPercent is for debug.SetGCPercent.
	GCPercent int
}

// NewPlan computes the Plan. maxMemInQueues is the torrc setting in bytes,
// 0 for automatic.
func NewPlan(info Info, maxMemInQueues uint64) (Plan, error) {
	if info.MemTotal == 0 {
		return Plan{}, errors.New("mem: total RAM unknown")
	}
	p := Plan{Effective: info.MemTotal}
	if info.CgroupLimit > 0 && info.CgroupLimit < p.Effective {
		p.Effective = info.CgroupLimit
	}
	switch {
	case maxMemInQueues == 0:
		p.MaxMemInQueues = min(max(p.Effective/8, MinQueues), MaxAutoQueues)
	case maxMemInQueues < MinExplicit:
		return Plan{}, errfmt.Errorf("mem: MaxMemInQueues %d bytes is below the minimum of %d", maxMemInQueues, uint64(MinExplicit))
	case maxMemInQueues > p.Effective:
		return Plan{}, errfmt.Errorf("mem: MaxMemInQueues %d bytes exceeds the %d bytes of memory available", maxMemInQueues, p.Effective)
	default:
		p.MaxMemInQueues = maxMemInQueues
	}
	lim := min(2*p.MaxMemInQueues+BinaryOverhead, p.Effective/4*3)
	if info.CgroupLimit > 0 {
		lim = min(lim, info.CgroupLimit/10*9)
	}
	p.Budget = lim
	p.GoMemLimit = int64(lim - min(info.CodeSize, lim/2))
	switch {
	case p.Effective < 64*MiB:
		p.GCPercent = 50
	case p.Effective < 256*MiB:
		p.GCPercent = 75
	default:
		p.GCPercent = 100
	}
	return p, nil
}

// Apply sets the Go runtime's memory limit and GC percent and returns the
// previous values (to restore in tests).
func (p Plan) Apply() (prevLimit int64, prevGCPercent int) {
	prevLimit = debug.SetMemoryLimit(p.GoMemLimit)
	prevGCPercent = debug.SetGCPercent(p.GCPercent)
	return prevLimit, prevGCPercent
}

// Caps are the Budget's limits.
type Caps struct {
	Circuits, Streams, QueuedCells int64
}

// Caps derives the Budget caps from the plan:
//
//	QueuedCells = MaxMemInQueues / 600          (514-byte cell + bookkeeping)
//	Circuits    = clamp(MaxMemInQueues / 16 KiB, 16, 4096)
//	Streams     = clamp(MaxMemInQueues / 4 KiB, 64, 16384)
func (p Plan) Caps() Caps {
	q := int64(p.MaxMemInQueues)
	return Caps{
		Circuits:    min(max(q/(16*KiB), 16), 4096),
		Streams:     min(max(q/(4*KiB), 64), 16384),
		QueuedCells: q / cellAccountSize,
	}
}
