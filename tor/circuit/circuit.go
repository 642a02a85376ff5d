// Package circuit builds and uses Tor circuits over a channel (tor-spec 5,
// 6 and 7): CREATE_FAST, ntor and ntor v3 (CREATE2/EXTEND2) handshakes,
// relay cell crypto, circuit- and stream-level flow control with
// authenticated SENDMEs, congestion control (proposal 324, TOR_VEGAS) with
// XON/XOFF stream flow control on hops that negotiate it, and streams
// (BEGIN, BEGIN_DIR, RESOLVE).
//
// # Concurrency
//
// A channel hands inbound cells to Circuit.HandleCell from its read loop.
// HandleCell never blocks: it puts the cell on a bounded per-circuit queue.
// One goroutine per circuit (started when the circuit is created, ended
// when it closes) takes cells from the queue, removes the relay crypto,
// and dispatches them: DATA cells move, without copying, onto the
// destination stream's receive queue, where Read consumes them and returns
// them to the cell pool. The queue bound is safe because a well-behaved
// relay never has more than a circuit window of DATA cells in flight; a
// relay that overflows it violates flow control and the circuit is torn
// down.
//
// # Flow control and memory
//
// Received DATA cells stay pool cells until the stream's reader has
// consumed them, so SENDMEs are what bound the memory a circuit holds. A
// stream SENDME goes out only from Read, once fewer than ten cells wait
// to be read (so a stream holds at most its window, 500 cells). A circuit
// SENDME is withheld while the hop's cells received but not consumed plus
// its delivery window would exceed CircWindowStart: per hop, cells held
// plus cells the relay may still send never exceed 1000. A slow reader
// therefore stops its exit within a window, and the SENDME that was
// withheld goes out (with the digest recorded when its cell arrived,
// tor-spec 7.3) from Read once the reader catches up. Beyond the windows,
// the cell pool's capacity bounds all circuits together (see tor/cell);
// a circuit registers with the pool as a cell.Reclaimer so that readers
// that stopped reading cannot hold the pool forever.
//
// A hop that negotiated congestion control in its ntor v3 handshake (the
// exit, see HopInfo.CongestionControl and cc.go) has no fixed windows:
// its SENDMEs go every sendme_inc cells, what it may send is its own
// congestion window, and the streams use XON/XOFF (flow.go): a stream
// whose unread data passes cc_xoff_client cells sends XOFF, and XON once
// its reader has drained it. The memory bound then comes from XOFF, from
// withholding the hop's circuit SENDMEs while it holds more than
// max(1000, 2*cc_xoff_client) unread cells (which stops the exit within
// its congestion window), and from the pool as above.
//
// Outbound cells are encrypted and handed to the channel under the
// circuit's mutex, so that the order of encryption is the order on the
// wire. Writers waiting for a flow-control window block outside the mutex.
package circuit

import (
	"context"
	crand "crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"

	"tinytor/tor/cell"
	"tinytor/tor/circuit/handshake"
	"tinytor/tor/circuit/relaycrypto"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Handler receives a circuit's cells from its channel.
type Handler interface {
	// HandleCell takes ownership of c. It must not block.
	HandleCell(c *cell.Cell)
	// HandleChannelClosed reports that the channel died.
	HandleChannelClosed(err error)
}

// Channel is what a circuit needs from a link channel (tor/link's
// *Channel provides it).
type Channel interface {
	// OpenCircuit allocates a circuit ID and routes its cells to h.
	OpenCircuit(h Handler) (uint32, error)
	// CloseCircuit forgets the circuit ID.
	CloseCircuit(id uint32)
	// Send queues c for sending; ownership of c moves to the channel.
	Send(c *cell.Cell) error
}

// Flow-control constants (tor-spec 7.3, 7.4).
const (
	CircWindowStart = 1000
	CircWindowInc   = 100
	StreamWindowInc = 50
	// StreamWindowStart is the initial stream-level window.
	StreamWindowStart = 500
	// MaxRelayEarly is the most RELAY_EARLY cells a circuit may send.
	MaxRelayEarly = 8
	// MaxHops is the most hops a circuit may have (RELAY_EARLY limit).
	MaxHops = MaxRelayEarly + 1
)

// Config holds the settings of a circuit. The zero value is usable.
type Config struct {
	// Pool supplies and recycles cells; nil allocates.
	Pool *cell.Pool
	// Log receives circuit events; nil discards them.
	Log *torlog.Logger
	// Rand is the source of key material; nil means crypto/rand.
	Rand io.Reader
	// SendmeAcceptMinVersion is the consensus parameter
	// sendme_accept_min_version (default 0): SENDMEs of a lower version
	// tear the circuit down. Version 1 SENDMEs are always checked.
	SendmeAcceptMinVersion int
	// QueueLen bounds the inbound cell queue; 0 means CircWindowStart+128,
	// or 2*CircWindowStart+128 with CC set (a hop with congestion control
	// may have more than a fixed window of cells in flight).
	QueueLen int
	// CC holds the consensus parameters of congestion and flow control
	// (see CCParamsFrom), used by hops whose HopInfo asks for congestion
	// control; nil means C tor's defaults. Set it on circuits that will
	// ask for congestion control: it also sizes the inbound queue.
	CC *CCParams
	// Control receives recognized relay cells the circuit does not handle
	// itself (onion service cells, for example), on the circuit's
	// goroutine. data is only valid during the call. Nil drops them.
	Control func(hop int, cmd cell.RelayCommand, streamID uint16, data []byte)
}

// ErrClosed is returned by operations on a circuit closed by Close.
var ErrClosed = errors.New("circuit closed")

// ErrProtocol is wrapped by errors that mean a relay broke the protocol.
var ErrProtocol = errors.New("tor protocol violation")

// protocolErr reports a protocol violation: format has one %d (a hop, a
// stream, a count) and the error wraps ErrProtocol.
func protocolErr(format string, n int) error {
	return errfmt.Errorf(format+": %w", n, ErrProtocol)
}

// DestroyedError means the circuit was torn down by the network: a
// DESTROY cell from the first hop, or a RELAY_TRUNCATED from a hop.
type DestroyedError struct {
	Reason    cell.DestroyReason
	Truncated bool // RELAY_TRUNCATED rather than DESTROY
	Hop       int  // hop that sent TRUNCATED (0-based); 0 for DESTROY
}

func (e *DestroyedError) Error() string {
	if e.Truncated {
		return fmt.Sprintf("circuit truncated at hop %d: %s", e.Hop+1, e.Reason)
	}
	return fmt.Sprintf("circuit destroyed: %s", e.Reason)
}

// hop is the client's state for one hop.
type hop struct {
	layer *relaycrypto.Layer
	// Outbound state, guarded by Circuit.mu.
	packageWindow int
	// Digests the next circuit SENDMEs must carry, oldest first: a ring
	// with room for a whole window's worth (one per CircWindowInc cells).
	sentDigests            [CircWindowStart / CircWindowInc][sendmeDigestLen]byte
	sentHead, sentDigestsN int
	pad                    sendPadding // which DATA cells carry random padding
	// Inbound flow control, guarded by Circuit.mu: the delivery window,
	// the DATA cells received and not yet consumed by a reader, and the
	// digests of the cells whose circuit SENDMEs are withheld, oldest
	// first.
	deliverWindow          int
	held                   int
	pendingDigests         [CircWindowStart / CircWindowInc][sendmeDigestLen]byte
	pendHead, pendDigestsN int
	// kh is the hop's KH (derivative key data or ntor nonce), which
	// ESTABLISH_INTRO binds to; zero for hops added with AddHop.
	kh [handshake.HashLen]byte
	// cc is the hop's congestion control, nil if it uses fixed windows.
	// Set before the hop is added; its fields are guarded by Circuit.mu.
	cc *ccState
}

// finisher completes a handshake from the relay's reply.
type finisher interface {
	Finish(reply []byte) (*handshake.KeyMaterial, error)
}

// pendingHop is a handshake waiting for CREATED*/EXTENDED2.
type pendingHop struct {
	hs     finisher
	v3     *ntorV3Finisher // hs, when it is ntor v3 (extensions negotiated)
	name   string          // the relay, for logs
	result chan error      // buffered, 1
}

// ntorV3Finisher adapts an ntor v3 client handshake to finisher: it
// parses the relay's extensions and keeps what they negotiated.
type ntorV3Finisher struct {
	hs    *handshake.NtorV3Client
	req   handshake.NtorV3Request
	reply handshake.NtorV3Reply
}

// Finish implements finisher.
func (f *ntorV3Finisher) Finish(reply []byte) (*handshake.KeyMaterial, error) {
	km, sm, err := f.hs.Finish(reply)
	if err != nil {
		return nil, err
	}
	r, err := handshake.ParseNtorV3Reply(sm, f.req)
	if err != nil {
		km.Zero()
		return nil, err
	}
	f.reply = r
	return km, nil
}

// Circuit is an origin circuit: ours, built hop by hop.
type Circuit struct {
	ch   Channel
	id   uint32
	cfg  Config
	pool *cell.Pool
	log  *torlog.Logger

	inbound    chan *cell.Cell
	done       chan struct{} // closed when the circuit dies
	stopped    chan struct{} // closed when the circuit goroutine has ended
	dead       atomic.Bool
	overflowed atomic.Bool

	mu        lock.Mutex
	err       error  // why the circuit died
	hops      []*hop // appended to under mu; the goroutine reads a snapshot
	path      relaycrypto.Path
	pending   *pendingHop // handshake in progress
	early     int         // RELAY_EARLY cells sent
	streams   map[uint16]*Stream
	nextSID   uint16
	wake      chan struct{}               // closed and replaced when a package window grows
	rng       *rand.ChaCha8               // padding bytes
	extending lock.Mutex                  // one Extend at a time
	accept    func(*Stream, BeginRequest) // set by AcceptStreams; guarded by mu

	// readers are the data streams not yet closed by their owner: their
	// receive queues may hold cells. Guarded by mu.
	readers map[*Stream]struct{}
	// unreclaim removes the circuit from the pool's reclaimers, once it
	// is dead and its readers are all closed. Guarded by mu.
	unreclaim func()

	// ccp are the congestion and flow control parameters (immutable).
	ccp CCParams
	// now is the clock of congestion control, in microseconds (monoUsec;
	// tests replace it). Called with mu held.
	now func() int64
	// Flow control cells sent and received on the circuit's streams.
	// Guarded by mu.
	xoffSent, xonSent, xoffRecv, xonRecv uint64
}

func newCircuit(ch Channel, cfg Config) (*Circuit, error) {
	if cfg.Rand == nil {
		cfg.Rand = crand.Reader
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = CircWindowStart + 128
		if cfg.CC != nil {
			cfg.QueueLen = 2*CircWindowStart + 128
		}
	}
	ccp := DefaultCCParams()
	if cfg.CC != nil {
		ccp = cfg.CC.normalized()
	}
	var seed [32]byte
	if _, err := io.ReadFull(cfg.Rand, seed[:]); err != nil {
		return nil, errfmt.Errorf("circuit: seeding padding generator: %w", err)
	}
	seedSID := uint16(seed[0])<<8 | uint16(seed[1])
	c := &Circuit{
		ch:      ch,
		cfg:     cfg,
		pool:    cfg.Pool,
		log:     cfg.Log,
		inbound: make(chan *cell.Cell, cfg.QueueLen),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		streams: make(map[uint16]*Stream),
		readers: make(map[*Stream]struct{}),
		nextSID: seedSID,
		wake:    make(chan struct{}),
		rng:     rand.NewChaCha8(seed),
		ccp:     ccp,
		now:     monoUsec,
	}
	return c, nil
}

// open registers the circuit on its channel and starts its goroutine.
func (c *Circuit) open() error {
	id, err := c.ch.OpenCircuit(c)
	if err != nil {
		return errfmt.Errorf("circuit: allocating a circuit ID: %w", err)
	}
	c.id = id
	c.mu.Lock()
	if c.err == nil {
		c.unreclaim = c.pool.AddReclaimer(c)
	}
	c.mu.Unlock()
	go c.run()
	return nil
}

// ID returns the circuit ID on the first hop's channel.
func (c *Circuit) ID() uint32 { return c.id }

// Len returns the number of hops built so far.
func (c *Circuit) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.hops)
}

// Done returns a channel closed when the circuit dies.
func (c *Circuit) Done() <-chan struct{} { return c.done }

// Err returns why the circuit died (ErrClosed, a *DestroyedError, an
// error wrapping ErrProtocol or the channel's error), or nil while it
// lives.
func (c *Circuit) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// HandleCell implements Handler. It queues c for the circuit goroutine and
// never blocks.
func (c *Circuit) HandleCell(cl *cell.Cell) {
	if c.dead.Load() {
		c.pool.Put(cl)
		return
	}
	select {
	case c.inbound <- cl:
	default:
		c.pool.Put(cl)
		// Do the teardown elsewhere: HandleCell must not block on the
		// channel's Send.
		if c.overflowed.CompareAndSwap(false, true) {
			go c.fail(protocolErr("inbound queue of %d cells overflowed", cap(c.inbound)))
		}
	}
}

// HandleChannelClosed implements Handler.
func (c *Circuit) HandleChannelClosed(err error) {
	if err == nil {
		err = errors.New("channel closed")
	}
	c.shutdown(errfmt.Errorf("circuit: channel closed: %w", err), false, false)
}

// Close tears the circuit down with a DESTROY cell. Streams on it fail.
func (c *Circuit) Close() error {
	c.shutdown(ErrClosed, true, true)
	return nil
}

// fail tears the circuit down after a local or protocol error.
func (c *Circuit) fail(err error) {
	c.log.Infof("Tearing down circuit %d: %v", c.id, err)
	c.shutdown(err, true, true)
}

// shutdown kills the circuit once. sendDestroy sends a DESTROY (reason
// NONE, as an origin must); unregister frees the circuit ID.
func (c *Circuit) shutdown(err error, sendDestroy, unregister bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.dead.Store(true)
	if sendDestroy {
		d := c.pool.Get()
		d.CircID = c.id
		d.Command = cell.Destroy
		cell.MarshalDestroy(&d.Payload, cell.DestroyNone)
		_ = c.ch.Send(d) // the circuit is gone either way
	}
	streams := c.streams
	c.streams = map[uint16]*Stream{}
	if p := c.pending; p != nil {
		c.pending = nil
		p.result <- err
	}
	close(c.wake)
	close(c.done)
	c.unreclaimIfDoneLocked()
	c.mu.Unlock()
	if unregister {
		c.ch.CloseCircuit(c.id)
	}
	for _, s := range streams {
		s.remoteClosed(err)
	}
}

// run is the circuit goroutine: it processes inbound cells until the
// circuit dies.
func (c *Circuit) run() {
	defer close(c.stopped)
	defer func() {
		for {
			select {
			case cl := <-c.inbound:
				c.pool.Put(cl)
			default:
				return
			}
		}
	}()
	for {
		select {
		case <-c.done:
			return
		case cl := <-c.inbound:
			if err := c.handle(cl); err != nil {
				c.fail(err)
				return
			}
		}
	}
}

// handle processes one inbound cell; it owns cl.
func (c *Circuit) handle(cl *cell.Cell) error {
	switch cl.Command {
	case cell.Destroy:
		reason, _ := cell.ParseDestroy(cl.Payload[:])
		c.pool.Put(cl)
		c.log.Infof("Circuit %d destroyed by the first hop: %s", c.id, reason)
		c.shutdown(&DestroyedError{Reason: reason}, false, true)
		return nil
	case cell.CreatedFast, cell.Created2:
		defer c.pool.Put(cl)
		return c.handleCreated(cl)
	case cell.Relay:
		return c.handleRelay(cl)
	case cell.RelayEarly:
		c.pool.Put(cl)
		return errfmt.Errorf("inbound RELAY_EARLY cell: %w", ErrProtocol)
	case cell.Padding:
		c.pool.Put(cl)
		return nil
	}
	cmd := cl.Command
	c.pool.Put(cl)
	return errfmt.Errorf("unexpected %s cell on a circuit: %w", cmd, ErrProtocol)
}

func (c *Circuit) takePending() *pendingHop {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending
	c.pending = nil
	return p
}

func (c *Circuit) handleCreated(cl *cell.Cell) error {
	p := c.takePending()
	if hops, _ := c.snapshot(); p == nil || len(hops) != 0 {
		return errfmt.Errorf("unexpected %s cell: %w", cl.Command, ErrProtocol)
	}
	var reply []byte
	switch cl.Command {
	case cell.CreatedFast:
		reply = cl.Payload[:2*handshake.HashLen]
	case cell.Created2:
		m, err := cell.ParseCreated2(cl.Payload[:])
		if err != nil {
			p.result <- errfmt.Errorf("CREATED2: %w", err)
			return errfmt.Errorf("bad CREATED2: %v: %w", err, ErrProtocol)
		}
		reply = m.HandshakeData
	}
	return c.finishHop(p, reply)
}

// finishHop completes a handshake and adds the hop; it runs on the
// circuit goroutine.
func (c *Circuit) finishHop(p *pendingHop, reply []byte) error {
	km, err := p.hs.Finish(reply)
	if err != nil {
		p.result <- err
		return errfmt.Errorf("handshake with a new hop: %v: %w", err, ErrProtocol)
	}
	l := relaycrypto.NewTor1(km)
	h := &hop{layer: l, packageWindow: CircWindowStart, deliverWindow: CircWindowStart, kh: km.KH}
	km.Zero()
	if p.v3 != nil && p.v3.reply.CongestionControl {
		// Proposal 324 10.5: a sendme_inc beyond a factor of two of the
		// consensus value closes the circuit.
		inc := p.v3.reply.SendmeInc
		if !handshake.SendmeIncAcceptable(inc, c.ccp.SendmeInc) {
			err := errfmt.Errorf("%s offered congestion control with sendme_inc %d, consensus cc_sendme_inc is %d: %w", p.name, inc, c.ccp.SendmeInc, ErrProtocol)
			p.result <- err
			return err
		}
		h.cc = newCCState(c.ccp, inc)
		c.log.Infof("Circuit %d: congestion control negotiated with %s: sendme_inc %d", c.id, p.name, inc)
	} else if p.v3 != nil && p.v3.req.CongestionControl {
		c.log.Infof("Circuit %d: %s did not accept congestion control; using fixed windows", c.id, p.name)
	}
	c.mu.Lock()
	c.hops = append(c.hops, h)
	c.path.Add(l)
	c.mu.Unlock()
	p.result <- nil
	return nil
}

// handleRelay decrypts a RELAY cell and dispatches it.
func (c *Circuit) handleRelay(cl *cell.Cell) error {
	hops, path := c.snapshot()
	hopIdx, err := path.Decrypt(&cl.Payload)
	if err != nil {
		c.pool.Put(cl)
		return errfmt.Errorf("%v: %w", err, ErrProtocol)
	}
	h := hops[hopIdx]
	cmd := cell.RelayCmd(&cl.Payload)
	sid := cell.RelayStreamID(&cl.Payload)
	body, err := cell.RelayBody(&cl.Payload)
	if err != nil {
		c.pool.Put(cl)
		return errfmt.Errorf("relay cell from hop %d: %v: %w", hopIdx+1, err, ErrProtocol)
	}
	if cmd == cell.RelayData {
		if err := c.received(hopIdx, h); err != nil {
			c.pool.Put(cl)
			return err
		}
		if sid == 0 {
			c.pool.Put(cl)
			return errfmt.Errorf("DATA cell on stream 0: %w", ErrProtocol)
		}
		s := c.stream(sid, hopIdx)
		if s == nil {
			c.pool.Put(cl) // a stream we closed: drop
			return c.consumed(hopIdx, 1)
		}
		return s.deliver(cl, len(body))
	}
	defer c.pool.Put(cl)
	switch cmd {
	case cell.RelaySendme:
		if sid == 0 {
			return c.handleCircSendme(hopIdx, body)
		}
		if s := c.stream(sid, hopIdx); s != nil {
			return s.handleSendme()
		}
		return nil
	case cell.RelayEnd, cell.RelayConnected, cell.RelayResolved:
		if sid == 0 {
			return errfmt.Errorf("%s on stream 0: %w", cmd, ErrProtocol)
		}
		if s := c.stream(sid, hopIdx); s != nil {
			return s.handleControl(cmd, body)
		}
		return nil
	case cell.RelayExtended2:
		p := c.takePending()
		if p == nil || hopIdx != len(hops)-1 {
			return protocolErr("unexpected EXTENDED2 from hop %d", hopIdx+1)
		}
		m, err := cell.ParseCreated2(body)
		if err != nil {
			p.result <- errfmt.Errorf("EXTENDED2: %w", err)
			return errfmt.Errorf("bad EXTENDED2: %v: %w", err, ErrProtocol)
		}
		return c.finishHop(p, m.HandshakeData)
	case cell.RelayTruncated:
		var reason cell.DestroyReason
		if len(body) > 0 {
			reason = cell.DestroyReason(body[0])
		}
		c.log.Infof("Circuit %d truncated at hop %d: %s", c.id, hopIdx+1, reason)
		// tor-spec 5.4: an OP answers TRUNCATED by destroying the circuit.
		c.shutdown(&DestroyedError{Reason: reason, Truncated: true, Hop: hopIdx}, true, true)
		return nil
	case cell.RelayDrop:
		return nil
	case relayXoff, relayXon:
		// C tor ignores them on unknown streams.
		if s := c.stream(sid, hopIdx); s != nil && sid != 0 {
			if cmd == relayXoff {
				s.handleXoff(body)
			} else {
				s.handleXon(body)
			}
		}
		return nil
	case cell.RelayBegin:
		if acc := c.acceptor(); acc != nil && hopIdx == len(hops)-1 {
			return c.acceptBegin(acc, hopIdx, sid, body)
		}
	case cell.RelayBeginDir:
		if acc := c.acceptor(); acc != nil && hopIdx == len(hops)-1 {
			return c.refuseBeginDir(hopIdx, sid)
		}
	}
	if c.cfg.Control != nil {
		c.cfg.Control(hopIdx, cmd, sid, body)
	}
	return nil
}

// received accounts for a DATA cell from hop h (index hopIdx), just
// decrypted, which is held until consumed: it takes one from the delivery
// window and, when the cell completes an increment of the window, records
// its digest for the authenticated circuit SENDME that answers it
// (tor-spec 7.3). The SENDME goes out now if the hop's held cells allow,
// or later from consumed.
func (c *Circuit) received(hopIdx int, h *hop) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := h.cc; cc != nil {
		// With congestion control the relay's window is its cwnd, which
		// we do not know: a SENDME for every sendmeInc cells, with the
		// digest of the last (C tor's circuit_sendme_cell_is_next).
		h.held++
		cc.recvCount++
		if cc.recvCount == cc.sendmeInc {
			cc.recvCount = 0
			h.layer.BackwardDigest(&cc.pend.tail().digest)
		}
		return c.grantLocked(hopIdx, h)
	}
	h.deliverWindow--
	if h.deliverWindow < 0 {
		return protocolErr("hop %d overran the circuit window", hopIdx+1)
	}
	h.held++
	if h.deliverWindow%CircWindowInc == 0 {
		// The window moves by -1 per cell and +CircWindowInc per
		// SENDME from a start that is a multiple of CircWindowInc:
		// this is the 100th, 200th... cell, the one the relay expects
		// the SENDME's digest of. At most a window's worth of digests
		// is pending, so the ring cannot overflow.
		i := (h.pendHead + h.pendDigestsN) % len(h.pendingDigests)
		h.layer.BackwardDigest(&h.pendingDigests[i])
		h.pendDigestsN++
	}
	return c.grantLocked(hopIdx, h)
}

// consumed records that n DATA cells from hop hopIdx were consumed (read,
// or dropped), and sends the circuit SENDMEs that this allows.
func (c *Circuit) consumed(hopIdx, n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.consumedLocked(hopIdx, n)
}

// consumedLocked is consumed with c.mu held.
func (c *Circuit) consumedLocked(hopIdx, n int) error {
	if n == 0 {
		return nil
	}
	h := c.hops[hopIdx]
	h.held -= n
	if c.err != nil {
		return nil
	}
	return c.grantLocked(hopIdx, h)
}

// grantLocked sends the withheld circuit SENDMEs to hop h that keep the
// cells it may send plus the cells held for readers within
// CircWindowStart. c.mu must be held.
func (c *Circuit) grantLocked(hopIdx int, h *hop) error {
	if cc := h.cc; cc != nil {
		// Withheld only while the hop holds more than the hold limit of
		// unread cells: flow control (XOFF) normally acts first.
		limit := c.ccp.holdLimit()
		for cc.pend.size > 0 && h.held <= limit {
			var msg [3 + sendmeDigestLen]byte
			msg[0] = 1
			msg[2] = sendmeDigestLen
			d := cc.pend.pop()
			copy(msg[3:], d.digest[:])
			if err := c.sendLocked(hopIdx, cell.RelaySendme, 0, msg[:], false); err != nil {
				return err
			}
		}
		return nil
	}
	for h.pendDigestsN > 0 && h.deliverWindow+CircWindowInc+h.held <= CircWindowStart {
		var msg [3 + sendmeDigestLen]byte
		msg[0] = 1 // version 1: authenticated
		msg[2] = sendmeDigestLen
		copy(msg[3:], h.pendingDigests[h.pendHead][:])
		h.pendHead = (h.pendHead + 1) % len(h.pendingDigests)
		h.pendDigestsN--
		h.deliverWindow += CircWindowInc
		if err := c.sendLocked(hopIdx, cell.RelaySendme, 0, msg[:], false); err != nil {
			return err
		}
	}
	return nil
}

// unreclaimIfDoneLocked leaves the pool's reclaimers once the circuit is
// dead and no stream can hold cells any more. c.mu must be held.
func (c *Circuit) unreclaimIfDoneLocked() {
	if c.err != nil && len(c.readers) == 0 && c.unreclaim != nil {
		c.unreclaim()
		c.unreclaim = nil
	}
}

// HeldCells implements cell.Reclaimer: the DATA cells received on the
// circuit and not yet consumed by the streams' readers.
func (c *Circuit) HeldCells() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, h := range c.hops {
		n += h.held
	}
	return n
}

// Reclaim implements cell.Reclaimer: it ends the stream with the most
// unread cells with ErrReclaimed, returning its cells to the pool.
func (c *Circuit) Reclaim() {
	c.mu.Lock()
	streams := make([]*Stream, 0, len(c.readers))
	for s := range c.readers {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	var worst *Stream
	most := 0
	for _, s := range streams {
		s.mu.Lock()
		n := s.recv.len()
		s.mu.Unlock()
		if n > most {
			worst, most = s, n
		}
	}
	if worst == nil {
		return
	}
	c.log.Noticef("Cell pool full and no reader making progress: closing stream %d on circuit %d, whose reader left %d cells unread.", worst.id, c.id, most)
	worst.reclaim()
}

// snapshot returns the hops and path as they are now. The circuit
// goroutine uses a snapshot per cell: hops are only ever appended, and the
// inbound half of each hop's state belongs to that goroutine.
func (c *Circuit) snapshot() ([]*hop, relaycrypto.Path) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hops, c.path
}

// stream returns the stream sid if it belongs to hop h.
func (c *Circuit) stream(sid uint16, h int) *Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[sid]
	if s == nil || s.hop != h {
		return nil
	}
	return s
}

func (c *Circuit) handleCircSendme(hopIdx int, body []byte) error {
	version, digest, err := parseSendme(body)
	if err != nil {
		return errfmt.Errorf("circuit SENDME from hop %d: %v: %w", hopIdx+1, err, ErrProtocol)
	}
	if int(version) < c.cfg.SendmeAcceptMinVersion {
		return errfmt.Errorf("circuit SENDME version %d below the accepted minimum %d: %w", version, c.cfg.SendmeAcceptMinVersion, ErrProtocol)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hops[hopIdx]
	if cc := h.cc; cc != nil {
		if cc.sent.size == 0 {
			return protocolErr("unexpected circuit SENDME from hop %d", hopIdx+1)
		}
		m := cc.sent.pop()
		if version == 1 && subtle.ConstantTimeCompare(m.digest[:], digest) != 1 {
			return protocolErr("circuit SENDME from hop %d carries the wrong digest", hopIdx+1)
		}
		ss := cc.inSlowStart
		cc.onSendme(c.now(), m.at, c.activeLocked(hopIdx))
		if ss && !cc.inSlowStart {
			c.log.Infof("Circuit %d: congestion control (TOR_VEGAS) left slow start: cwnd %d cells, RTT min %d ms, ewma %d ms, BDP %d cells",
				c.id, cc.cwnd, cc.minRTT/1000, cc.ewmaRTT/1000, cc.bdpCwnd)
		}
		c.wakeLocked()
		return nil
	}
	if h.sentDigestsN == 0 || h.packageWindow+CircWindowInc > CircWindowStart {
		return protocolErr("unexpected circuit SENDME from hop %d", hopIdx+1)
	}
	want := h.sentDigests[h.sentHead]
	h.sentHead = (h.sentHead + 1) % len(h.sentDigests)
	h.sentDigestsN--
	if version == 1 && subtle.ConstantTimeCompare(want[:], digest) != 1 {
		return protocolErr("circuit SENDME from hop %d carries the wrong digest", hopIdx+1)
	}
	h.packageWindow += CircWindowInc
	c.wakeLocked()
	return nil
}

// activeLocked reports whether streams on hop hopIdx may still have data
// to send (C tor's circuit_has_active_streams: an open stream that has not
// reached EOF). c.mu must be held.
func (c *Circuit) activeLocked(hopIdx int) bool {
	for _, s := range c.streams {
		if s.hop == hopIdx && s.kind == kindData && !s.sentEnd && s.writeErr == nil {
			return true
		}
	}
	return false
}

// wakeLocked wakes every writer waiting for a window. c.mu must be held.
func (c *Circuit) wakeLocked() {
	if c.err != nil {
		return
	}
	close(c.wake)
	c.wake = make(chan struct{})
}

// sendControl sends a relay cell that is not DATA.
func (c *Circuit) sendControl(hopIdx int, cmd cell.RelayCommand, sid uint16, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendLocked(hopIdx, cmd, sid, data, false)
}

// sendLocked encrypts one relay cell for hop hopIdx and hands it to the
// channel. c.mu must be held.
func (c *Circuit) sendLocked(hopIdx int, cmd cell.RelayCommand, sid uint16, data []byte, early bool) error {
	if c.err != nil {
		return c.err
	}
	return c.sendCellLocked(c.pool.Get(), hopIdx, cmd, sid, data, early)
}

// sendCellLocked is sendLocked with the cell to send in, taken from the
// pool by the caller (who may wait for it without holding c.mu);
// ownership of cl moves to sendCellLocked. c.mu must be held.
func (c *Circuit) sendCellLocked(cl *cell.Cell, hopIdx int, cmd cell.RelayCommand, sid uint16, data []byte, early bool) error {
	if c.err != nil {
		c.pool.Put(cl)
		return c.err
	}
	if hopIdx < 0 || hopIdx >= len(c.hops) {
		c.pool.Put(cl)
		return errfmt.Errorf("circuit: no hop %d on a %d-hop circuit", hopIdx+1, len(c.hops))
	}
	if err := cell.SetRelay(&cl.Payload, cmd, sid, data); err != nil {
		c.pool.Put(cl)
		return errfmt.Errorf("circuit: %w", err)
	}
	// Padding: four zero bytes, then random bytes (tor-spec 6.1).
	if pad := cl.Payload[cell.RelayHeaderLen+len(data):]; len(pad) > 4 {
		clear(pad[:4])
		c.rng.Read(pad[4:])
	} else {
		clear(pad)
	}
	if err := c.path.Encrypt(&cl.Payload, hopIdx); err != nil {
		c.pool.Put(cl)
		return err
	}
	if h := c.hops[hopIdx]; cmd == cell.RelayData && h.cc != nil {
		if h.cc.sendmeExpected() {
			m := h.cc.sent.tail()
			h.layer.ForwardDigest(&m.digest)
			m.at = c.now()
		}
		h.cc.inflight++
	} else if cmd == cell.RelayData {
		if (h.packageWindow-1)%CircWindowInc == 0 {
			// The hop answers this cell with a SENDME carrying the
			// digest as it stands now (tor-spec 7.3).
			// At most one digest per CircWindowInc cells of the window
			// is outstanding, so the ring cannot overflow.
			i := (h.sentHead + h.sentDigestsN) % len(h.sentDigests)
			h.layer.ForwardDigest(&h.sentDigests[i])
			h.sentDigestsN++
		}
		h.packageWindow--
	}
	cl.CircID = c.id
	cl.Command = cell.Relay
	if early {
		cl.Command = cell.RelayEarly
		c.early++
	}
	if err := c.ch.Send(cl); err != nil {
		return errfmt.Errorf("circuit %d: sending %s: %w", c.id, cmd, err)
	}
	return nil
}

// SendRelay sends a relay cell that is not DATA (an onion service
// command, for example) to hop hopIdx (0-based; -1 means the last hop).
func (c *Circuit) SendRelay(hopIdx int, cmd cell.RelayCommand, streamID uint16, data []byte) error {
	if cmd == cell.RelayData {
		return errors.New("circuit: SendRelay cannot send DATA cells; use a Stream")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hopIdx < 0 {
		hopIdx = len(c.hops) - 1
	}
	return c.sendLocked(hopIdx, cmd, streamID, data, false)
}

// AddHop appends a hop whose keys were agreed outside the circuit (the
// virtual hop of an onion service rendezvous). It must not be called
// while relay cells from the new hop may already be arriving.
func (c *Circuit) AddHop(l *relaycrypto.Layer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if len(c.hops) >= MaxHops {
		return errfmt.Errorf("circuit: already %d hops", len(c.hops))
	}
	c.hops = append(c.hops, &hop{layer: l, packageWindow: CircWindowStart, deliverWindow: CircWindowStart})
	c.path.Add(l)
	return nil
}

// waitPending waits for the handshake p started.
func (c *Circuit) waitPending(ctx context.Context, p *pendingHop) error {
	select {
	case err := <-p.result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
