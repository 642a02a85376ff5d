package tor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/circuit"
	"tinytor/tor/path"
)

// maxStreamAttempts is how many circuits a stream is tried on before the
// failure is reported (C tor retries a stream on new circuits while its
// SocksTimeout allows).
const maxStreamAttempts = 3

// maxCircuitBuilds is how many circuit builds one stream may wait for.
const maxCircuitBuilds = 6

// StreamError is a stream that could not be opened; Reason is the exit's
// END reason when one was received (zero otherwise).
type StreamError struct {
	Target string
	Reason cell.EndReason
	Err    error
}

// Error leaves the target out: with SafeLogging (the default) the SOCKS
// layer scrubs destinations from its logs, and error texts are logged.
func (e *StreamError) Error() string { return fmt.Sprintf("stream failed: %v", e.Err) }
func (e *StreamError) Unwrap() error { return e.Err }

// exitCirc is a circuit kept for streams.
type exitCirc struct {
	circ *circuit.Circuit
	id   uint64 // as the control port shows it
	exit *path.Node
	// iso is the isolation key of the streams the circuit carries; it is
	// set by the first stream (a clean circuit has none).
	iso        any
	dirtySince time.Time
	streams    int
	// retired circuits take no new streams (NEWNYM, or an exit that
	// refused).
	retired bool
}

func (e *exitCirc) alive() bool {
	select {
	case <-e.circ.Done():
		return false
	default:
		return true
	}
}

// circPool holds the client's exit circuits.
type circPool struct {
	mu    sync.Mutex
	circs []*exitCirc
}

// take returns a circuit that may carry a stream to port for iso,
// marking it used by one more stream, or nil.
func (p *circPool) take(now time.Time, dirtiness time.Duration, port uint16, iso any, avoid map[*exitCirc]bool) *exitCirc {
	p.mu.Lock()
	defer p.mu.Unlock()
	var clean *exitCirc
	for _, e := range p.circs {
		if e.retired || avoid[e] || !e.alive() || !path.CanExitTo(e.exit, port) {
			continue
		}
		if e.iso == nil {
			if clean == nil {
				clean = e
			}
			continue
		}
		if e.iso == iso && now.Sub(e.dirtySince) < dirtiness {
			e.streams++
			return e
		}
	}
	if clean != nil {
		clean.iso, clean.dirtySince = iso, now
		clean.streams++
	}
	return clean
}

func (p *circPool) add(e *exitCirc) {
	p.mu.Lock()
	p.circs = append(p.circs, e)
	p.mu.Unlock()
}

// release records that a stream on e ended.
func (p *circPool) release(e *exitCirc) {
	p.mu.Lock()
	e.streams--
	p.mu.Unlock()
}

// sweep closes circuits that are dead, or retired or too dirty with no
// streams left, and returns how many clean circuits allow each port.
func (p *circPool) sweep(now time.Time, dirtiness time.Duration, ports []uint16) map[uint16]int {
	p.mu.Lock()
	var keep []*exitCirc
	var closing []*exitCirc
	clean := map[uint16]int{}
	for _, e := range p.circs {
		switch {
		case !e.alive():
		case e.streams <= 0 && (e.retired || e.iso != nil && now.Sub(e.dirtySince) >= dirtiness):
			closing = append(closing, e)
		default:
			keep = append(keep, e)
			if e.iso == nil && !e.retired {
				for _, port := range ports {
					if path.CanExitTo(e.exit, port) {
						clean[port]++
					}
				}
			}
		}
	}
	p.circs = keep
	p.mu.Unlock()
	for _, e := range closing {
		e.circ.Close()
	}
	return clean
}

// retireAll marks every circuit unusable for new streams (NEWNYM).
func (p *circPool) retireAll() {
	p.mu.Lock()
	for _, e := range p.circs {
		e.retired = true
	}
	p.mu.Unlock()
}

func (p *circPool) closeAll() {
	p.mu.Lock()
	circs := p.circs
	p.circs = nil
	p.mu.Unlock()
	for _, e := range circs {
		e.circ.Close()
	}
}

// NewNym makes every later stream use a new circuit, as C tor's
// SIGNAL NEWNYM does.
func (c *Client) NewNym() {
	c.circs.retireAll()
	c.newNymMu.Lock()
	hooks := append([]func(){}, c.newNymHooks...)
	c.newNymMu.Unlock()
	for _, f := range hooks {
		f()
	}
	c.log.Noticef("New identity requested: new streams will use new circuits.")
}

// OnNewNym registers f to run on NewNym, so that other layers (the onion
// client's descriptors and rendezvous circuits) forget their state too.
func (c *Client) OnNewNym(f func()) {
	c.newNymMu.Lock()
	c.newNymHooks = append(c.newNymHooks, f)
	c.newNymMu.Unlock()
}

// buildExitCirc builds a circuit for port and adds it to the pool. With
// a non-nil iso the circuit joins the pool already claimed by one stream
// of that isolation key, so that no other stream can take it first; with
// nil it is a clean (prebuilt) circuit.
func (c *Client) buildExitCirc(ctx context.Context, port uint16, iso any) (*exitCirc, error) {
	b, err := c.buildExit(ctx, port)
	if err != nil {
		return nil, err
	}
	e := &exitCirc{circ: b.Circuit, id: b.id, exit: b.hops[len(b.hops)-1]}
	if iso != nil {
		e.iso, e.dirtySince, e.streams = iso, c.now(), 1
	}
	c.circs.add(e)
	return e, nil
}

// Dial opens a stream to host:port through Tor. Streams whose iso keys
// are equal may share a circuit; others never do (iso must be
// comparable). The stream is a net.Conn; closing it ends the stream.
func (c *Client) Dial(ctx context.Context, host string, port uint16, iso any) (net.Conn, error) {
	if c.currentDir() == nil || !c.currentDir().enough() {
		return nil, &StreamError{Target: net.JoinHostPort(host, fmt.Sprint(port)), Err: ErrNotBootstrapped}
	}
	if err := c.admitStream(host, port); err != nil {
		return nil, err
	}
	c.notePort(port)
	target := net.JoinHostPort(host, fmt.Sprint(port))
	info := StreamInfo{ID: c.events.newID(), Status: "NEW", Target: target}
	c.events.stream(info)
	avoid := map[*exitCirc]bool{}
	var lastErr error
	var lastReason cell.EndReason
	builds := 0
	for attempt := 0; attempt < maxStreamAttempts; attempt++ {
		e := c.circs.take(c.now(), c.dirtiness(), port, isoKey(iso), avoid)
		if e == nil {
			var err error
			e, err = c.buildExitCirc(ctx, port, isoKey(iso))
			if err != nil {
				lastErr = err
				if ctx.Err() != nil {
					break
				}
				// A failed build is not the stream's fault: try new paths
				// (which leave out relays found unreachable) a few more
				// times, as C tor does until its stream timeout.
				if builds++; builds < maxCircuitBuilds {
					attempt--
				}
				continue
			}
		}
		info.Status, info.CircID = "SENTCONNECT", e.id
		c.events.stream(info)
		st, err := e.circ.OpenStream(ctx, host, port, 0)
		if err == nil {
			info.Status = "SUCCEEDED"
			c.events.stream(info)
			ps := &poolStream{Stream: st, pool: &c.circs, circ: e, info: info, events: c.events}
			c.events.streamOpened(info.ID, ps)
			return ps, nil
		}
		c.circs.release(e)
		avoid[e] = true
		lastErr = err
		var end *circuit.StreamEndError
		if errors.As(err, &end) {
			lastReason = end.Reason
			if !retryableEnd(end.Reason) {
				break
			}
			c.log.Infof("Exit %s refused the stream to %s (%s); trying another circuit.", e.exit.Nickname, target, end.Reason)
			continue
		}
		if ctx.Err() != nil {
			break
		}
	}
	info.Status, info.Reason = "FAILED", "MISC"
	if lastReason != 0 {
		info.Reason = lastReason.String()
	} else if ctx.Err() != nil {
		info.Reason = "TIMEOUT"
	}
	c.events.stream(info)
	return nil, &StreamError{Target: target, Reason: lastReason, Err: lastErr}
}

// retryableEnd reports whether a stream refused with r should be tried on
// another circuit (C tor: connection_ap_process_end_not_open).
func retryableEnd(r cell.EndReason) bool {
	switch r {
	case cell.EndExitPolicy, cell.EndResolveFailed, cell.EndTimeout, cell.EndDestroy,
		cell.EndHibernating, cell.EndInternal, cell.EndResourceLimit, cell.EndMisc:
		return true
	}
	return false
}

// Resolve asks an exit for host's addresses.
func (c *Client) Resolve(ctx context.Context, host string, iso any) ([]netip.Addr, error) {
	answers, err := c.resolve(ctx, host, iso)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for _, a := range answers {
		if a.Addr.IsValid() {
			addrs = append(addrs, a.Addr)
		}
	}
	if len(addrs) == 0 {
		return nil, &circuit.ResolveError{Host: host}
	}
	return addrs, nil
}

// ResolvePTR asks an exit for the name of addr.
func (c *Client) ResolvePTR(ctx context.Context, addr netip.Addr, iso any) (string, error) {
	answers, err := c.resolve(ctx, reverseName(addr), iso)
	if err != nil {
		return "", err
	}
	for _, a := range answers {
		if a.Type == circuit.AnswerHostname {
			return a.Host, nil
		}
	}
	return "", &circuit.ResolveError{Host: addr.String()}
}

func (c *Client) resolve(ctx context.Context, host string, iso any) ([]circuit.Answer, error) {
	if d := c.currentDir(); d == nil || !d.enough() {
		return nil, ErrNotBootstrapped
	}
	e := c.circs.take(c.now(), c.dirtiness(), 80, isoKey(iso), nil)
	if e == nil {
		var err error
		if e, err = c.buildExitCirc(ctx, 80, isoKey(iso)); err != nil {
			return nil, err
		}
	}
	defer c.circs.release(e)
	return e.circ.Resolve(ctx, host)
}

// reverseName is the in-addr.arpa / ip6.arpa name of a.
func reverseName(a netip.Addr) string {
	if a.Is4() {
		b := a.As4()
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", b[3], b[2], b[1], b[0])
	}
	b := a.As16()
	const hexd = "0123456789abcdef"
	out := make([]byte, 0, 72)
	for i := 15; i >= 0; i-- {
		out = append(out, hexd[b[i]&0xf], '.', hexd[b[i]>>4], '.')
	}
	return string(out) + "ip6.arpa"
}

// dirtiness is MaxCircuitDirtiness.
func (c *Client) dirtiness() time.Duration {
	if d := c.conf().MaxCircuitDirtiness; d > 0 {
		return d
	}
	return 10 * time.Minute
}

// poolStream is a stream that gives its circuit back when closed.
type poolStream struct {
	*circuit.Stream
	pool   *circPool
	circ   *exitCirc
	info   StreamInfo
	events *events
	once   sync.Once
}

// Close ends the stream and releases its circuit.
func (s *poolStream) Close() error {
	err := s.Stream.Close()
	s.once.Do(func() {
		s.pool.release(s.circ)
		s.info.Status, s.info.Reason = "CLOSED", "DONE"
		s.events.stream(s.info)
	})
	return err
}

// noIsolation is the isolation key of streams that gave none: a nil key
// would mark a circuit clean.
type noIsolation struct{}

func isoKey(iso any) any {
	if iso == nil {
		return noIsolation{}
	}
	return iso
}
