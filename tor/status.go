package tor

import (
	"errors"
	"io"
	"sort"
	"tinytor/tor/circuit"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"

	"tinytor/tor/event"
)

// ErrUnknownStream is returned by CloseStream for an ID that names no
// open stream.
var ErrUnknownStream = errors.New("unknown stream")

// status keeps the live circuits, streams and channels from the event bus,
// for GETINFO circuit-status, stream-status and orconn-status, and the
// open streams' closers for CLOSESTREAM.
type status struct {
	mu       lock.Mutex
	circuits map[uint64]event.Circuit
	streams  map[uint64]event.Stream
	channels map[uint64]event.Channel
	closers  map[uint64]io.Closer
}

func newStatus(bus *event.Bus) *status {
	s := &status{
		circuits: map[uint64]event.Circuit{},
		streams:  map[uint64]event.Stream{},
		channels: map[uint64]event.Channel{},
		closers:  map[uint64]io.Closer{},
	}
	bus.Subscribe(s.observe)
	return s
}

func ended(status string) bool { return status == "CLOSED" || status == "FAILED" }

func (s *status) observe(ev event.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := ev.(type) {
	case *event.Circuit:
		track(s.circuits, e.ID, e.Status, *e)
	case *event.Stream:
		track(s.streams, e.ID, e.Status, *e)
		if ended(e.Status) {
			delete(s.closers, e.ID)
		}
	case *event.Channel:
		track(s.channels, e.ID, e.Status, *e)
	}
}

// track keeps v under id in m while status is not final.
func track[T any](m map[uint64]T, id uint64, status string, v T) {
	if ended(status) {
		delete(m, id)
	} else {
		m[id] = v
	}
}

// streamOpened registers an open stream's closer.
func (s *status) streamOpened(id uint64, c io.Closer) {
	s.mu.Lock()
	if _, ok := s.streams[id]; ok {
		s.closers[id] = c
	}
	s.mu.Unlock()
}

func (s *status) probe() {
	s.mu.Lock()
	//lint:ignore SA2001 an empty critical section is the probe
	s.mu.Unlock()
}

// sorted returns the values of m sorted by id, taking s.mu.
func sorted[T any](s *status, m map[uint64]T, id func(T) uint64) []T {
	s.mu.Lock()
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return id(out[i]) < id(out[j]) })
	return out
}

// Circuits returns the open circuits, by ID.
func (c *Client) Circuits() []event.Circuit {
	return sorted(c.status, c.status.circuits, func(ci event.Circuit) uint64 { return ci.ID })
}

// Streams returns the open streams, by ID.
func (c *Client) Streams() []event.Stream {
	return sorted(c.status, c.status.streams, func(si event.Stream) uint64 { return si.ID })
}

// Channels returns the open channels, by ID.
func (c *Client) Channels() []event.Channel {
	return sorted(c.status, c.status.channels, func(ci event.Channel) uint64 { return ci.ID })
}

// CloseStream closes the stream the control port calls id.
func (c *Client) CloseStream(id uint64) error {
	s := c.status
	s.mu.Lock()
	_, ok := s.streams[id]
	closer := s.closers[id]
	s.mu.Unlock()
	if !ok || closer == nil {
		return errfmt.Errorf("stream %d: %w", id, ErrUnknownStream)
	}
	return closer.Close()
}

// CongestionStats returns the congestion and flow control state of each
// open exit circuit (congestion control is negotiated with exits that
// offer it; the others keep fixed windows).
func (c *Client) CongestionStats() []circuit.CongestionStats { return c.circs.CongestionStats() }
