package tor

import (
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Event is something the client reports to its subscribers (the control
// port, the metrics page): *CircuitEvent, *StreamEvent, *ChannelEvent or
// BootstrapStatus.
type Event interface{ isEvent() }

// RelayRef names a relay as the control protocol's LongName does.
type RelayRef struct {
	ID       [20]byte
	Nickname string
}

// LongName is "$FINGERPRINT~nickname".
func (r RelayRef) LongName() string {
	if r.Nickname == "" {
		return fmt.Sprintf("$%X", r.ID)
	}
	return fmt.Sprintf("$%X~%s", r.ID, r.Nickname)
}

// CircuitInfo describes a circuit (GETINFO circuit-status, CIRC events).
type CircuitInfo struct {
	ID      uint64
	Status  string // LAUNCHED, EXTENDED, BUILT, FAILED, CLOSED
	Path    []RelayRef
	Purpose string // GENERAL, CONFLUX_LINKED... (control-spec)
	Flags   []string
	Created time.Time
	Reason  string // for FAILED and CLOSED
	// BuildTime is set on BUILT.
	BuildTime time.Duration
}

// StreamInfo describes a stream (GETINFO stream-status, STREAM events).
type StreamInfo struct {
	ID     uint64
	Status string // NEW, SENTCONNECT, SUCCEEDED, FAILED, CLOSED, NEWRESOLVE, SENTRESOLVE
	CircID uint64
	Target string
	Reason string
}

// ChannelInfo describes a channel (GETINFO orconn-status, ORCONN events).
type ChannelInfo struct {
	ID     uint64
	Relay  RelayRef
	Addr   string
	Status string // LAUNCHED, CONNECTED, FAILED, CLOSED
	Reason string
	NCircs int
}

// CircuitEvent reports a circuit's change of status.
type CircuitEvent struct{ CircuitInfo }

// StreamEvent reports a stream's change of status.
type StreamEvent struct{ StreamInfo }

// ChannelEvent reports a channel's change of status.
type ChannelEvent struct{ ChannelInfo }

func (*CircuitEvent) isEvent()   {}
func (*StreamEvent) isEvent()    {}
func (*ChannelEvent) isEvent()   {}
func (BootstrapStatus) isEvent() {}

// events fans events out to subscribers and keeps the live objects for
// the status queries.
type events struct {
	mu       sync.Mutex
	subs     map[int]func(Event)
	nextSub  int
	circuits map[uint64]CircuitInfo
	streams  map[uint64]StreamInfo
	channels map[uint64]ChannelInfo
	closers  map[uint64]io.Closer // open streams, for CloseStream

	nextID atomic.Uint64

	bytesRead, bytesWritten atomic.Uint64
}

func newEvents() *events {
	return &events{
		subs:     map[int]func(Event){},
		circuits: map[uint64]CircuitInfo{},
		streams:  map[uint64]StreamInfo{},
		channels: map[uint64]ChannelInfo{},
		closers:  map[uint64]io.Closer{},
	}
}

// newID returns a fresh identifier for a circuit, stream or channel, as
// the control protocol shows them.
func (e *events) newID() uint64 { return e.nextID.Add(1) }

// Subscribe calls f with every event until the returned function is
// called. f runs on the goroutine that caused the event: it must not
// block or call back into the client.
func (c *Client) Subscribe(f func(Event)) (unsubscribe func()) {
	e := c.events
	e.mu.Lock()
	id := e.nextSub
	e.nextSub++
	e.subs[id] = f
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		delete(e.subs, id)
		e.mu.Unlock()
	}
}

func (e *events) publish(ev Event) {
	e.mu.Lock()
	subs := make([]func(Event), 0, len(e.subs))
	for _, f := range e.subs {
		subs = append(subs, f)
	}
	e.mu.Unlock()
	for _, f := range subs {
		f(ev)
	}
}

func (e *events) circuit(ci CircuitInfo) {
	e.mu.Lock()
	if ci.Status == "CLOSED" || ci.Status == "FAILED" {
		delete(e.circuits, ci.ID)
	} else {
		e.circuits[ci.ID] = ci
	}
	e.mu.Unlock()
	e.publish(&CircuitEvent{ci})
}

func (e *events) stream(si StreamInfo) {
	e.mu.Lock()
	if si.Status == "CLOSED" || si.Status == "FAILED" {
		delete(e.streams, si.ID)
		delete(e.closers, si.ID)
	} else {
		e.streams[si.ID] = si
	}
	e.mu.Unlock()
	e.publish(&StreamEvent{si})
}

func (e *events) channel(ch ChannelInfo) {
	e.mu.Lock()
	if ch.Status == "CLOSED" || ch.Status == "FAILED" {
		delete(e.channels, ch.ID)
	} else {
		e.channels[ch.ID] = ch
	}
	e.mu.Unlock()
	e.publish(&ChannelEvent{ch})
}

// streamOpened registers an open stream's closer.
func (e *events) streamOpened(id uint64, c io.Closer) {
	e.mu.Lock()
	if _, ok := e.streams[id]; ok {
		e.closers[id] = c
	}
	e.mu.Unlock()
}

// snapshot returns the values of m sorted by id, taking e.mu.
func snapshot[T any](e *events, m map[uint64]T, id func(T) uint64) []T {
	e.mu.Lock()
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return id(out[i]) < id(out[j]) })
	return out
}

// Circuits returns the open circuits, by ID.
func (c *Client) Circuits() []CircuitInfo {
	return snapshot(c.events, c.events.circuits, func(ci CircuitInfo) uint64 { return ci.ID })
}

// Streams returns the open streams, by ID.
func (c *Client) Streams() []StreamInfo {
	return snapshot(c.events, c.events.streams, func(si StreamInfo) uint64 { return si.ID })
}

// Channels returns the open channels, by ID.
func (c *Client) Channels() []ChannelInfo {
	return snapshot(c.events, c.events.channels, func(ci ChannelInfo) uint64 { return ci.ID })
}

// Traffic returns the bytes read from and written to relays (TLS
// included), as GETINFO traffic/read and traffic/written report them.
func (c *Client) Traffic() (read, written uint64) {
	return c.events.bytesRead.Load(), c.events.bytesWritten.Load()
}

// countingConn counts the bytes that pass through a connection.
type countingConn struct {
	net.Conn
	read, written *atomic.Uint64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(uint64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(uint64(n))
	return n, err
}
