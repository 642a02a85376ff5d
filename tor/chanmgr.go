package tor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"tinytor/tor/circuit"
	"tinytor/tor/link"
)

// chanManager keeps at most one open channel per relay identity and
// shares it between circuits (tor-spec 2: one connection per relay pair).
type chanManager struct {
	c *Client

	mu      sync.Mutex
	open    map[[20]byte]*link.Channel
	pending map[[20]byte]*pendingDial
}

type pendingDial struct {
	done chan struct{}
	ch   *link.Channel
	err  error
}

func newChanManager(c *Client) *chanManager {
	return &chanManager{c: c, open: map[[20]byte]*link.Channel{}, pending: map[[20]byte]*pendingDial{}}
}

// get returns an open channel to the relay with identity id at addr,
// dialing one if there is none. Concurrent callers for one relay share a
// single dial.
func (m *chanManager) get(ctx context.Context, addr netip.AddrPort, id link.Identity, nickname string) (*link.Channel, error) {
	m.mu.Lock()
	if ch := m.open[id.RSA]; ch != nil {
		select {
		case <-ch.Done():
			delete(m.open, id.RSA)
		default:
			m.mu.Unlock()
			return ch, nil
		}
	}
	if p := m.pending[id.RSA]; p != nil {
		m.mu.Unlock()
		select {
		case <-p.done:
			return p.ch, p.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p := &pendingDial{done: make(chan struct{})}
	m.pending[id.RSA] = p
	m.mu.Unlock()

	p.ch, p.err = m.dial(ctx, addr, id, nickname)
	m.mu.Lock()
	delete(m.pending, id.RSA)
	if p.err == nil {
		m.open[id.RSA] = p.ch
	}
	m.mu.Unlock()
	close(p.done)
	return p.ch, p.err
}

// closeAll closes every open channel (on shutdown).
func (m *chanManager) closeAll() {
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

// count returns the number of open channels.
func (m *chanManager) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.open)
}

// circChannel lets a *link.Channel carry circuits: circuit.Handler and
// link.Handler have the same methods but are distinct types.
type circChannel struct{ *link.Channel }

// OpenCircuit registers h for a new circuit ID on the channel.
func (c circChannel) OpenCircuit(h circuit.Handler) (uint32, error) { return c.Channel.OpenCircuit(h) }

// dial opens a channel, counting its bytes and reporting ORCONN events.
func (m *chanManager) dial(ctx context.Context, addr netip.AddrPort, id link.Identity, nickname string) (*link.Channel, error) {
	ev := m.c.events
	info := ChannelInfo{ID: ev.newID(), Relay: RelayRef{ID: id.RSA, Nickname: nickname}, Addr: addr.String(), Status: "LAUNCHED"}
	ev.channel(info)
	fail := func(err error) (*link.Channel, error) {
		info.Status, info.Reason = "FAILED", orconnReason(err)
		ev.channel(info)
		return nil, fmt.Errorf("connecting to relay %s at %s: %w", id, addr, err)
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return fail(err)
	}
	conn := countingConn{Conn: raw, read: &ev.bytesRead, written: &ev.bytesWritten}
	ch, err := link.Client(ctx, conn, id, link.Config{Log: m.c.log, Now: m.c.now, Pool: m.c.pool})
	if err != nil {
		raw.Close()
		return fail(err)
	}
	info.Status = "CONNECTED"
	ev.channel(info)
	if f := m.c.cfg.ObserveNetinfo; f != nil {
		f(ch.ClockSkew())
	}
	go func() {
		<-ch.Done()
		info.Status, info.Reason = "CLOSED", "DONE"
		if err := ch.Err(); err != nil && !errors.Is(err, link.ErrClosed) {
			info.Reason = orconnReason(err)
		}
		ev.channel(info)
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
