package socks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/netlisten"
	"tinytor/tor/policy"
	"tinytor/tor/torlog"
)

// Dialer opens streams and answers name lookups for the Server. Errors that
// implement Replier choose the SOCKS reply; others give a general failure
// (CONNECT) or host unreachable (RESOLVE, RESOLVE_PTR). Every method must
// return promptly once ctx is done. As with net.Dialer, ctx bounds only the
// opening of a stream: a returned net.Conn lives until it is closed.
// Closing a stream's write half (CloseWrite, if implemented) is used to
// pass on a client's half-close; streams without it are closed outright
// when the client stops sending.
type Dialer interface {
	// DialStream opens a stream to req.Host:req.Port.
	DialStream(ctx context.Context, req *Request, iso IsolationKey) (net.Conn, error)
	// Resolve looks host up.
	Resolve(ctx context.Context, host string, iso IsolationKey) ([]netip.Addr, error)
	// ResolvePTR looks up the name of addr.
	ResolvePTR(ctx context.Context, addr netip.Addr, iso IsolationKey) (string, error)
}

// Flags are a SocksPort's flags, named as in C tor's torrc.
type Flags struct {
	IsolateDestAddr       bool
	IsolateDestPort       bool
	IsolateSOCKSAuth      bool // on by default in C tor: see DefaultFlags
	IsolateClientAddr     bool
	IsolateClientProtocol bool
	NoIPv4Traffic         bool
	IPv6Traffic           bool
	PreferIPv6            bool
	ExtendedErrors        bool
	OnionTrafficOnly      bool
	NoOnionTraffic        bool
	// SessionGroup puts listeners with the same group in one isolation
	// domain; SessionGroupSet says it was given. Without it each listener
	// is its own group, as in C tor.
	SessionGroup    int
	SessionGroupSet bool
}

// DefaultFlags returns C tor's default SocksPort flags (IsolateSOCKSAuth).
func DefaultFlags() Flags { return Flags{IsolateSOCKSAuth: true} }

// IsolationKey says which streams may share a circuit: only streams with
// equal keys. It is comparable and built from a listener's flags.
type IsolationKey struct {
	// Listener is the listener's Config.ID, or "" if it has a session group.
	Listener string
	// SessionGroup is the listener's session group if set, else -1.
	SessionGroup int
	// DestAddr and DestPort are set under IsolateDestAddr/IsolateDestPort.
	DestAddr string
	DestPort uint16
	// Auth, Username and Password are set under IsolateSOCKSAuth.
	Auth               bool
	Username, Password string
	// ClientAddr is set under IsolateClientAddr.
	ClientAddr netip.Addr
	// Protocol is the SOCKS version under IsolateClientProtocol.
	Protocol int
}

// isolationKey builds the key for req on a listener with flags f.
func isolationKey(id string, f Flags, req *Request) IsolationKey {
	k := IsolationKey{Listener: id, SessionGroup: -1}
	if f.SessionGroupSet {
		k.Listener, k.SessionGroup = "", f.SessionGroup
	}
	if f.IsolateDestAddr {
		k.DestAddr = strings.ToLower(req.Host)
	}
	if f.IsolateDestPort {
		k.DestPort = req.Port
	}
	if f.IsolateSOCKSAuth {
		k.Auth, k.Username, k.Password = req.Auth, req.Username, req.Password
	}
	if f.IsolateClientAddr {
		k.ClientAddr = req.ClientAddr.Addr().Unmap()
	}
	if f.IsolateClientProtocol {
		k.Protocol = req.Version
	}
	return k
}

// Config configures a Server.
type Config struct {
	// ID names the listener in isolation keys and logs (e.g. "127.0.0.1:9050").
	// Listen is the address ListenAndServe binds; ID defaults to it.
	ID     string
	Listen string
	Flags  Flags
	// Policy decides which clients may connect, as C tor's SocksPolicy: a
	// client no rule matches is accepted, and ports are ignored. An empty
	// Policy (no SocksPolicy configured) accepts loopback clients only
	// (policy.Loopback).
	Policy policy.Policy
	// SafeSocks rejects requests that carry an IP address instead of a
	// hostname (the application resolved DNS itself, leaking it).
	SafeSocks bool
	// WarnUnsafeSocks logs a warning for such requests (at most every 5s;
	// C tor's torrc default is on, so a config loader should default it
	// to true). SafeSocks always warns when it rejects.
	WarnUnsafeSocks bool
	// Log receives C tor style messages; nil discards them.
	Log *torlog.Logger
	// UnsafeLogging writes destination hostnames and addresses into log
	// messages (C tor's SafeLogging 0); by default they are "[scrubbed]".
	UnsafeLogging bool
	// HandshakeTimeout bounds reading the request (default 30s).
	HandshakeTimeout time.Duration
	// ConnectTimeout bounds the Dialer call (default 120s, C tor's
	// SocksTimeout); running out replies TTL expired.
	ConnectTimeout time.Duration
	// MaxConns caps concurrent client connections (default 512); clients
	// above it are closed at once and counted in Stats.OverLimit.
	MaxConns int
	// Protocol, if set, replaces the SOCKS handshake with another front
	// end's (TransPort, HTTPTunnelPort); nil serves SOCKS.
	Protocol Protocol
}

// Stats are a Server's counters.
type Stats struct {
	Accepted     uint64 // connections accepted
	Active       int64  // connections open now
	Denied       uint64 // closed by the policy
	OverLimit    uint64 // closed because MaxConns were open
	BadHandshake uint64 // handshakes that failed or were refused by flags
	Succeeded    uint64 // requests answered with success
	Failed       uint64 // requests the Dialer failed
	BytesUp      uint64 // bytes relayed client -> stream
	BytesDown    uint64 // bytes relayed stream -> client
}

// add returns the sum of a and b.
func (a Stats) add(b Stats) Stats {
	return Stats{
		Accepted: a.Accepted + b.Accepted, Active: a.Active + b.Active,
		Denied: a.Denied + b.Denied, OverLimit: a.OverLimit + b.OverLimit,
		BadHandshake: a.BadHandshake + b.BadHandshake,
		Succeeded:    a.Succeeded + b.Succeeded, Failed: a.Failed + b.Failed,
		BytesUp: a.BytesUp + b.BytesUp, BytesDown: a.BytesDown + b.BytesDown,
	}
}

// Server is a SOCKS listener. Create it with New; it is safe for
// concurrent use.
type Server struct {
	cfg    Config
	dialer Dialer
	log    *torlog.Logger

	ctx     context.Context
	cancel  context.CancelFunc
	mu      lock.Mutex     // guards closed and calls to serving.Add
	closed  bool           // Close was called
	serving sync.WaitGroup // running Serve calls

	accepted, denied, overLimit, badHandshake atomic.Uint64
	succeeded, failed, bytesUp, bytesDown     atomic.Uint64
	active                                    atomic.Int64

	warnMu   lock.Mutex
	lastWarn time.Time
}

// New returns a Server answering requests with d.
func New(cfg Config, d Dialer) (*Server, error) {
	if d == nil {
		return nil, errors.New("socks: nil Dialer")
	}
	if cfg.Flags.OnionTrafficOnly && cfg.Flags.NoOnionTraffic {
		return nil, errors.New("socks: OnionTrafficOnly and NoOnionTraffic together allow nothing")
	}
	if cfg.Flags.NoIPv4Traffic && !cfg.Flags.IPv6Traffic && !cfg.Flags.OnionTrafficOnly {
		return nil, errors.New("socks: NoIPv4Traffic without IPv6Traffic allows no traffic (use OnionTrafficOnly)")
	}
	if cfg.ID == "" {
		cfg.ID = cfg.Listen
	}
	if len(cfg.Policy) == 0 {
		cfg.Policy = policy.Loopback()
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 120 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 512
	}
	log := cfg.Log
	if log == nil {
		log = torlog.Discard()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, dialer: d, log: log, ctx: ctx, cancel: cancel}, nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Accepted: s.accepted.Load(), Active: s.active.Load(),
		Denied: s.denied.Load(), OverLimit: s.overLimit.Load(),
		BadHandshake: s.badHandshake.Load(),
		Succeeded:    s.succeeded.Load(), Failed: s.failed.Load(),
		BytesUp: s.bytesUp.Load(), BytesDown: s.bytesDown.Load(),
	}
}

// ListenAndServe listens on Config.Listen and serves until ctx is done or
// Close is called.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := netlisten.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return errfmt.Errorf("socks: listening on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("socks: server closed")

// Serve accepts connections on ln until ctx is done or Close is called,
// then closes ln and every connection it accepted and waits for their
// goroutines. It returns nil when stopped that way, ErrClosed if the Server
// was already closed, or the accept error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	closer := context.AfterFunc(ctx, func() { ln.Close() })
	defer closer()

	s.log.Noticef("Opened %s listener connection (ready) on %v", s.listenerName(), ln.Addr())
	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return errfmt.Errorf("socks: accepting on %v: %w", ln.Addr(), err)
			}
			// Out of file descriptors and the like: back off and retry,
			// as the condition usually passes.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			s.log.Warnf("Error accepting %s connection on %v: %v; retrying in %v.", s.listenerName(), ln.Addr(), err, backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		backoff = 0
		s.accepted.Add(1)
		if s.active.Add(1) > int64(s.cfg.MaxConns) {
			s.active.Add(-1)
			s.overLimit.Add(1)
			s.log.Infof("Too many open %s connections (%d); closing new connection.", s.listenerName(), s.cfg.MaxConns)
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.active.Add(-1)
			s.handle(ctx, c)
		}()
	}
}

// listenerName names the listener kind in logs: "Socks", or the
// Protocol's.
func (s *Server) listenerName() string {
	if s.cfg.Protocol != nil {
		return s.cfg.Protocol.Listener()
	}
	return "Socks"
}

// Close stops every Serve call, ends all connections and waits until
// their goroutines are gone. Later Serve calls return ErrClosed.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.serving.Wait()
	return nil
}

// handle runs one client connection to its end.
func (s *Server) handle(ctx context.Context, c net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()

	// SocksPolicy is about addresses: as in C tor, it does not apply to
	// a Unix socket, whose file mode says who may connect.
	client := addrPortOf(c.RemoteAddr())
	unix := c.LocalAddr() != nil && c.LocalAddr().Network() == "unix"
	if !unix && !s.cfg.Policy.Allows(client.Addr(), policy.AcceptUnmatched) {
		s.denied.Add(1)
		s.log.Noticef("Denying socks connection from untrusted address %v.", client.Addr())
		return
	}
	if s.cfg.Protocol != nil {
		s.handleProtocol(ctx, c, client)
		return
	}

	c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(c, 512)
	req, err := ReadRequest(br, c, ReadOptions{PreferNoAuth: !s.cfg.Flags.IsolateSOCKSAuth})
	if err != nil {
		s.badHandshake.Add(1)
		s.handshakeFailed(c, client, err)
		return
	}
	if err := s.admit(req, client); err != nil {
		c.Write(appendReply(nil, req.Version, ReplyFor(err, ReplyGeneralFailure, true), netip.Addr{}, ""))
		return
	}
	c.SetDeadline(time.Time{})

	iso := isolationKey(s.cfg.ID, s.cfg.Flags, req)
	dctx, dcancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer dcancel()
	switch req.Command {
	case Connect:
		// The dial runs deep (circuit choice, building); on a goroutine
		// of its own that ends, its stack is freed at once instead of
		// staying with this connection for its whole life.
		type dialed struct {
			stream net.Conn
			err    error
		}
		done := make(chan dialed, 1)
		go func() {
			st, err := s.dialer.DialStream(dctx, req, iso)
			done <- dialed{st, err}
		}()
		d := <-done
		stream, err := d.stream, d.err
		dcancel()
		if err != nil {
			s.failed.Add(1)
			code := ReplyFor(err, ReplyGeneralFailure, s.cfg.Flags.ExtendedErrors)
			s.log.Infof("SOCKS%d CONNECT to %s:%d failed: %v", req.Version, s.safe(req.Host), req.Port, err)
			c.Write(appendReply(nil, req.Version, code, netip.Addr{}, ""))
			return
		}
		defer stream.Close()
		if _, err := c.Write(appendReply(nil, req.Version, ReplySucceeded, netip.Addr{}, "")); err != nil {
			s.failed.Add(1)
			return
		}
		s.succeeded.Add(1)
		s.relay(ctx, c, br, stream)
	case Resolve:
		if ip, err := parseIP(req.Host); err == nil {
			// An address resolves to itself, without asking the network
			// (as C tor answers it).
			s.answerResolve(c, req, []netip.Addr{ip}, nil)
			return
		}
		addrs, err := s.dialer.Resolve(dctx, req.Host, iso)
		dcancel()
		s.answerResolve(c, req, addrs, err)
	case ResolvePTR:
		ip, _ := parseIP(req.Host)
		name, err := s.dialer.ResolvePTR(dctx, ip, iso)
		dcancel()
		if err == nil && (name == "" || len(name) > maxField) {
			err = errfmt.Errorf("reverse lookup of %v gave an unusable name of %d bytes", ip, len(name))
		}
		if err != nil {
			s.failed.Add(1)
			code := ReplyFor(err, ReplyHostUnreachable, s.cfg.Flags.ExtendedErrors)
			s.log.Infof("SOCKS%d RESOLVE_PTR of %s failed: %v", req.Version, s.safe(req.Host), err)
			c.Write(appendReply(nil, req.Version, code, netip.Addr{}, ""))
			return
		}
		s.succeeded.Add(1)
		c.Write(appendReply(nil, req.Version, ReplySucceeded, netip.Addr{}, name))
	}
}

// admit completes req with what the server knows (the client's address,
// the port's address-family flags) and applies the port's checks. A
// refused request is counted and logged, and the error carries its reply
// code.
func (s *Server) admit(req *Request, client netip.AddrPort) error {
	req.ClientAddr = client
	req.Family = FamilyPrefs{
		NoIPv4:     s.cfg.Flags.NoIPv4Traffic,
		IPv6:       s.cfg.Flags.IPv6Traffic,
		PreferIPv6: s.cfg.Flags.PreferIPv6,
	}
	if code, msg := s.check(req); msg != "" {
		s.badHandshake.Add(1)
		s.log.Warnf("%s", msg)
		return Errorf(code, "%s", msg)
	}
	return nil
}

// handshakeFailed logs a failed handshake and sends what the client is owed.
func (s *Server) handshakeFailed(c net.Conn, client netip.AddrPort, err error) {
	var re *RequestError
	if !errors.As(err, &re) {
		s.log.Infof("SOCKS handshake from %v failed: %v", client, err)
		return
	}
	if errors.Is(err, ErrHTTPRequest) {
		s.log.Warnf("Client %v sent an HTTP request to a SOCKS port; answered with an error page. (This port is not an HTTP proxy.)", client.Addr())
		io.WriteString(c, httpErrorPage)
		return
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isTimeout(err) {
		s.log.Infof("SOCKS handshake from %v ended early: %v", client, err)
		return
	}
	s.log.Warnf("Rejecting SOCKS request from %v: %v", client, err)
	if re.SendReply {
		c.Write(appendReply(nil, re.Version, re.Reply, netip.Addr{}, ""))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// check applies the listener's flags and SafeSocks to req, returning the
// reply code and a C tor style log message if it must be refused.
func (s *Server) check(req *Request) (ReplyCode, string) {
	f := s.cfg.Flags
	// SafeSocks is about SOCKS clients (C tor checks it in its SOCKS
	// parser): the other front ends only ever see addresses or names
	// their protocol carries.
	ipGiven := req.AddrType != AddrDomain && req.Command != ResolvePTR && s.cfg.Protocol == nil
	if ipGiven && (s.cfg.SafeSocks || s.cfg.WarnUnsafeSocks) {
		s.warnUnsafe(req)
		if s.cfg.SafeSocks {
			return ReplyNotAllowed, fmt.Sprintf("Rejecting SOCKS%d request for %s:%d: SafeSocks forbids IP addresses (they leak DNS).", req.Version, s.safe(req.Host), req.Port)
		}
	}
	onion := IsOnion(req.Host)
	switch {
	case f.OnionTrafficOnly && req.Command != Connect:
		return ReplyNotAllowed, fmt.Sprintf("Rejecting SOCKS %v request for %s: this port only allows onion traffic.", req.Command, s.safe(req.Host))
	case f.OnionTrafficOnly && !onion:
		return ReplyNotAllowed, fmt.Sprintf("Rejecting SOCKS request for non-onion address %s: this port only allows onion traffic.", s.safe(req.Host))
	case f.NoOnionTraffic && onion:
		return ReplyNotAllowed, fmt.Sprintf("Rejecting SOCKS request for onion address %s: this port does not allow onion traffic.", s.safe(req.Host))
	case onion && req.Command == ResolvePTR:
		return ReplyGeneralFailure, fmt.Sprintf("Rejecting SOCKS %v request for onion address %s: onion addresses can not be resolved.", req.Command, s.safe(req.Host))
	}
	// A RESOLVE of an onion address goes to the Dialer, which answers it
	// with a virtual address under AutomapHostsOnResolve and refuses it
	// otherwise, as C tor.
	if req.Command == Connect && req.Port == 0 {
		return ReplyGeneralFailure, fmt.Sprintf("Rejecting SOCKS%d CONNECT request for %s with port 0.", req.Version, s.safe(req.Host))
	}
	if req.Command == Connect {
		if ip, err := parseIP(req.Host); err == nil {
			if ip.Is4() && f.NoIPv4Traffic {
				return ReplyNotAllowed, fmt.Sprintf("Rejecting SOCKS request for IPv4 address %s since IPv4 traffic is not allowed on this port.", s.safe(req.Host))
			}
			if ip.Is6() && !f.IPv6Traffic {
				return ReplyNotAllowed, fmt.Sprintf("Rejecting SOCKS request for IPv6 address %s since IPv6 traffic is not allowed on this port.", s.safe(req.Host))
			}
		}
	}
	return ReplySucceeded, ""
}

// warnUnsafe logs C tor's DNS-leak warning, at most once per 5 seconds.
func (s *Server) warnUnsafe(req *Request) {
	s.warnMu.Lock()
	now := time.Now()
	if now.Sub(s.lastWarn) < 5*time.Second {
		s.warnMu.Unlock()
		return
	}
	s.lastWarn = now
	s.warnMu.Unlock()
	rejecting := ""
	if s.cfg.SafeSocks {
		rejecting = " Rejecting."
	}
	s.log.Warnf("Your application (using socks%d to port %d) is giving Tor only an IP address. "+
		"Applications that do DNS resolves themselves may leak information. "+
		"Consider using Socks4A (e.g. via privoxy or socat) instead.%s", req.Version, req.Port, rejecting)
}

// answerResolve sends the reply to a RESOLVE request: the first address of
// the preferred family the listener allows (only IPv4 for SOCKS4).
func (s *Server) answerResolve(c net.Conn, req *Request, addrs []netip.Addr, err error) {
	var pick netip.Addr
	if err == nil {
		pick = s.pickAddr(req.Version, addrs)
		if !pick.IsValid() {
			err = Errorf(ReplyHostUnreachable, "no usable address for %s among %d answers", req.Host, len(addrs))
		}
	}
	if err != nil {
		s.failed.Add(1)
		code := ReplyFor(err, ReplyHostUnreachable, s.cfg.Flags.ExtendedErrors)
		s.log.Infof("SOCKS%d RESOLVE of %s failed: %v", req.Version, s.safe(req.Host), err)
		c.Write(appendReply(nil, req.Version, code, netip.Addr{}, ""))
		return
	}
	s.succeeded.Add(1)
	c.Write(appendReply(nil, req.Version, ReplySucceeded, pick, ""))
}

func (s *Server) pickAddr(version int, addrs []netip.Addr) netip.Addr {
	f := s.cfg.Flags
	var v4, v6 netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case a.Is4() && !v4.IsValid() && !f.NoIPv4Traffic:
			v4 = a
		case a.Is6() && !v6.IsValid() && f.IPv6Traffic && version == 5:
			v6 = a
		}
	}
	if v6.IsValid() && (f.PreferIPv6 || !v4.IsValid()) {
		return v6
	}
	return v4
}

// safe returns host for a log message, or "[scrubbed]" unless
// UnsafeLogging is set.
func (s *Server) safe(host string) string {
	if s.cfg.UnsafeLogging {
		return host
	}
	return "[scrubbed]"
}

// addrPortOf returns the address of a TCP peer (zero for other kinds).
func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
