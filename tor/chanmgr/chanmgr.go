// Package chanmgr is the channel manager: it keeps at most one open channel
// (TLS link) per relay identity and shares it between circuits (tor-spec 2:
// one connection per relay pair), reports each channel's life as ORCONN
// events and each relay's NETINFO clock skew on the event bus, and counts
// the bytes that cross the links.
package chanmgr

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/circuit"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/link"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Config is what a Manager works with.
type Config struct {
	// Log receives the channels' log lines; nil discards them.
	Log *torlog.Logger
	// Now is the clock for certificate checks; nil means time.Now.
	Now func() time.Time
	// Pool supplies the channels' cells.
	Pool *cell.Pool
	// Events receives ORCONN (*event.Channel) and event.Netinfo events.
	Events *event.Bus
	// Dial opens the connection a channel runs over (through a pluggable
	// transport or an upstream proxy, say); nil dials TCP directly.
	Dial func(ctx context.Context, addr netip.AddrPort, id link.Identity) (net.Conn, error)
}

// Manager opens, shares and closes channels.
type Manager struct {
	cfg Config

	mu      lock.Mutex
	open    map[[20]byte]*link.Channel
	pending map[dialKey]*pendingDial

	read, written atomic.Uint64
}

// dialKey names a dial in progress: by identity, or by address when the
// identity is not known (a bridge without a fingerprint).
type dialKey struct {
	id   [20]byte
	addr netip.AddrPort
}

type pendingDial struct {
	done chan struct{}
	ch   *link.Channel
	err  error
}

// New returns a Manager with no channels.
func New(cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = torlog.Discard()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg, open: map[[20]byte]*link.Channel{}, pending: map[dialKey]*pendingDial{}}
}

// Get returns an open channel to the relay with identity id at addr,
// dialing one if there is none. Concurrent callers for one relay share a
// single dial. An id whose RSA identity is all zeros (a bridge without a
// fingerprint) accepts the identity the relay proves: read it from the
// channel.
func (m *Manager) Get(ctx context.Context, addr netip.AddrPort, id link.Identity, nickname string) (*link.Channel, error) {
	key := dialKey{id: id.RSA}
	if id.RSA == ([20]byte{}) {
		key.addr = addr
	}
	m.mu.Lock()
	if ch := m.open[id.RSA]; ch != nil && key.addr == (netip.AddrPort{}) {
		select {
		case <-ch.Done():
			delete(m.open, id.RSA)
		default:
			m.mu.Unlock()
			return ch, nil
		}
	}
	if p := m.pending[key]; p != nil {
		m.mu.Unlock()
		select {
		case <-p.done:
			return p.ch, p.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p := &pendingDial{done: make(chan struct{})}
	m.pending[key] = p
	m.mu.Unlock()

	p.ch, p.err = m.dial(ctx, addr, id, nickname)
	m.mu.Lock()
	delete(m.pending, key)
	if p.err == nil {
		m.open[p.ch.Identity().RSA] = p.ch
	}
	m.mu.Unlock()
	close(p.done)
	return p.ch, p.err
}

// CloseAll closes every open channel (on shutdown).
func (m *Manager) CloseAll() {
	m.mu.Lock()
	chans := make([]*link.Channel, 0, len(m.open))
	for _, ch := range m.open {
		chans = append(chans, ch)
	}
	clear(m.open)
	m.mu.Unlock()
	for _, ch := range chans {
		ch.Close()
	}
}

// Count returns the number of open channels. It takes the manager's lock,
// so it doubles as a watchdog probe.
func (m *Manager) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.open)
}

// Traffic returns the bytes read from and written to relays (TLS
// included), as GETINFO traffic/read and traffic/written report them.
func (m *Manager) Traffic() (read, written uint64) { return m.read.Load(), m.written.Load() }

// Circuits lets a *link.Channel carry circuits: circuit.Handler and
// link.Handler have the same methods but are distinct types.
func Circuits(ch *link.Channel) circuit.Channel { return circChannel{ch} }

type circChannel struct{ *link.Channel }

// OpenCircuit registers h for a new circuit ID on the channel.
func (c circChannel) OpenCircuit(h circuit.Handler) (uint32, error) { return c.Channel.OpenCircuit(h) }

// dial opens a channel, counting its bytes and reporting ORCONN events.
func (m *Manager) dial(ctx context.Context, addr netip.AddrPort, id link.Identity, nickname string) (*link.Channel, error) {
	bus := m.cfg.Events
	info := event.Channel{ID: bus.NewID(), Relay: event.RelayRef{ID: id.RSA, Nickname: nickname}, Addr: addr.String(), Status: "LAUNCHED"}
	report := func() { ev := info; bus.Publish(&ev) }
	report()
	fail := func(err error) (*link.Channel, error) {
		info.Status, info.Reason = "FAILED", orconnReason(err)
		report()
		return nil, errfmt.Errorf("connecting to relay %s at %s: %w", id, addr, err)
	}
	var raw net.Conn
	var err error
	if m.cfg.Dial != nil {
		raw, err = m.cfg.Dial(ctx, addr, id)
	} else {
		var d net.Dialer
		raw, err = d.DialTCP(ctx, "tcp", netip.AddrPort{}, addr) // no resolver: see tor/netlisten
	}
	if err != nil {
		return fail(err)
	}
	conn := countingConn{Conn: raw, read: &m.read, written: &m.written}
	ch, err := link.Client(ctx, conn, id, link.Config{Log: m.cfg.Log, Now: m.cfg.Now, Pool: m.cfg.Pool})
	if err != nil {
		raw.Close()
		return fail(err)
	}
	info.Status = "CONNECTED"
	report()
	bus.Publish(event.Netinfo{Skew: ch.ClockSkew()})
	go func() {
		<-ch.Done()
		info.Status, info.Reason = "CLOSED", "DONE"
		if err := ch.Err(); err != nil && !errors.Is(err, link.ErrClosed) {
			info.Reason = orconnReason(err)
		}
		report()
	}()
	return ch, nil
}

// orconnReason maps a channel error to a control-spec ORCONN reason.
func orconnReason(err error) string {
	switch {
	case errors.Is(err, link.ErrWrongIdentity):
		return "IDENTITY"
	case errors.Is(err, context.DeadlineExceeded):
		return "TIMEOUT"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "CONNECTREFUSED"
	case errors.Is(err, syscall.ECONNRESET):
		return "CONNECTRESET"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "NOROUTE"
	case errors.Is(err, io.EOF):
		return "DONE"
	}
	return "MISC"
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
