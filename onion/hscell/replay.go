package hscell

import (
	"crypto/sha3"
	"time"

	"tinytor/tor/lock"
)

// ReplayCache remembers the INTRODUCE2 cells an introduction point has
// delivered (rend-spec-v3 3.3: a service drops a cell it has seen), keyed
// by the SHA3-256 of the ENCRYPTED section, as C tor does. Entries expire
// after a lifetime (the intro point's lifetime is enough: a new intro
// point has new keys), and the cache holds at most a maximum number of
// entries, forgetting the oldest first. Use one per introduction point.
// It is safe for concurrent use.
type ReplayCache struct {
	mu    lock.Mutex
	ttl   time.Duration
	max   int
	seen  map[[32]byte]time.Time
	order []replayEntry // insertion order; head is the oldest
	head  int
}

type replayEntry struct {
	key [32]byte
	at  time.Time
}

// NewReplayCache returns a cache holding up to max entries for ttl each.
func NewReplayCache(max int, ttl time.Duration) *ReplayCache {
	if max < 1 {
		max = 1
	}
	return &ReplayCache{ttl: ttl, max: max, seen: make(map[[32]byte]time.Time)}
}

// Seen reports whether encrypted (an INTRODUCE2 ENCRYPTED section) was
// recorded before and has not expired at now; if not, it records it.
func (c *ReplayCache) Seen(encrypted []byte, now time.Time) bool {
	key := sha3.Sum256(encrypted)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if at, ok := c.seen[key]; ok && now.Sub(at) < c.ttl {
		return true
	}
	for len(c.seen) >= c.max {
		c.dropOldest()
	}
	c.seen[key] = now
	c.order = append(c.order, replayEntry{key, now})
	return false
}

// Len returns the number of remembered cells.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	n := len(c.seen)
	c.mu.Unlock()
	return n
}

func (c *ReplayCache) expire(now time.Time) {
	for c.head < len(c.order) && now.Sub(c.order[c.head].at) >= c.ttl {
		c.dropOldest()
	}
}

func (c *ReplayCache) dropOldest() {
	e := c.order[c.head]
	c.order[c.head] = replayEntry{}
	c.head++
	if at, ok := c.seen[e.key]; ok && at.Equal(e.at) {
		delete(c.seen, e.key)
	}
	// Compact the queue when half of it is dead.
	if c.head > 32 && c.head*2 > len(c.order) {
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
}
