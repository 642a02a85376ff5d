package socks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/tor/policy"
	"tinytor/tor/torlog"
)

// targets are loopback TCP servers a fakeDialer connects streams to.
type targets struct {
	echo, count net.Listener
	wg          sync.WaitGroup
	once        sync.Once
}

// stop closes the targets and waits for their goroutines.
func (tg *targets) stop() {
	tg.once.Do(func() {
		tg.echo.Close()
		tg.count.Close()
		tg.wg.Wait()
	})
}

// startTargets starts an echo server (echoes until EOF, then closes) and a
// count server (reads until EOF, then answers "got N" and closes).
func startTargets(t *testing.T) *targets {
	t.Helper()
	tg := &targets{echo: listen(t), count: listen(t)}
	serve := func(ln net.Listener, h func(net.Conn)) {
		defer tg.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.wg.Add(1)
			go func() {
				defer tg.wg.Done()
				defer c.Close()
				h(c)
			}()
		}
	}
	tg.wg.Add(2)
	go serve(tg.echo, func(c net.Conn) { io.Copy(c, c) })
	go serve(tg.count, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "got %d", n)
	})
	t.Cleanup(tg.stop)
	return tg
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// fakeDialer answers by hostname and records what it was asked.
type fakeDialer struct {
	tg *targets

	mu   sync.Mutex
	reqs []Request
	isos []IsolationKey
}

func (d *fakeDialer) record(req *Request, iso IsolationKey) {
	d.mu.Lock()
	d.reqs = append(d.reqs, *req)
	d.isos = append(d.isos, iso)
	d.mu.Unlock()
}

func (d *fakeDialer) keys() []IsolationKey {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]IsolationKey(nil), d.isos...)
}

func (d *fakeDialer) DialStream(ctx context.Context, req *Request, iso IsolationKey) (net.Conn, error) {
	d.record(req, iso)
	var addr string
	switch req.Host {
	case "echo.test", "10.0.0.1", "2001:db8::1", "abcdef.onion":
		addr = d.tg.echo.Addr().String()
	case "count.test":
		addr = d.tg.count.Addr().String()
	case "refused.test":
		return nil, &Error{Reply: ReplyConnectionRefused, Err: errors.New("exit said connection refused")}
	case "nodesc.onion":
		return nil, fmt.Errorf("fetching descriptor: %w", &Error{Reply: ReplyOnionDescNotFound})
	case "slow.test":
		<-ctx.Done()
		return nil, fmt.Errorf("waiting for circuit: %w", ctx.Err())
	default:
		return nil, errors.New("no such test host")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", addr)
}

func (d *fakeDialer) Resolve(ctx context.Context, host string, iso IsolationKey) ([]netip.Addr, error) {
	d.record(&Request{Command: Resolve, Host: host}, iso)
	switch host {
	case "dual.test":
		return []netip.Addr{netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("192.0.2.7")}, nil
	case "v6only.test":
		return []netip.Addr{netip.MustParseAddr("2001:db8::8")}, nil
	}
	return nil, errors.New("resolve failed")
}

func (d *fakeDialer) ResolvePTR(ctx context.Context, addr netip.Addr, iso IsolationKey) (string, error) {
	d.record(&Request{Command: ResolvePTR, Host: addr.String()}, iso)
	if addr == netip.MustParseAddr("192.0.2.7") {
		return "ptr.example", nil
	}
	return "", &Error{Reply: ReplyHostUnreachable, Err: errors.New("no PTR record")}
}

// testServer is a running Server on loopback.
type testServer struct {
	srv    *Server
	addr   string
	dialer *fakeDialer
	done   chan error
	cancel context.CancelFunc
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	d := &fakeDialer{tg: startTargets(t)}
	srv, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, addr: ln.Addr().String(), dialer: d, done: make(chan error, 1), cancel: cancel}
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop ends Serve and checks it returned nil. Safe to call twice.
func (ts *testServer) stop(t *testing.T) {
	t.Helper()
	ts.cancel()
	if ts.done == nil {
		return
	}
	if err := <-ts.done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	ts.done = nil
}

func (ts *testServer) dial(t *testing.T) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// exchange sends msg and reads exactly len(want) bytes, comparing them.
func exchange(t *testing.T, c net.Conn, msg, want []byte) {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading %d reply bytes: %v", len(want), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("reply % x, want % x", got, want)
	}
}

// expectEOF checks the server closed c without sending more.
func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	rest, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading to EOF: %v", err)
	}
	if len(rest) != 0 {
		t.Fatalf("got % x after the reply, want EOF", rest)
	}
}

func socks5Connect(host string, port uint16) []byte {
	return cat(5, 1, 0, 5, 1, 0, 3, len(host), host, byte(port>>8), byte(port))
}

var (
	ok5       = []byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	methodOK  = []byte{5, 0}
	granted4  = []byte{0, 0x5A, 0, 0, 0, 0, 0, 0}
	rejected4 = []byte{0, 0x5B, 0, 0, 0, 0, 0, 0}
)

func reply5(code ReplyCode) []byte { return []byte{5, byte(code), 0, 1, 0, 0, 0, 0, 0, 0} }

func TestServerRelaysBothWays(t *testing.T) {
	ts := startServer(t, Config{ID: "test", Flags: DefaultFlags()})
	c := ts.dial(t)
	exchange(t, c, socks5Connect("echo.test", 80), append(methodOK, ok5...))
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	go c.Write(big)
	got := make([]byte, len(big))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("echoed data differs")
	}
	c.CloseWrite()
	expectEOF(t, c) // echo server closes on EOF; the close comes back
	ts.stop(t)
	st := ts.srv.Stats()
	if st.BytesUp != uint64(len(big)) || st.BytesDown != uint64(len(big)) || st.Succeeded != 1 || st.Active != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestServerHalfClose(t *testing.T) {
	ts := startServer(t, Config{Flags: DefaultFlags()})
	c := ts.dial(t)
	// Optimistic data: the payload follows the request in the same write.
	msg := append(socks5Connect("count.test", 80), "hello"...)
	exchange(t, c, msg, append(methodOK, ok5...))
	if _, err := c.Write([]byte(" world")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The count server only answers after it saw EOF, so the answer proves
	// the half-close went through and the other direction stayed open.
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != "got 11" {
		t.Fatalf("answer %q, want %q", resp, "got 11")
	}
}

func TestServerSOCKS4(t *testing.T) {
	ts := startServer(t, Config{Flags: DefaultFlags()})
	c := ts.dial(t)
	exchange(t, c, cat(4, 1, 0, 80, 0, 0, 0, 1, "me", 0, "echo.test", 0), granted4)
	exchange(t, c, []byte("ping"), []byte("ping"))

	c = ts.dial(t)
	exchange(t, c, cat(4, 1, 0, 80, 0, 0, 0, 1, 0, "refused.test", 0), rejected4)
	expectEOF(t, c)

	c = ts.dial(t) // protocol error: SOCKS4 BIND
	exchange(t, c, cat(4, 2, 0, 80, 1, 2, 3, 4, 0), rejected4)
	expectEOF(t, c)
}

func TestServerPolicyRefusal(t *testing.T) {
	p, err := policy.Parse("accept 10.0.0.0/8, reject *")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Policy: p, Flags: DefaultFlags()})
	c := ts.dial(t)
	c.Write(socks5Connect("echo.test", 80))
	expectEOF(t, c)
	ts.stop(t)
	if st := ts.srv.Stats(); st.Denied != 1 || st.Succeeded != 0 {
		t.Errorf("stats %+v", st)
	}
	if len(ts.dialer.keys()) != 0 {
		t.Error("dialer was called for a denied client")
	}
}

// TestServerPolicyDefaults: with no SocksPolicy only loopback clients get
// in; a configured policy accepts what it does not match, as C tor's.
func TestServerPolicyDefaults(t *testing.T) {
	d := &fakeDialer{}
	srv, err := New(Config{Flags: DefaultFlags()}, d)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"127.0.0.1": true, "::1": true, "192.168.1.5": false, "fd00::1": false} {
		if got := srv.cfg.Policy.Allows(netip.MustParseAddr(addr), policy.AcceptUnmatched); got != want {
			t.Errorf("no policy: Allows(%s) = %v, want %v", addr, got, want)
		}
	}
	p, err := policy.Parse("reject 192.168.1.66")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Policy: p, Flags: DefaultFlags()})
	c := ts.dial(t)
	exchange(t, c, cat(4, 1, 0, 80, 0, 0, 0, 1, "me", 0, "echo.test", 0), granted4)
	exchange(t, c, []byte("ping"), []byte("ping"))
}

func TestServerSafeSocks(t *testing.T) {
	ts := startServer(t, Config{SafeSocks: true, Flags: Flags{IsolateSOCKSAuth: true, IPv6Traffic: true}})
	c := ts.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 1, 0, 80), append(methodOK, reply5(ReplyNotAllowed)...))
	expectEOF(t, c)
	c = ts.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 1, 0, 4, []byte{0x20, 1, 0xd, 0xb8, 15: 1}, 0, 80), append(methodOK, reply5(ReplyNotAllowed)...))
	c = ts.dial(t)
	exchange(t, c, cat(4, 1, 0, 80, 10, 0, 0, 1, 0), rejected4)
	// Hostnames pass, SOCKS4a included.
	c = ts.dial(t)
	exchange(t, c, cat(4, 1, 0, 80, 0, 0, 0, 1, 0, "echo.test", 0), granted4)
	c = ts.dial(t)
	exchange(t, c, socks5Connect("echo.test", 80), append(methodOK, ok5...))
	// Without SafeSocks the same IP request goes through.
	ts2 := startServer(t, Config{WarnUnsafeSocks: true, Flags: DefaultFlags()})
	c = ts2.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 1, 0, 80), append(methodOK, ok5...))
}

func TestServerErrorReplies(t *testing.T) {
	for _, extended := range []bool{false, true} {
		t.Run(fmt.Sprintf("ExtendedErrors=%v", extended), func(t *testing.T) {
			f := DefaultFlags()
			f.ExtendedErrors = extended
			ts := startServer(t, Config{Flags: f, ConnectTimeout: 50 * time.Millisecond})
			onion := ReplyGeneralFailure
			if extended {
				onion = ReplyOnionDescNotFound
			}
			for host, want := range map[string]ReplyCode{
				"refused.test": ReplyConnectionRefused,
				"nodesc.onion": onion,
				"other.test":   ReplyGeneralFailure,
				"slow.test":    ReplyTTLExpired,
			} {
				c := ts.dial(t)
				exchange(t, c, socks5Connect(host, 80), append(methodOK, reply5(want)...))
				expectEOF(t, c)
			}
			// Protocol-level codes.
			c := ts.dial(t)
			exchange(t, c, cat(5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80), append(methodOK, reply5(ReplyCommandUnsupported)...))
			c = ts.dial(t)
			exchange(t, c, cat(5, 1, 0, 5, 1, 0, 7, 1, 2, 3, 4, 0, 80), append(methodOK, reply5(ReplyAddrTypeUnsupported)...))
			c = ts.dial(t)
			exchange(t, c, cat(5, 1, 0, 5, 1, 0, 3, 3, "a b", 0, 80), append(methodOK, reply5(ReplyGeneralFailure)...))
			c = ts.dial(t)
			exchange(t, c, socks5Connect("echo.test", 0), append(methodOK, reply5(ReplyGeneralFailure)...))
		})
	}
}

func TestServerHTTPRequest(t *testing.T) {
	ts := startServer(t, Config{Flags: DefaultFlags()})
	c := ts.dial(t)
	c.Write([]byte("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"))
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.0 501 Tor is not an HTTP Proxy\r\n") ||
		!strings.Contains(string(resp), "This is a SOCKS Proxy, Not An HTTP Proxy") {
		t.Fatalf("response %q", resp)
	}
}

func TestServerResolve(t *testing.T) {
	ts := startServer(t, Config{Flags: DefaultFlags()})
	c := ts.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 0xF0, 0, 3, 9, "dual.test", 0, 0), cat(methodOK, 5, 0, 0, 1, 192, 0, 2, 7, 0, 0))
	expectEOF(t, c)
	c = ts.dial(t) // IPv6 answers are not allowed without IPv6Traffic
	exchange(t, c, cat(5, 1, 0, 5, 0xF0, 0, 3, 11, "v6only.test", 0, 0), append(methodOK, reply5(ReplyHostUnreachable)...))
	c = ts.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 0xF0, 0, 3, 8, "nx.test.", 0, 0), append(methodOK, reply5(ReplyHostUnreachable)...))
	c = ts.dial(t)
	exchange(t, c, cat(4, 0xF0, 0, 0, 0, 0, 0, 1, 0, "dual.test", 0), []byte{0, 0x5A, 0, 0, 192, 0, 2, 7})
	c = ts.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 0xF1, 0, 1, 192, 0, 2, 7, 0, 0), cat(methodOK, 5, 0, 0, 3, 11, "ptr.example", 0, 0))
	c = ts.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 0xF1, 0, 1, 192, 0, 2, 8, 0, 0), append(methodOK, reply5(ReplyHostUnreachable)...))
	c = ts.dial(t) // an address resolves to itself
	exchange(t, c, cat(5, 1, 0, 5, 0xF0, 0, 1, 192, 0, 2, 99, 0, 0), cat(methodOK, 5, 0, 0, 1, 192, 0, 2, 99, 0, 0))
	c = ts.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 0xF0, 0, 3, 8, "10.1.2.3", 0, 0), cat(methodOK, 5, 0, 0, 1, 10, 1, 2, 3, 0, 0))
	c = ts.dial(t) // onion names go to the Dialer, which automaps or refuses them
	exchange(t, c, cat(5, 1, 0, 5, 0xF0, 0, 3, 12, "abcdef.onion", 0, 0), append(methodOK, reply5(ReplyHostUnreachable)...))

	f := DefaultFlags()
	f.IPv6Traffic, f.PreferIPv6 = true, true
	ts6 := startServer(t, Config{Flags: f})
	c = ts6.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 0xF0, 0, 3, 9, "dual.test", 0, 0),
		cat(methodOK, 5, 0, 0, 4, []byte{0x20, 1, 0xd, 0xb8, 15: 7}, 0, 0))
}

func TestServerTrafficFlags(t *testing.T) {
	ts := startServer(t, Config{Flags: Flags{OnionTrafficOnly: true, NoIPv4Traffic: true}})
	c := ts.dial(t)
	exchange(t, c, socks5Connect("echo.test", 80), append(methodOK, reply5(ReplyNotAllowed)...))
	c = ts.dial(t)
	exchange(t, c, socks5Connect("abcdef.onion", 80), append(methodOK, ok5...))
	c = ts.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 0xF0, 0, 3, 9, "dual.test", 0, 0), append(methodOK, reply5(ReplyNotAllowed)...))

	ts = startServer(t, Config{Flags: Flags{NoOnionTraffic: true}})
	c = ts.dial(t)
	exchange(t, c, socks5Connect("abcdef.onion", 80), append(methodOK, reply5(ReplyNotAllowed)...))
	c = ts.dial(t) // IPv6 literal without IPv6Traffic
	exchange(t, c, cat(5, 1, 0, 5, 1, 0, 4, []byte{0x20, 1, 0xd, 0xb8, 15: 1}, 0, 80), append(methodOK, reply5(ReplyNotAllowed)...))

	ts = startServer(t, Config{Flags: Flags{IPv6Traffic: true, NoIPv4Traffic: true}})
	c = ts.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 1, 0, 80), append(methodOK, reply5(ReplyNotAllowed)...))
	c = ts.dial(t)
	exchange(t, c, cat(5, 1, 0, 5, 1, 0, 4, []byte{0x20, 1, 0xd, 0xb8, 15: 1}, 0, 80), append(methodOK, ok5...))
	reqs := ts.dialer.reqs
	if len(reqs) != 1 || reqs[0].Family != (FamilyPrefs{NoIPv4: true, IPv6: true}) {
		t.Errorf("dialer saw %+v", reqs)
	}

	if _, err := New(Config{Flags: Flags{OnionTrafficOnly: true, NoOnionTraffic: true}}, &fakeDialer{}); err == nil {
		t.Error("New accepted OnionTrafficOnly with NoOnionTraffic")
	}
}

func TestIsolationKey(t *testing.T) {
	a := &Request{Version: 5, Host: "a.org", Port: 80, Auth: true, Username: "u1", Password: "p",
		ClientAddr: netip.MustParseAddrPort("127.0.0.1:1111")}
	variants := map[string]*Request{
		"host":     {Version: 5, Host: "b.org", Port: 80, Auth: true, Username: "u1", Password: "p", ClientAddr: a.ClientAddr},
		"port":     {Version: 5, Host: "a.org", Port: 443, Auth: true, Username: "u1", Password: "p", ClientAddr: a.ClientAddr},
		"user":     {Version: 5, Host: "a.org", Port: 80, Auth: true, Username: "u2", Password: "p", ClientAddr: a.ClientAddr},
		"password": {Version: 5, Host: "a.org", Port: 80, Auth: true, Username: "u1", Password: "q", ClientAddr: a.ClientAddr},
		"noauth":   {Version: 5, Host: "a.org", Port: 80, ClientAddr: a.ClientAddr},
		"client":   {Version: 5, Host: "a.org", Port: 80, Auth: true, Username: "u1", Password: "p", ClientAddr: netip.MustParseAddrPort("127.0.0.2:1111")},
		"protocol": {Version: 4, Host: "a.org", Port: 80, Auth: true, Username: "u1", Password: "p", ClientAddr: a.ClientAddr},
	}
	// Which variants each flag separates from a.
	flags := map[string]Flags{
		"host":     {IsolateDestAddr: true},
		"port":     {IsolateDestPort: true},
		"user":     {IsolateSOCKSAuth: true},
		"password": {IsolateSOCKSAuth: true},
		"noauth":   {IsolateSOCKSAuth: true},
		"client":   {IsolateClientAddr: true},
		"protocol": {IsolateClientProtocol: true},
	}
	for name, f := range flags {
		for vname, v := range variants {
			same := isolationKey("L", f, a) == isolationKey("L", f, v)
			// A flag separates only its own variant (user/password/noauth
			// share IsolateSOCKSAuth).
			wantSame := !(vname == name || (f.IsolateSOCKSAuth && (vname == "user" || vname == "password" || vname == "noauth")))
			if same != wantSame {
				t.Errorf("flag %s, variant %s: same key = %v, want %v", name, vname, same, wantSame)
			}
		}
	}
	// With no isolation flags everything on one listener shares a key...
	for vname, v := range variants {
		if isolationKey("L", Flags{}, a) != isolationKey("L", Flags{}, v) {
			t.Errorf("variant %s isolated without flags", vname)
		}
	}
	// ...but listeners differ, unless they share a session group.
	if isolationKey("L1", Flags{}, a) == isolationKey("L2", Flags{}, a) {
		t.Error("two listeners share a key")
	}
	g := Flags{SessionGroup: 3, SessionGroupSet: true}
	if isolationKey("L1", g, a) != isolationKey("L2", g, a) {
		t.Error("two listeners in session group 3 have different keys")
	}
	if isolationKey("L1", g, a) == isolationKey("L1", Flags{SessionGroup: 4, SessionGroupSet: true}, a) {
		t.Error("session groups 3 and 4 share a key")
	}
}

func TestServerIsolationBySOCKSAuth(t *testing.T) {
	ts := startServer(t, Config{ID: "iso", Flags: DefaultFlags()})
	connect := func(user string) {
		c := ts.dial(t)
		msg := cat(5, 1, 2, 1, len(user), user, 0, socks5Connect("echo.test", 80)[3:])
		exchange(t, c, msg, cat(5, 2, 1, 0, ok5))
		c.Close()
	}
	connect("alice")
	connect("alice")
	connect("bob")
	keys := ts.dialer.keys()
	if len(keys) != 3 {
		t.Fatalf("%d dials, want 3", len(keys))
	}
	if keys[0] != keys[1] || keys[0] == keys[2] {
		t.Errorf("keys %+v: want alice, alice equal and bob different", keys)
	}
	if keys[0].Listener != "iso" || keys[0].Username != "alice" {
		t.Errorf("key %+v", keys[0])
	}
}

func TestServerMaxConns(t *testing.T) {
	ts := startServer(t, Config{MaxConns: 1, Flags: DefaultFlags()})
	first := ts.dial(t)
	exchange(t, first, socks5Connect("echo.test", 80), append(methodOK, ok5...))
	second := ts.dial(t)
	second.Write(socks5Connect("echo.test", 80))
	expectEOF(t, second)
	exchange(t, first, []byte("still here"), []byte("still here"))
	if st := ts.srv.Stats(); st.OverLimit != 1 || st.Active != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestServerCloseEndsEverything checks Close ends relays, handshakes and
// Serve, leaving no goroutine behind.
func TestServerCloseEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		tg := startTargets(t)
		d := &fakeDialer{tg: tg}
		srv, err := New(Config{Flags: DefaultFlags()}, d)
		if err != nil {
			t.Fatal(err)
		}
		ln := listen(t)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background(), ln) }()
		ts := &testServer{srv: srv, addr: ln.Addr().String()}
		var conns []net.Conn
		for range 3 { // relaying
			c := ts.dial(t)
			exchange(t, c, socks5Connect("echo.test", 80), append(methodOK, ok5...))
			exchange(t, c, []byte("x"), []byte("x"))
			conns = append(conns, c)
		}
		idle := ts.dial(t) // mid-handshake
		exchange(t, idle, []byte{5, 1, 0}, methodOK)
		slow := ts.dial(t) // waiting on the Dialer
		exchange(t, slow, socks5Connect("slow.test", 80), methodOK)
		for st := srv.Stats(); st.Active != 5; st = srv.Stats() {
			runtime.Gosched() // the slow request is accepted asynchronously
		}

		srv.Close()
		if st := srv.Stats(); st.Active != 0 {
			t.Errorf("%d connections active after Close returned", st.Active)
		}
		if err := <-done; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if err := srv.Serve(context.Background(), listen(t)); !errors.Is(err, ErrClosed) {
			t.Errorf("Serve after Close: %v", err)
		}
		for _, c := range append(conns, idle) {
			io.ReadAll(c) // each ends with EOF or reset
			c.Close()
		}
		slow.Close()
		tg.stop()
	}()
	// Goroutines started by context.AfterFunc may take a moment to finish
	// running; poll for the count to come back down.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServerLogs(t *testing.T) {
	for _, unsafe := range []bool{false, true} {
		var buf syncBuffer
		log := torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &buf})
		ts := startServer(t, Config{SafeSocks: true, Log: log, UnsafeLogging: unsafe, Flags: DefaultFlags()})
		c := ts.dial(t)
		exchange(t, c, cat(5, 1, 0, 5, 1, 0, 1, 10, 9, 8, 7, 0, 80), append(methodOK, reply5(ReplyNotAllowed)...))
		c = ts.dial(t)
		exchange(t, c, cat(5, 1, 2, 1, 6, "secret", 6, "hunter", 5, 1, 0, 3, 12, "refused.test", 0, 80),
			cat(5, 2, 1, 0, reply5(ReplyConnectionRefused)))
		ts.stop(t)
		out := buf.String()
		for _, want := range []string{
			"[warn] Your application (using socks5 to port 80) is giving Tor only an IP address.",
			"Rejecting.",
			"[info] SOCKS5 CONNECT to ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "secret") || strings.Contains(out, "hunter") {
			t.Errorf("credentials in the log:\n%s", out)
		}
		if got := strings.Contains(out, "refused.test") || strings.Contains(out, "10.9.8.7"); got != unsafe {
			t.Errorf("UnsafeLogging=%v, destination in log = %v:\n%s", unsafe, got, out)
		}
	}
}

// flakyListener fails its first Accept with a transient error.
type flakyListener struct {
	net.Listener
	failed bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, errors.New("accept4: too many open files")
	}
	return l.Listener.Accept()
}

func TestServerAcceptErrorRetries(t *testing.T) {
	srv, err := New(Config{Flags: DefaultFlags()}, &fakeDialer{tg: startTargets(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), &flakyListener{Listener: ln}) }()
	ts := &testServer{addr: ln.Addr().String()}
	c := ts.dial(t)
	exchange(t, c, socks5Connect("echo.test", 80), append(methodOK, ok5...))
	srv.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// BenchmarkServerRelay measures the relay: each op sends 1 MiB through the
// server to the echo target and reads it back.
func BenchmarkServerRelay(b *testing.B) {
	d := &fakeDialer{}
	tg := &targets{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	tg.echo, tg.count = ln, ln
	tg.wg.Add(1)
	go func() {
		defer tg.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.wg.Add(1)
			go func() { defer tg.wg.Done(); defer c.Close(); io.Copy(c, c) }()
		}
	}()
	defer tg.stop()
	d.tg = tg
	srv, err := New(Config{Flags: DefaultFlags()}, d)
	if err != nil {
		b.Fatal(err)
	}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), sln) }()
	defer func() { srv.Close(); <-done }()

	c, err := net.Dial("tcp", sln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Write(socks5Connect("echo.test", 80))
	if _, err := io.ReadFull(c, make([]byte, 12)); err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	back := make([]byte, 1<<20)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		errc := make(chan error, 1)
		go func() { _, err := c.Write(chunk); errc <- err }()
		if _, err := io.ReadFull(c, back); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
}
