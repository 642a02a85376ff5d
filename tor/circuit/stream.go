package circuit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
)

// StreamEndError is returned by Read (and by opening a stream) when the
// other end closed the stream with a RELAY_END whose reason is not DONE.
type StreamEndError struct {
	Reason cell.EndReason
}

func (e *StreamEndError) Error() string {
	return fmt.Sprintf("stream closed by the exit: %s", e.Reason)
}

// ErrReclaimed is returned by Read and Write on a stream that the circuit
// closed to give its unread cells back to a full cell pool, after no
// reader had made progress for the pool's stall timeout (see
// cell.Reclaimer).
var ErrReclaimed = errors.New("stream closed: the cell pool was full and its reader had stopped reading")

// ResolveError is returned by Resolve when the exit answers with an error.
type ResolveError struct {
	Host      string
	Transient bool
}

func (e *ResolveError) Error() string {
	kind := "permanent"
	if e.Transient {
		kind = "transient"
	}
	return fmt.Sprintf("resolving %q: %s error at the exit", e.Host, kind)
}

// Addr is the address of one end of a stream.
type Addr string

// Network returns "tor".
func (Addr) Network() string { return "tor" }

func (a Addr) String() string { return string(a) }

// streamKind is what a stream was opened for.
type streamKind uint8

const (
	kindData streamKind = iota
	kindResolve
)

// openResult is the answer to BEGIN, BEGIN_DIR or RESOLVE.
type openResult struct {
	connected Connected
	answers   []Answer
	err       error
}

// Stream is a stream on a circuit. It implements net.Conn.
//
// Read returns io.EOF after the other end sent END with reason DONE, and
// a *StreamEndError after any other reason.
type Stream struct {
	c      *Circuit
	id     uint16
	hop    int
	kind   streamKind
	remote Addr
	opened chan openResult // buffered, 1; answer to the opening cell
	// incoming is set for streams the other end opened (AcceptStreams):
	// they end with reason DONE, as an exit's do.
	incoming bool
	// fc is set for streams on a hop with congestion control: XON/XOFF
	// flow control instead of stream windows (see flow.go).
	fc bool

	// Guarded by c.mu.
	packageWindow int
	sentEnd       bool  // we sent END (Close or CloseWrite)
	writeErr      error // set when the stream ended; writes fail with it
	fs            flowSend

	// Guarded by mu.
	mu            lock.Mutex
	recv          cellRing // received DATA cells, oldest first
	off           int      // bytes of the oldest cell's data already read
	qbytes        uint64   // unread bytes in recv
	fr            flowRecv
	deliverWindow int
	isOpen        bool          // CONNECTED received
	readErr       error         // returned once recv is drained
	closed        bool          // Close was called
	rnotify       chan struct{} // capacity 1: data arrived
	rdone         chan struct{} // closed once reads can end (error or Close)
	rdoneClosed   bool
	connected     Connected

	rdl, wdl deadline
}

// newStream registers a stream to the last hop. c.mu must be held.
func (c *Circuit) newStreamLocked(kind streamKind, remote string) (*Stream, error) {
	if c.err != nil {
		return nil, c.err
	}
	if len(c.hops) == 0 {
		return nil, errors.New("circuit: no hops")
	}
	if len(c.streams) >= 0xfffe {
		return nil, errors.New("circuit: no free stream IDs")
	}
	for {
		c.nextSID++
		if c.nextSID != 0 && c.streams[c.nextSID] == nil {
			break
		}
	}
	s := &Stream{
		c:             c,
		id:            c.nextSID,
		hop:           len(c.hops) - 1,
		fc:            c.hops[len(c.hops)-1].cc != nil,
		kind:          kind,
		remote:        Addr(remote),
		opened:        make(chan openResult, 1),
		packageWindow: StreamWindowStart,
		deliverWindow: StreamWindowStart,
		rnotify:       make(chan struct{}, 1),
		rdone:         make(chan struct{}),
	}
	s.rdl.init()
	s.wdl.init()
	c.streams[s.id] = s
	if kind == kindData {
		c.readers[s] = struct{}{}
	}
	return s, nil
}

// begin registers a stream, sends its opening cell and waits for the
// answer.
func (c *Circuit) begin(ctx context.Context, kind streamKind, remote string, cmd cell.RelayCommand, data []byte) (*Stream, openResult, error) {
	c.mu.Lock()
	s, err := c.newStreamLocked(kind, remote)
	if err == nil {
		err = c.sendLocked(s.hop, cmd, s.id, data, false)
		if err != nil {
			delete(c.streams, s.id)
		}
	}
	c.mu.Unlock()
	if err != nil {
		return nil, openResult{}, err
	}
	select {
	case r := <-s.opened:
		if r.err != nil {
			s.forget()
			s.release()
			return nil, r, r.err
		}
		return s, r, nil
	case <-ctx.Done():
		s.Close()
		return nil, openResult{}, ctx.Err()
	}
}

// OpenDirStream opens a directory stream (BEGIN_DIR) to the last hop
// (tor-spec 6.2.1).
func (c *Circuit) OpenDirStream(ctx context.Context) (*Stream, error) {
	s, _, err := c.begin(ctx, kindData, "dir", cell.RelayBeginDir, nil)
	if err != nil {
		return nil, errfmt.Errorf("circuit %d: BEGIN_DIR: %w", c.id, err)
	}
	return s, nil
}

// OpenStream opens a stream from the last hop (an exit) to host:port
// (tor-spec 6.2). host is a DNS name or an IP address, or empty for a
// stream to an onion service (the virtual last hop).
func (c *Circuit) OpenStream(ctx context.Context, host string, port uint16, flags BeginFlags) (*Stream, error) {
	body, err := encodeBegin(host, port, flags)
	if err != nil {
		return nil, errfmt.Errorf("circuit: %w", err)
	}
	remote := net.JoinHostPort(host, strconv.Itoa(int(port)))
	s, _, err := c.begin(ctx, kindData, remote, cell.RelayBegin, body)
	if err != nil {
		return nil, errfmt.Errorf("circuit %d: BEGIN %s: %w", c.id, remote, err)
	}
	return s, nil
}

// Resolve asks the last hop to resolve host (tor-spec 6.4).
func (c *Circuit) Resolve(ctx context.Context, host string) ([]Answer, error) {
	if host == "" || len(host) > cell.RelayDataLen-1 {
		return nil, errfmt.Errorf("circuit: cannot resolve a host name of %d bytes", len(host))
	}
	body := append([]byte(host), 0)
	_, r, err := c.begin(ctx, kindResolve, host, cell.RelayResolve, body)
	if err != nil {
		return nil, errfmt.Errorf("circuit %d: RESOLVE: %w", c.id, err)
	}
	for _, a := range r.answers {
		if a.Type == AnswerErrTransient || a.Type == AnswerErrPermanent {
			return nil, &ResolveError{Host: host, Transient: a.Type == AnswerErrTransient}
		}
	}
	return r.answers, nil
}

// forget removes the stream from its circuit without sending anything.
func (s *Stream) forget() {
	s.c.mu.Lock()
	if s.c.streams[s.id] == s {
		delete(s.c.streams, s.id)
	}
	s.c.mu.Unlock()
}

// release removes the stream from its circuit's readers: its receive
// queue is empty for good.
func (s *Stream) release() {
	c := s.c
	c.mu.Lock()
	delete(c.readers, s)
	c.unreclaimIfDoneLocked()
	c.mu.Unlock()
}

// reclaim ends the stream with ErrReclaimed and returns its unread cells
// to the pool (see Circuit.Reclaim).
//
// The cells go back first: with the pool exhausted, the END needs one.
func (s *Stream) reclaim() {
	s.forget()
	s.mu.Lock()
	freed := s.dropRecvLocked()
	s.mu.Unlock()
	s.c.consumed(s.hop, freed)
	s.sendEnd()
	s.ended(ErrReclaimed, ErrReclaimed)
	s.release()
}

// dropRecvLocked returns the queued cells to the pool and their number.
// s.mu must be held.
func (s *Stream) dropRecvLocked() int {
	n := s.recv.len()
	for s.recv.len() > 0 {
		s.c.pool.Put(s.recv.pop())
	}
	s.off = 0
	s.qbytes = 0
	return n
}

// Connected returns the address the exit reported in CONNECTED.
func (s *Stream) Connected() Connected {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected
}

// ID returns the stream ID.
func (s *Stream) ID() uint16 { return s.id }

// deliver queues a DATA cell (owned by the stream from now on). It runs
// on the circuit goroutine.
func (s *Stream) deliver(cl *cell.Cell, n int) error {
	s.mu.Lock()
	if !s.fc {
		s.deliverWindow--
		if s.deliverWindow < 0 {
			s.mu.Unlock()
			s.c.pool.Put(cl)
			return protocolErr("stream %d overran its window", int(s.id))
		}
	}
	if s.closed || s.readErr != nil || n == 0 {
		// Nobody will read it: consumed now.
		s.mu.Unlock()
		s.c.pool.Put(cl)
		return s.c.consumed(s.hop, 1)
	}
	limit := ringCap
	if s.fc {
		limit = fcRingMax
	}
	if !s.recv.push(cl, limit) {
		s.mu.Unlock()
		s.c.pool.Put(cl)
		return protocolErr("stream %d: receive queue full", int(s.id))
	}
	s.qbytes += uint64(n)
	s.notifyReaderLocked()
	var a flowAction
	if s.fc {
		a = s.decideXoffLocked()
	}
	s.mu.Unlock()
	return s.c.sendFlow(s, a)
}

// notifyReaderLocked tells a waiting reader that data is queued. It does
// not allocate: the per-cell path must not.
func (s *Stream) notifyReaderLocked() {
	select {
	case s.rnotify <- struct{}{}:
	default:
	}
}

// endReaderLocked wakes every reader for good (error or Close).
func (s *Stream) endReaderLocked() {
	if !s.rdoneClosed {
		s.rdoneClosed = true
		close(s.rdone)
	}
}

// handleSendme handles a stream-level SENDME on the circuit goroutine.
func (s *Stream) handleSendme() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.fc {
		// C tor: "Congestion control got stream sendme".
		return protocolErr("stream SENDME on stream %d, which uses flow control", int(s.id))
	}
	if s.packageWindow+StreamWindowInc > StreamWindowStart {
		return protocolErr("unexpected SENDME on stream %d", int(s.id))
	}
	s.packageWindow += StreamWindowInc
	c.wakeLocked()
	return nil
}

// handleControl handles CONNECTED, RESOLVED and END on the circuit
// goroutine.
func (s *Stream) handleControl(cmd cell.RelayCommand, body []byte) error {
	switch cmd {
	case cell.RelayConnected:
		if s.kind != kindData {
			return protocolErr("CONNECTED on resolve stream %d", int(s.id))
		}
		conn, err := ParseConnected(body)
		if err != nil {
			return errfmt.Errorf("stream %d: %v: %w", s.id, err, ErrProtocol)
		}
		s.mu.Lock()
		if s.isOpen {
			s.mu.Unlock()
			return protocolErr("second CONNECTED on stream %d", int(s.id))
		}
		s.isOpen = true
		s.connected = conn
		s.mu.Unlock()
		s.answer(openResult{connected: conn})
		return nil
	case cell.RelayResolved:
		if s.kind != kindResolve {
			return protocolErr("RESOLVED on data stream %d", int(s.id))
		}
		answers, err := ParseResolved(body)
		if err != nil {
			return errfmt.Errorf("stream %d: %v: %w", s.id, err, ErrProtocol)
		}
		s.forget()
		s.answer(openResult{answers: answers})
		return nil
	case cell.RelayEnd:
		reason := parseEnd(body)
		var err error = &StreamEndError{Reason: reason}
		s.mu.Lock()
		wasOpen := s.isOpen
		s.mu.Unlock()
		if !wasOpen || s.kind == kindResolve {
			s.forget()
			s.answer(openResult{err: err})
			return nil
		}
		if reason == cell.EndDone {
			err = io.EOF
		}
		s.forget()
		s.ended(err, err)
		return nil
	}
	return nil
}

// answer delivers the answer to the opening cell, unless one was given
// already (the circuit died meanwhile) or nobody waits.
func (s *Stream) answer(r openResult) {
	select {
	case s.opened <- r:
	default:
	}
}

// remoteClosed ends the stream because its circuit died.
func (s *Stream) remoteClosed(err error) {
	s.answer(openResult{err: err})
	s.ended(err, err)
}

// ended records that no more cells come on the stream.
func (s *Stream) ended(readErr, writeErr error) {
	c := s.c
	c.mu.Lock()
	if s.writeErr == nil {
		s.writeErr = writeErr
	}
	c.wakeLocked()
	c.mu.Unlock()
	s.mu.Lock()
	if s.readErr == nil {
		s.readErr = readErr
	}
	s.endReaderLocked()
	s.mu.Unlock()
}

// Read reads stream data. It returns io.EOF after an END with reason DONE
// and a *StreamEndError after other reasons.
func (s *Stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	for s.recv.len() == 0 {
		switch {
		case s.closed:
			s.mu.Unlock()
			return 0, net.ErrClosed
		case s.readErr != nil:
			err := s.readErr
			s.mu.Unlock()
			return 0, err
		case len(p) == 0:
			s.mu.Unlock()
			return 0, nil
		}
		s.fr.starved = true // flow control: the reader outpaces the exit
		s.mu.Unlock()
		select {
		case <-s.rnotify:
		case <-s.rdone:
		case <-s.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		}
		s.mu.Lock()
	}
	n, popped := 0, 0
	for n < len(p) && s.recv.len() > 0 {
		cl := s.recv.front()
		data := cl.Payload[cell.RelayHeaderLen : cell.RelayHeaderLen+int(cell.RelayLength(&cl.Payload))]
		k := copy(p[n:], data[s.off:])
		n += k
		s.off += k
		s.qbytes -= uint64(k)
		if s.off == len(data) {
			s.recv.pop()
			s.off = 0
			s.c.pool.Put(cl)
			popped++
		}
	}
	if s.recv.len() > 0 {
		s.notifyReaderLocked() // for another reader
	} else if len(s.recv.buf) > ringCap {
		// A flow-controlled stream's queue grew past a stream window
		// (what the exit had in flight at XOFF): give the memory back.
		s.recv.buf, s.recv.head = nil, 0
	}
	// Stream-level SENDME (tor-spec 7.4): when the window is at most 450
	// and less than ten cells wait to be read.
	sendmes := 0
	var a flowAction
	if s.fc {
		if s.readErr == nil {
			a = s.decideXonLocked(n)
		}
	} else {
		for s.deliverWindow <= StreamWindowStart-StreamWindowInc && s.recv.len() < 10 && s.readErr == nil {
			s.deliverWindow += StreamWindowInc
			sendmes++
		}
	}
	s.mu.Unlock()
	if popped > 0 || sendmes > 0 || a.xon || a.xoff {
		// The consumed cells may release withheld circuit SENDMEs.
		// Errors mean the circuit is gone; Read will see it next time.
		c := s.c
		c.mu.Lock()
		err := c.consumedLocked(s.hop, popped)
		for ; sendmes > 0 && err == nil; sendmes-- {
			err = c.sendLocked(s.hop, cell.RelaySendme, s.id, nil, false)
		}
		if err == nil && (a.xon || a.xoff) && !s.sentEnd && c.err == nil {
			c.sendFlowLocked(s, a)
		}
		c.mu.Unlock()
	}
	return n, nil
}

// Write sends p as DATA cells of at most 498 bytes, waiting for the
// circuit and stream windows. Within every 100 DATA cells to its hop, at
// least one is shorter and carries random padding (see sendPadding).
func (s *Stream) Write(p []byte) (int, error) {
	c := s.c
	written := 0
	for len(p) > 0 {
		// Back-pressure on the SOCKS side: with the cell pool full, the
		// writer waits in Get, without holding the circuit's mutex; and it
		// holds no cell while it waits for a window, so that writers
		// stuck on windows never use up the pool's reserve.
		var cl *cell.Cell
		c.mu.Lock()
		for {
			var err error
			switch {
			case s.sentEnd:
				err = net.ErrClosed
			case s.writeErr != nil:
				err = s.writeErr
				if err == io.EOF {
					err = io.ErrClosedPipe
				}
			case c.err != nil:
				err = c.err
			}
			if err != nil {
				c.mu.Unlock()
				c.pool.Put(cl) // Put(nil) does nothing
				return written, err
			}
			var wait int64
			if s.canSendLocked() {
				if cl != nil {
					if !s.fc {
						break
					}
					if wait = s.rateWaitLocked(min(len(p), cell.RelayDataLen)); wait == 0 {
						break
					}
				} else {
					c.mu.Unlock()
					cl = c.pool.Get()
					c.mu.Lock()
					continue // the windows may have changed meanwhile
				}
			}
			wake := c.wake
			c.mu.Unlock()
			c.pool.Put(cl)
			cl = nil
			if err := s.waitWrite(wake, wait); err != nil {
				return written, err
			}
			c.mu.Lock()
		}
		chunk := c.hops[s.hop].pad.dataLen(len(p), c.rng)
		err := c.sendCellLocked(cl, s.hop, cell.RelayData, s.id, p[:chunk], false)
		if err == nil {
			if s.fc {
				s.noteSentLocked(chunk)
			} else {
				s.packageWindow--
			}
		}
		c.mu.Unlock()
		if err != nil {
			return written, err
		}
		written += chunk
		p = p[chunk:]
	}
	return written, nil
}

// canSendLocked reports whether the windows let s send a DATA cell: the
// stream's (or, with flow control, no XOFF pending) and its hop's package
// or congestion window. c.mu must be held.
func (s *Stream) canSendLocked() bool {
	h := s.c.hops[s.hop]
	if s.fc {
		return !s.fs.xoffRecv && h.cc != nil && h.cc.canSend()
	}
	if h.cc != nil {
		return s.packageWindow > 0 && h.cc.canSend()
	}
	return s.packageWindow > 0 && h.packageWindow > 0
}

// waitWrite waits for wake, the write deadline, or (with wait > 0) wait
// microseconds of the advised rate.
func (s *Stream) waitWrite(wake <-chan struct{}, wait int64) error {
	if wait > 0 {
		t := time.NewTimer(time.Duration(wait) * time.Microsecond)
		defer t.Stop()
		select {
		case <-wake:
		case <-t.C:
		case <-s.wdl.wait():
			return os.ErrDeadlineExceeded
		}
		return nil
	}
	select {
	case <-wake:
	case <-s.wdl.wait():
		return os.ErrDeadlineExceeded
	}
	return nil
}

// sendEnd sends END once: reason MISC, as an origin should, or DONE on
// an incoming stream.
func (s *Stream) sendEnd() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.sentEnd || s.writeErr != nil || c.err != nil {
		s.sentEnd = true
		return nil
	}
	s.sentEnd = true
	reason := cell.EndMisc
	if s.incoming {
		reason = cell.EndDone
	}
	return c.sendLocked(s.hop, cell.RelayEnd, s.id, []byte{byte(reason)}, false)
}

// CloseWrite sends END. Tor has no half-close: the exit closes its
// connection on END, so Read returns the data already received and then
// io.EOF.
func (s *Stream) CloseWrite() error {
	err := s.sendEnd()
	s.forget()
	s.mu.Lock()
	if s.readErr == nil {
		s.readErr = io.EOF
	}
	s.endReaderLocked()
	s.mu.Unlock()
	return err
}

// Close sends END if the stream is still open and releases it. Its
// unread cells go back to the pool first: with the pool exhausted, the
// END needs one.
func (s *Stream) Close() error {
	s.forget()
	s.mu.Lock()
	freed := 0
	if !s.closed {
		s.closed = true
		freed = s.dropRecvLocked()
		s.recv.buf = nil
		s.endReaderLocked()
	}
	s.mu.Unlock()
	s.c.consumed(s.hop, freed)
	err := s.sendEnd()
	s.release()
	s.rdl.stop()
	s.wdl.stop()
	return err
}

// LocalAddr returns a description of the stream's circuit end.
func (s *Stream) LocalAddr() net.Addr {
	return Addr(fmt.Sprintf("circuit %d stream %d", s.c.id, s.id))
}

// RemoteAddr returns the target the stream was opened to.
func (s *Stream) RemoteAddr() net.Addr { return s.remote }

// SetDeadline sets the read and write deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	s.rdl.set(t)
	s.wdl.set(t)
	return nil
}

// SetReadDeadline sets the read deadline.
func (s *Stream) SetReadDeadline(t time.Time) error { s.rdl.set(t); return nil }

// SetWriteDeadline sets the write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error { s.wdl.set(t); return nil }

// cellRing is a FIFO of cells with room for a full stream window (plus
// the few cells that can arrive before a SENDME takes effect), allocated
// on first use and never grown: a relay that overruns it broke flow
// control.
type cellRing struct {
	buf        []*cell.Cell
	head, size int
}

const ringCap = StreamWindowStart + 16

// fcRingMax bounds the receive queue of a stream with flow control: its
// XOFF threshold plus what the exit's congestion window had in flight.
// The cell pool bounds the memory of all streams together.
const fcRingMax = 1 << 16

func (r *cellRing) len() int { return r.size }

// push appends c, growing the ring up to limit cells; it reports false if
// the ring is full.
func (r *cellRing) push(c *cell.Cell, limit int) bool {
	if r.buf == nil {
		r.buf = make([]*cell.Cell, ringCap)
	}
	if r.size == len(r.buf) {
		if len(r.buf) >= limit {
			return false
		}
		nb := make([]*cell.Cell, min(2*len(r.buf), limit))
		for i := range r.size {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = c
	r.size++
	return true
}

func (r *cellRing) front() *cell.Cell { return r.buf[r.head] }

func (r *cellRing) pop() *cell.Cell {
	c := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return c
}

// deadline is a resettable deadline: wait returns a channel closed once
// the deadline has passed.
type deadline struct {
	mu    lock.Mutex
	timer *time.Timer
	ch    chan struct{}
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.ch // the timer fired: ch is closed; make a new one
	}
	d.timer = nil
	select {
	case <-d.ch:
		d.ch = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		return
	}
	ch := d.ch
	d.timer = time.AfterFunc(dur, func() { close(ch) })
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
}

var _ net.Conn = (*Stream)(nil)
