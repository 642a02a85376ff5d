// Package lock holds Mutex, the mutual exclusion lock of tinytor's code.
//
// It is sync.Mutex with Lock and Unlock compiled once. Go inlines the
// fast paths of sync.Mutex's Lock and Unlock at every call site: about
// 110 bytes of mips code per Lock/Unlock pair. tinytor takes locks at
// about 1,300 places, so the copies cost about 70 KB of a stripped mipsle
// binary, which router flash cannot spare. A call is a few nanoseconds,
// far below the cost of the work done under the lock (a cell's AES is
// microseconds on a router).
package lock

import "sync"

// Mutex is a mutual exclusion lock; its zero value is unlocked. It must
// not be copied after first use.
type Mutex struct {
	mu sync.Mutex
}

// Lock locks m, waiting until it is available.
//
//go:noinline
func (m *Mutex) Lock() { m.mu.Lock() }

// Unlock unlocks m. It is a run-time error if m is not locked.
//
//go:noinline
func (m *Mutex) Unlock() { m.mu.Unlock() }

// TryLock tries to lock m and reports whether it succeeded.
func (m *Mutex) TryLock() bool { return m.mu.TryLock() }
