package tor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"tinytor/tor/cell"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
)

// Stream dispatch: a stream asked for by the SOCKS side goes onto a pool
// circuit of its isolation key, or onto a new one, and is retried on
// another circuit when the exit refuses it for a reason C tor retries.

// maxStreamAttempts is how many circuits a stream is tried on before the
// failure is reported (C tor retries a stream on new circuits while its
// SocksTimeout allows).
const maxStreamAttempts = 3

// maxCircuitBuilds is how many circuit builds one stream may wait for.
const maxCircuitBuilds = 6

// maxTimedOutBuilds bounds, apart, the builds that only exceeded the
// learned circuit build timeout: as in C tor, a stream waits while the
// timeout adapts (when most recent builds time out, tor/cbt goes back to
// the initial timeout), instead of failing after maxCircuitBuilds quick
// timeouts on a loaded machine.
const maxTimedOutBuilds = 30

// ErrOverloaded is the error inside the *StreamError that Dial returns
// when Config.AllowNewStream refuses a new stream (memory pressure). The
// StreamError's Reason is cell.EndResourceLimit.
var ErrOverloaded = errors.New("refusing new streams under memory pressure")

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

// EndReason names the exit's END reason ("CONNECTREFUSED"), or is "" when
// the stream failed before an exit answered. Front ends that report END
// reasons look for it (the HTTPTunnelPort's status lines).
func (e *StreamError) EndReason() string {
	if e.Reason == 0 {
		return ""
	}
	return e.Reason.String()
}

// admitStream asks Config.AllowNewStream whether a stream to host:port may
// be opened and returns the error for Dial if not.
func (c *Client) admitStream(host string, port uint16) error {
	if f := c.cfg.AllowNewStream; f != nil && !f() {
		return &StreamError{Target: net.JoinHostPort(host, strconv.Itoa(int(port))), Reason: cell.EndResourceLimit, Err: ErrOverloaded}
	}
	return nil
}

// sourceKey is the context key of WithSource.
type sourceKey struct{}

// WithSource returns a copy of ctx that names the application a stream or
// lookup is for: its address and port, which Dial reports in the stream's
// events (the control port's SOURCE_ADDR). Front ends set it from their
// client's connection.
func WithSource(ctx context.Context, app netip.AddrPort) context.Context {
	return context.WithValue(ctx, sourceKey{}, app)
}

// sourceOf returns what WithSource put in ctx (zero if nothing).
func sourceOf(ctx context.Context) netip.AddrPort {
	a, _ := ctx.Value(sourceKey{}).(netip.AddrPort)
	return a
}

// Dial opens a stream to host:port through Tor. Streams whose iso keys
// are equal may share a circuit; others never do (iso must be
// comparable). The stream is a net.Conn; closing it ends the stream.
func (c *Client) Dial(ctx context.Context, host string, port uint16, iso any) (net.Conn, error) {
	target := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if !c.dirs.Current().Enough() {
		return nil, &StreamError{Target: target, Err: ErrNotBootstrapped}
	}
	if err := c.admitStream(host, port); err != nil {
		return nil, err
	}
	c.circs.NotePort(port)
	info := event.Stream{ID: c.bus.NewID(), Status: "NEW", Target: target, Source: sourceOf(ctx)}
	report := func() { ev := info; c.bus.Publish(&ev) }
	report()
	avoid := map[*circmgr.Exit]bool{}
	var lastErr error
	var lastReason cell.EndReason
	builds, timeouts, slow := 0, 0, 0
	for attempt := 0; attempt < maxStreamAttempts; attempt++ {
		e := c.circs.Take(port, isoKey(iso), avoid)
		if e == nil {
			var err error
			e, err = c.circs.Build(ctx, isoKey(iso), port)
			if err != nil {
				lastErr = err
				if ctx.Err() != nil {
					break
				}
				if errors.Is(err, circmgr.ErrBuildTimeout) && slow < maxTimedOutBuilds {
					slow++
					attempt--
					continue
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
		info.Status, info.CircID = "SENTCONNECT", e.ID
		report()
		cutoff := c.streamTimeout(timeouts)
		actx, cancel, timedOut := attemptContext(ctx, cutoff)
		st, err := e.Circ.OpenStream(actx, host, port, 0)
		cancel()
		if timedOut(err) {
			// The exit (or a relay before it) is silent: stop using the
			// circuit for new streams and try another (C tor's
			// connection_ap_expire_beginning).
			c.circs.Retire(e)
			c.circs.Release(e)
			avoid[e] = true
			timeouts++
			lastErr = errfmt.Errorf("no answer to BEGIN within %s: %w", cutoff, context.DeadlineExceeded)
			c.log.Logf(streamTimeoutSeverity(cutoff), "We tried for %d seconds to connect to '%s' using exit %s. Retrying on a new circuit.",
				int(cutoff.Seconds()), c.safe(target), e.Last.Nickname)
			info.Status, info.Reason = "DETACHED", "TIMEOUT"
			report()
			info.Reason = ""
			continue
		}
		if err == nil {
			info.Status = "SUCCEEDED"
			report()
			ps := &poolStream{Stream: st, c: c, circ: e, info: info}
			c.status.streamOpened(info.ID, ps)
			return ps, nil
		}
		c.circs.Release(e)
		avoid[e] = true
		lastErr = err
		var end *circuit.StreamEndError
		if errors.As(err, &end) {
			lastReason = end.Reason
			if !retryableEnd(end.Reason) {
				break
			}
			c.log.Infof("Exit %s refused the stream to %s (%s); trying another circuit.", e.Last.Nickname, target, end.Reason)
			continue
		}
		if ctx.Err() != nil {
			break
		}
	}
	info.Status, info.Reason = "FAILED", "MISC"
	if lastReason != 0 {
		info.Reason = lastReason.String()
	} else if ctx.Err() != nil || errors.Is(lastErr, context.DeadlineExceeded) {
		info.Reason = "TIMEOUT"
	}
	report()
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
	addrs, _, err := c.ResolveTTL(ctx, host, iso)
	return addrs, err
}

// ResolveTTL asks an exit for host's addresses and returns them with the
// least TTL (seconds) the exit gave them, for callers that cache answers
// (the DNSPort). A name with no address is a permanent *circuit.ResolveError.
func (c *Client) ResolveTTL(ctx context.Context, host string, iso any) ([]netip.Addr, uint32, error) {
	answers, err := c.resolve(ctx, host, iso)
	if err != nil {
		return nil, 0, err
	}
	var addrs []netip.Addr
	var ttl uint32
	for _, a := range answers {
		if a.Addr.IsValid() {
			if len(addrs) == 0 || a.TTL < ttl {
				ttl = a.TTL
			}
			addrs = append(addrs, a.Addr)
		}
	}
	if len(addrs) == 0 {
		return nil, 0, &circuit.ResolveError{Host: host}
	}
	return addrs, ttl, nil
}

// ResolvePTR asks an exit for the name of addr.
func (c *Client) ResolvePTR(ctx context.Context, addr netip.Addr, iso any) (string, error) {
	name, _, err := c.ResolvePTRTTL(ctx, addr, iso)
	return name, err
}

// ResolvePTRTTL asks an exit for the name of addr and returns it with the
// exit's TTL in seconds.
func (c *Client) ResolvePTRTTL(ctx context.Context, addr netip.Addr, iso any) (string, uint32, error) {
	answers, err := c.resolve(ctx, reverseName(addr), iso)
	if err != nil {
		return "", 0, err
	}
	for _, a := range answers {
		if a.Type == circuit.AnswerHostname {
			return a.Host, a.TTL, nil
		}
	}
	return "", 0, &circuit.ResolveError{Host: addr.String()}
}

// resolve sends a RESOLVE cell for host on a circuit of iso's and
// reports the lookup as C tor does on the control port: STREAM
// NEWRESOLVE (with SOURCE_ADDR from WithSource), SENTRESOLVE, SUCCEEDED or
// FAILED, CLOSED, all with PURPOSE=DNS_REQUEST.
func (c *Client) resolve(ctx context.Context, host string, iso any) ([]circuit.Answer, error) {
	if !c.dirs.Current().Enough() {
		return nil, ErrNotBootstrapped
	}
	info := event.Stream{ID: c.bus.NewID(), Status: "NEWRESOLVE", Target: net.JoinHostPort(host, "0"), Source: sourceOf(ctx), Resolve: true}
	report := func(status, reason string) {
		ev := info
		ev.Status, ev.Reason = status, reason
		c.bus.Publish(&ev)
	}
	report("NEWRESOLVE", "")
	answers, err := c.resolveOn(ctx, host, iso, func(circID uint64) {
		info.CircID = circID
		report("SENTRESOLVE", "")
	})
	if err != nil {
		reason := "MISC"
		var re *circuit.ResolveError
		switch {
		case errors.As(err, &re):
			reason = cell.EndResolveFailed.String()
		case ctx.Err() != nil:
			reason = "TIMEOUT"
		}
		report("FAILED", reason)
		report("CLOSED", reason)
		return nil, err
	}
	report("SUCCEEDED", "")
	report("CLOSED", "DONE")
	return answers, nil
}

// resolveOn takes or builds a circuit for iso and asks its exit; sent is
// called with the circuit's ID when the RESOLVE cell goes out.
func (c *Client) resolveOn(ctx context.Context, host string, iso any, sent func(circID uint64)) ([]circuit.Answer, error) {
	avoid := map[*circmgr.Exit]bool{}
	var lastErr error
	for retries := 0; retries < maxStreamAttempts; retries++ {
		e := c.circs.Take(80, isoKey(iso), avoid)
		if e == nil {
			var err error
			if e, err = c.circs.Build(ctx, isoKey(iso), 80); err != nil {
				return nil, err
			}
		}
		sent(e.ID)
		cutoff := c.streamTimeout(retries)
		actx, cancel, timedOut := attemptContext(ctx, cutoff)
		answers, err := e.Circ.Resolve(actx, host)
		cancel()
		c.circs.Release(e)
		if !timedOut(err) {
			return answers, err
		}
		// A silent exit, as for BEGIN: retire the circuit, ask another.
		c.circs.Retire(e)
		avoid[e] = true
		lastErr = errfmt.Errorf("no answer to RESOLVE within %s: %w", cutoff, context.DeadlineExceeded)
		c.log.Logf(streamTimeoutSeverity(cutoff), "We tried for %d seconds to resolve '%s' using exit %s. Retrying on a new circuit.",
			int(cutoff.Seconds()), c.safe(host), e.Last.Nickname)
	}
	return nil, lastErr
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

// poolStream is a stream that gives its circuit back when closed.
type poolStream struct {
	*circuit.Stream
	c    *Client
	circ *circmgr.Exit
	info event.Stream
	once sync.Once
}

// Close ends the stream and releases its circuit.
func (s *poolStream) Close() error {
	err := s.Stream.Close()
	s.once.Do(func() {
		s.c.circs.Release(s.circ)
		s.info.Status, s.info.Reason = "CLOSED", "DONE"
		ev := s.info
		s.c.bus.Publish(&ev)
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
