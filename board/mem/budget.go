package mem

import (
	"runtime/metrics"
	"strconv"
	"sync/atomic"

	"tinytor/tor/lock"
)

// Resource is a kind of thing the Budget counts.
type Resource int

// The counted resources.
const (
	Circuits Resource = iota
	Streams
	QueuedCells
	numResources
)

// resourceNames are the names of the resources, for logs.
var resourceNames = [...]string{Circuits: "circuits", Streams: "streams", QueuedCells: "queued cells"}

func (r Resource) String() string {
	if uint(r) < uint(len(resourceNames)) {
		return resourceNames[r]
	}
	return "resource(" + strconv.Itoa(int(r)) + ")"
}

// Pressure is how close to its limits the process is.
type Pressure int

// Pressure levels. The thresholds are the highest use ratio over all
// resources and the Go heap against GoMemLimit.
const (
	PressureNone     Pressure = iota // below 75%
	PressureModerate                 // 75% to 90%: stop prebuilding circuits
	PressureHigh                     // 90% to 100%: refuse new streams
	PressureCritical                 // at or over a cap: shed load
)

// pressureNames are the names of the pressure levels, for logs.
var pressureNames = [...]string{PressureNone: "none", PressureModerate: "moderate", PressureHigh: "high", PressureCritical: "critical"}

func (p Pressure) String() string {
	if uint(p) < uint(len(pressureNames)) {
		return pressureNames[p]
	}
	return "pressure(" + strconv.Itoa(int(p)) + ")"
}

// Budget counts circuits, streams and queued cells against Caps and the Go
// heap against a limit. It is safe for concurrent use; Acquire and Release
// are lock-free.
type Budget struct {
	caps  [numResources]int64
	used  [numResources]atomic.Int64
	limit uint64
	usage func() uint64
}

// NewBudget returns a Budget with the given caps. memLimit is the heap
// limit Pressure compares usage() with (GoMemLimit; 0 to ignore the heap);
// usage reports bytes in use (nil: the Go runtime's memory in use from
// runtime/metrics, less its free heap and collectable garbage).
func NewBudget(caps Caps, memLimit uint64, usage func() uint64) *Budget {
	b := &Budget{limit: memLimit, usage: usage}
	b.caps[Circuits] = caps.Circuits
	b.caps[Streams] = caps.Streams
	b.caps[QueuedCells] = caps.QueuedCells
	if b.usage == nil {
		b.usage = newRuntimeUsage()
	}
	return b
}

// Acquire takes n units of r if that stays within the cap and reports
// whether it did. Release them with Release.
func (b *Budget) Acquire(r Resource, n int64) bool {
	for {
		cur := b.used[r].Load()
		if cur+n > b.caps[r] {
			return false
		}
		if b.used[r].CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// Release returns n units of r. Releasing more than is in use (a caller
// bug) clamps the count at zero rather than crashing the router.
func (b *Budget) Release(r Resource, n int64) {
	for {
		cur := b.used[r].Load()
		if b.used[r].CompareAndSwap(cur, max(cur-n, 0)) {
			return
		}
	}
}

// Used returns the units of r in use.
func (b *Budget) Used(r Resource) int64 { return b.used[r].Load() }

// Cap returns the cap of r.
func (b *Budget) Cap(r Resource) int64 { return b.caps[r] }

// Pressure returns the current pressure level.
func (b *Budget) Pressure() Pressure {
	worst := 0.0
	for r := range numResources {
		if b.caps[r] > 0 {
			worst = max(worst, float64(b.used[r].Load())/float64(b.caps[r]))
		}
	}
	if b.limit > 0 {
		worst = max(worst, float64(b.usage())/float64(b.limit))
	}
	switch {
	case worst >= 1:
		return PressureCritical
	case worst >= 0.9:
		return PressureHigh
	case worst >= 0.75:
		return PressureModerate
	}
	return PressureNone
}

// AllowNewStream reports whether a new stream may be accepted (pressure
// below High).
func (b *Budget) AllowNewStream() bool { return b.Pressure() < PressureHigh }

// newRuntimeUsage returns the default measure of memory in use: what the
// Go runtime has mapped and not released, less the free heap it keeps for
// reuse and the garbage that the next collection frees. Mapped memory
// alone stays near the Go memory limit after a burst (the runtime returns
// it to the kernel only as it approaches the limit), which would refuse
// streams long after the load has gone.
func newRuntimeUsage() func() uint64 {
	var mu lock.Mutex
	names := [...]string{
		"/memory/classes/total:bytes",
		"/memory/classes/heap/released:bytes",
		"/memory/classes/heap/free:bytes",
		"/memory/classes/heap/objects:bytes",
		"/gc/heap/live:bytes",
	}
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		metrics.Read(samples)
		var v [len(names)]uint64
		for i, s := range samples {
			if s.Value.Kind() != metrics.KindUint64 {
				return 0
			}
			v[i] = s.Value.Uint64()
		}
		total, released, free, objects, live := v[0], v[1], v[2], v[3], v[4]
		used := total - released - free
		if objects > live && live > 0 {
			used -= objects - live
		}
		return used
	}
}
