package main

import (
	"slices"
	"sync"
	"time"
)

// Latency collects durations and reports percentiles. It keeps every
// sample (8 bytes each), which is fine for a load tool's run. The zero
// value is ready to use and it is safe for concurrent use.
type Latency struct {
	mu      sync.Mutex
	samples []time.Duration
	sorted  bool
}

// Add records one sample.
func (l *Latency) Add(d time.Duration) {
	l.mu.Lock()
	l.samples = append(l.samples, d)
	l.sorted = false
	l.mu.Unlock()
}

// Count returns the number of samples.
func (l *Latency) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.samples)
}

// Percentile returns the p-th percentile (0 < p <= 100) by the
// nearest-rank method: the smallest sample such that at least p percent of
// the samples are at or below it. It returns 0 without samples.
func (l *Latency) Percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.samples)
	if n == 0 {
		return 0
	}
	l.sort()
	// rank = ceil(p/100 * n), computed in integers to avoid float error
	// at exact boundaries (p in hundredths of a percent).
	hundredths := int64(p*100 + 0.5)
	if hundredths <= 0 {
		return l.samples[0]
	}
	rank := (hundredths*int64(n) + 9999) / 10000
	if rank > int64(n) {
		rank = int64(n)
	}
	if rank < 1 {
		rank = 1
	}
	return l.samples[rank-1]
}

// Max returns the largest sample (0 without samples).
func (l *Latency) Max() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) == 0 {
		return 0
	}
	l.sort()
	return l.samples[len(l.samples)-1]
}

func (l *Latency) sort() {
	if !l.sorted {
		slices.Sort(l.samples)
		l.sorted = true
	}
}
