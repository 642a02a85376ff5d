package link

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Handler receives the cells of one circuit from a channel.
type Handler interface {
	// HandleCell is called from the channel's read loop with a cell for the
	// handler's circuit ID (including DESTROY). Ownership of c moves to the
	// handler, which must return it to the pool when done. HandleCell must
	// not block: circuits queue internally.
	HandleCell(c *cell.Cell)
	// HandleChannelClosed is called once when the channel dies, with the
	// reason (ErrClosed after Close). No HandleCell call follows it.
	HandleChannelClosed(err error)
}

// maxCircIDTries bounds the search for an unused random circuit ID.
const maxCircIDTries = 64

// ErrNoCircID means no unused circuit ID was found.
var ErrNoCircID = errors.New("no free circuit ID")

// Channel is an open link to a relay. Its methods are safe for concurrent
// use.
type Channel struct {
	conn    net.Conn
	r       *cell.Reader
	w       *cell.Writer
	id      Identity
	version int
	skew    time.Duration
	myAddr  netip.Addr
	addr    string
	log     *torlog.Logger
	pool    *cell.Pool

	sendq   chan *cell.Cell
	stopRd  context.CancelFunc // ends the read loop's wait for a free cell
	closing chan struct{}      // closed when the channel starts dying
	done    chan struct{}      // closed when the loops have ended and handlers were told
	loops   sync.WaitGroup

	mu       lock.Mutex
	circs    map[uint32]Handler
	err      error
	dead     bool
	failOnce sync.Once
}

func newChannel(conn net.Conn, r *cell.Reader, w *cell.Writer, id Identity, version int, skew time.Duration, myAddr netip.Addr, cfg Config, addr string) *Channel {
	q := cfg.SendQueue
	if q <= 0 {
		q = 64
	}
	ch := &Channel{
		conn: conn, r: r, w: w, id: id, version: version, skew: skew, myAddr: myAddr,
		addr: addr, log: cfg.Log, pool: cfg.Pool,
		sendq:   make(chan *cell.Cell, q),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		circs:   make(map[uint32]Handler),
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch.stopRd = cancel
	r.SetContext(ctx)
	ch.loops.Add(2)
	go ch.readLoop()
	go ch.writeLoop()
	go ch.reap()
	return ch
}

// Identity returns the identity the relay proved in the handshake.
func (ch *Channel) Identity() Identity { return ch.id }

// LinkVersion returns the negotiated link protocol version (4 or 5).
func (ch *Channel) LinkVersion() int { return ch.version }

// ClockSkew returns the relay's clock minus ours, from its NETINFO cell
// (zero when it sent no time). Positive means our clock is behind.
func (ch *Channel) ClockSkew() time.Duration { return ch.skew }

// ObservedAddr returns our address as the relay saw it (its NETINFO
// "other address"), or the zero Addr.
func (ch *Channel) ObservedAddr() netip.Addr { return ch.myAddr }

// RemoteAddr returns the relay's address.
func (ch *Channel) RemoteAddr() string { return ch.addr }

// Done is closed once the channel is dead, its goroutines have ended and
// every handler has been told.
func (ch *Channel) Done() <-chan struct{} { return ch.done }

// Err returns why the channel died, or nil while it is open.
func (ch *Channel) Err() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.err
}

// Close closes the channel. Handlers get HandleChannelClosed(ErrClosed).
// Close does not wait for the goroutines to end; see Done.
func (ch *Channel) Close() error {
	ch.fail(ErrClosed)
	return nil
}

// fail kills the channel with err (the first error wins).
func (ch *Channel) fail(err error) {
	ch.failOnce.Do(func() {
		ch.mu.Lock()
		ch.err = err
		ch.dead = true
		ch.mu.Unlock()
		close(ch.closing)
		ch.stopRd()
		ch.conn.Close()
		if !errors.Is(err, ErrClosed) {
			ch.log.Infof("Channel to %s at %s closed: %v", ch.id, ch.addr, err)
		}
	})
}

// reap waits for the loops to end, then tells the handlers.
func (ch *Channel) reap() {
	ch.loops.Wait()
	ch.mu.Lock()
	circs := ch.circs
	ch.circs = nil
	err := ch.err
	ch.mu.Unlock()
	for _, h := range circs {
		h.HandleChannelClosed(err)
	}
	close(ch.done)
}

// OpenCircuit registers h under a new, random, unused circuit ID with the
// most significant bit set, as a client must on link protocol 4 and later
// (tor-spec 5.1.1), and returns the ID.
func (ch *Channel) OpenCircuit(h Handler) (uint32, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead {
		return 0, errfmt.Errorf("opening circuit on channel to %s: %w", ch.id, ErrClosed)
	}
	var b [4]byte
	for range maxCircIDTries {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, errfmt.Errorf("choosing circuit ID: %w", err)
		}
		id := binary.BigEndian.Uint32(b[:]) | 0x80000000
		if _, used := ch.circs[id]; !used {
			ch.circs[id] = h
			return id, nil
		}
	}
	return 0, errfmt.Errorf("opening circuit on channel to %s: %w", ch.id, ErrNoCircID)
}

// CloseCircuit unregisters the circuit id; later cells for it are dropped.
// It sends nothing: the circuit sends its own DESTROY.
func (ch *Channel) CloseCircuit(id uint32) {
	ch.mu.Lock()
	delete(ch.circs, id)
	ch.mu.Unlock()
}

// NumCircuits returns the number of registered circuits.
func (ch *Channel) NumCircuits() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.circs)
}

// Send queues c for writing; ownership moves to the channel, which returns
// c to the pool once written (or on failure). Send blocks while the send
// queue is full, and fails once the channel is dead.
func (ch *Channel) Send(c *cell.Cell) error {
	if cell.IsVariable(c.Command) {
		ch.pool.Put(c)
		return errfmt.Errorf("sending %s on channel to %s: not a fixed-size command", c.Command, ch.id)
	}
	select {
	case <-ch.closing:
		ch.pool.Put(c)
		return errfmt.Errorf("sending on channel to %s: %w", ch.id, ch.Err())
	default:
	}
	select {
	case ch.sendq <- c:
		select {
		case <-ch.closing:
			// The write loop may have drained the queue already:
			// return whatever is left to the pool.
			ch.drain()
			return errfmt.Errorf("sending on channel to %s: %w", ch.id, ch.Err())
		default:
			return nil
		}
	case <-ch.closing:
		ch.pool.Put(c)
		return errfmt.Errorf("sending on channel to %s: %w", ch.id, ch.Err())
	}
}

// writeLoop writes queued cells, flushing whenever the queue runs dry.
func (ch *Channel) writeLoop() {
	defer ch.loops.Done()
	defer ch.drain()
	for {
		var c *cell.Cell
		select {
		case c = <-ch.sendq:
		case <-ch.closing:
			return
		}
		err := ch.w.WriteCell(c)
		ch.pool.Put(c)
		if err == nil && len(ch.sendq) == 0 {
			err = ch.w.Flush()
		}
		if err != nil {
			ch.fail(errfmt.Errorf("writing to %s: %w", ch.addr, err))
			return
		}
	}
}

// drain returns unsent cells to the pool.
func (ch *Channel) drain() {
	for {
		select {
		case c := <-ch.sendq:
			ch.pool.Put(c)
		default:
			return
		}
	}
}

// readLoop reads cells and dispatches them to circuits. It is where
// inbound back-pressure happens: ReadCell takes each fixed-size cell from
// the pool with GetInbound, which waits while the pool is at its inbound
// limit; meanwhile nothing is read, the socket's buffers fill and TCP
// stops the relay (see the package comment of tor/cell).
func (ch *Channel) readLoop() {
	defer ch.loops.Done()
	for {
		c, v, err := ch.r.ReadCell()
		if err != nil {
			ch.fail(errfmt.Errorf("reading from %s: %w", ch.addr, err))
			return
		}
		if v != nil {
			// VPADDING is ignored; no other variable-length cell is
			// expected after the handshake.
			if v.Command != cell.VPadding {
				ch.log.Debugf("Ignoring %s from %s after the handshake", v, ch.addr)
			}
			continue
		}
		ch.dispatch(c)
	}
}

func (ch *Channel) dispatch(c *cell.Cell) {
	switch c.Command {
	case cell.Padding:
		ch.pool.Put(c)
		return
	case cell.Netinfo, cell.PaddingNegotiate, cell.Create, cell.Create2, cell.CreateFast:
		// Not for a client: a relay does not create circuits to us.
		ch.log.Debugf("Dropping %s from %s", c, ch.addr)
		ch.pool.Put(c)
		return
	}
	ch.mu.Lock()
	h := ch.circs[c.CircID]
	ch.mu.Unlock()
	if h == nil {
		ch.log.Debugf("Dropping %s from %s: unknown circuit", c, ch.addr)
		ch.pool.Put(c)
		return
	}
	h.HandleCell(c)
}
