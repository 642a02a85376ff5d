package main

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestLatencyPercentiles(t *testing.T) {
	var l Latency
	if l.Percentile(50) != 0 || l.Max() != 0 || l.Count() != 0 {
		t.Fatal("empty tracker is not zero")
	}
	// 1ms..100ms in shuffled order.
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(100) {
		l.Add(time.Duration(i+1) * time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{
		1: 1 * time.Millisecond, 50: 50 * time.Millisecond, 95: 95 * time.Millisecond,
		99: 99 * time.Millisecond, 99.5: 100 * time.Millisecond, 100: 100 * time.Millisecond,
		0.5: 1 * time.Millisecond, 50.5: 51 * time.Millisecond,
	} {
		if got := l.Percentile(p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if l.Max() != 100*time.Millisecond || l.Count() != 100 {
		t.Errorf("max %v count %d", l.Max(), l.Count())
	}

	// Nearest rank on a small set: {10, 20, 30, 40}.
	var s Latency
	for _, v := range []time.Duration{40, 10, 30, 20} {
		s.Add(v)
	}
	for p, want := range map[float64]time.Duration{25: 10, 26: 20, 50: 20, 51: 30, 75: 30, 95: 40, 99: 40} {
		if got := s.Percentile(p); got != want {
			t.Errorf("{10,20,30,40} p%v = %v, want %v", p, got, want)
		}
	}
	// Adding after a query re-sorts.
	s.Add(5)
	if got := s.Percentile(1); got != 5 {
		t.Errorf("p1 after adding 5 = %v", got)
	}
}

func TestLatencyConcurrent(t *testing.T) {
	var l Latency
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				l.Add(time.Duration(w*1000 + i + 1))
				if i%100 == 0 {
					l.Percentile(50) // reads interleaved with writes
				}
			}
		}()
	}
	wg.Wait()
	if l.Count() != 8000 || l.Max() != 8000 || l.Percentile(50) != 4000 {
		t.Errorf("count %d max %v p50 %v", l.Count(), l.Max(), l.Percentile(50))
	}
}
