// Package rng is the client's one source of non-secret randomness (path
// selection, fetch schedules, shuffles, jitter): a ChaCha8 generator seeded
// once from crypto/rand and shared behind a lock. Keys and nonces come from
// crypto/rand directly, never from here.
package rng

import (
	crand "crypto/rand"
	"math/rand/v2"

	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
)

// Source is a crypto-seeded generator safe for concurrent use.
type Source struct {
	mu lock.Mutex
	r  *rand.Rand
}

// New returns a Source seeded from crypto/rand.
func New() (*Source, error) {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, errfmt.Errorf("seeding the random generator: %w", err)
	}
	return &Source{r: rand.New(rand.NewChaCha8(seed))}, nil
}

// IntN returns a uniform int in [0, n); n > 0.
func (s *Source) IntN(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.IntN(n)
}

// Int64N returns a uniform int64 in [0, n); n > 0. It makes a Source a
// dir.Rand for the fetch schedule.
func (s *Source) Int64N(n int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Int64N(n)
}

// With runs f with the generator held, for callers that draw several
// numbers (a path) or take a *rand.Rand.
func (s *Source) With(f func(*rand.Rand)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.r)
}

// Shuffle puts x in a uniformly random order.
func Shuffle[T any](s *Source, x []T) {
	s.With(func(r *rand.Rand) { r.Shuffle(len(x), func(i, j int) { x[i], x[j] = x[j], x[i] }) })
}
