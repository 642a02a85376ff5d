package watchdog

import (
	"slices"
	"time"

	"tinytor/tor/lock"
)

// Heartbeat tracks whether registered components are alive. It is safe
// for concurrent use.
type Heartbeat struct {
	now   func() time.Time
	mu    lock.Mutex
	comps map[string]*component
}

type component struct {
	deadline time.Duration
	last     time.Time
}

// NewHeartbeat returns a Heartbeat using now as its clock (time.Now if
// nil). Tests pass a fake clock.
func NewHeartbeat(now func() time.Time) *Heartbeat {
	if now == nil {
		now = time.Now
	}
	return &Heartbeat{now: now, comps: make(map[string]*component)}
}

// Register adds a component that must Beat at least once per deadline.
// It counts as having just beaten. Registering again changes the deadline.
func (h *Heartbeat) Register(name string, deadline time.Duration) error {
	if deadline <= 0 {
		return valueError("component", name, ": deadline "+deadline.String()+" must be positive")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.comps[name] = &component{deadline: deadline, last: h.now()}
	return nil
}

// Unregister removes a component (for one that shuts down cleanly).
func (h *Heartbeat) Unregister(name string) {
	h.mu.Lock()
	delete(h.comps, name)
	h.mu.Unlock()
}

// Beat records that component name is alive. Beats of unregistered names
// are ignored.
func (h *Heartbeat) Beat(name string) {
	h.mu.Lock()
	if c := h.comps[name]; c != nil {
		c.last = h.now()
	}
	h.mu.Unlock()
}

// Check reports whether every component beat within its deadline, and
// the sorted names of those that did not.
func (h *Heartbeat) Check() (healthy bool, stalled []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	for name, c := range h.comps {
		if now.Sub(c.last) > c.deadline {
			stalled = append(stalled, name)
		}
	}
	slices.Sort(stalled)
	return len(stalled) == 0, stalled
}
