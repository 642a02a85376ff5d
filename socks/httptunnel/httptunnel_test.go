package httptunnel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/socks"
	"tinytor/socks/sockstest"
)

// echoDialer opens streams to an echo server for "echo.test" and fails
// the others with the SOCKS reply their name says ("refused.test", ...).
type echoDialer struct {
	sockstest.NoLookups
	echo string
	mu   sync.Mutex
	isos []socks.IsolationKey
}

func (d *echoDialer) DialStream(ctx context.Context, req *socks.Request, iso socks.IsolationKey) (net.Conn, error) {
	d.mu.Lock()
	d.isos = append(d.isos, iso)
	d.mu.Unlock()
	codes := map[string]socks.ReplyCode{"refused.test": socks.ReplyConnectionRefused, "policy.test": socks.ReplyNotAllowed,
		"noname.test": socks.ReplyHostUnreachable, "slow.test": socks.ReplyTTLExpired, "nodesc.onion": socks.ReplyOnionDescNotFound}
	if code, ok := codes[req.Host]; ok {
		return nil, fmt.Errorf("opening stream: %w", &socks.Error{Reply: code, Err: errors.New("test failure")})
	}
	if req.Host != "echo.test" {
		return nil, errors.New("no such test host")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", d.echo)
}

func startEcho(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); io.Copy(c, c) })
		}
	})
	return ln.Addr().String()
}

func startTunnel(t *testing.T, d socks.Dialer) string {
	_, addr := sockstest.Serve(t, socks.Config{ID: "http", Flags: socks.DefaultFlags(), Protocol: Protocol{}}, d)
	return addr
}

// ask sends req on a new connection and returns the response head and the
// connection (whose reader holds what follows the head).
func ask(t *testing.T, addr, req string) (string, *bufio.Reader, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the response to %q: %v", req, err)
	}
	return strings.TrimRight(status, "\r\n"), br, c
}

func TestTunnelReplies(t *testing.T) {
	d := &echoDialer{echo: startEcho(t)}
	addr := startTunnel(t, d)

	status, br, c := ask(t, addr, "CONNECT echo.test:443 HTTP/1.1\r\nHost: echo.test:443\r\n\r\n")
	if status != "HTTP/1.0 200 OK" {
		t.Fatalf("status %q", status)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("response head goes on with %q", l)
	}
	io.WriteString(c, "hello")
	if got := make([]byte, 5); func() bool { _, err := io.ReadFull(br, got); return err != nil || string(got) != "hello" }() {
		t.Fatal("no echo through the tunnel")
	}

	for host, want := range map[string]string{
		"refused.test:80":  "HTTP/1.0 403 Forbidden (connection refused)",
		"policy.test:25":   "HTTP/1.0 403 Forbidden (exit policy)",
		"noname.test:80":   "HTTP/1.0 404 Not Found (resolve failed)",
		"slow.test:80":     "HTTP/1.0 504 Gateway Timeout",
		"nodesc.onion:80":  "HTTP/1.0 404 Not Found (resolve failed)",
		"unknown.test:80":  "HTTP/1.0 500 Internal Server Error",
		"echo.test:notnum": "HTTP/1.0 400 Bad Request",
	} {
		if status, _, _ := ask(t, addr, "CONNECT "+host+" HTTP/1.1\r\n\r\n"); status != want {
			t.Errorf("CONNECT %s: %q, want %q", host, status, want)
		}
	}
	status, br, _ = ask(t, addr, "GET http://echo.test/ HTTP/1.1\r\nHost: echo.test\r\n\r\n")
	if rest, _ := io.ReadAll(br); status != "HTTP/1.0 405 Method Not Allowed" || !strings.Contains(string(rest), "not an HTTP proxy") {
		t.Errorf("GET: %q %q", status, rest)
	}
}

// TestTunnelIsolation: Proxy-Authorization and X-Tor-Stream-Isolation
// isolate streams as SOCKS credentials do (IsolateSOCKSAuth).
func TestTunnelIsolation(t *testing.T) {
	d := &echoDialer{echo: startEcho(t)}
	addr := startTunnel(t, d)
	for _, h := range []string{"", "Proxy-Authorization: Basic YTpi\r\n", "Proxy-Authorization: Basic YTpi\r\n",
		"Proxy-Authorization: Basic YzpkCg==\r\n", "Proxy-Authorization: Basic YTpi\r\nX-Tor-Stream-Isolation: 2\r\n"} {
		if status, _, c := ask(t, addr, "CONNECT echo.test:80 HTTP/1.1\r\n"+h+"\r\n"); status != "HTTP/1.0 200 OK" {
			t.Fatalf("status %q", status)
		} else {
			c.Close()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	k := d.isos
	if len(k) != 5 || k[0] == k[1] || k[1] != k[2] || k[2] == k[3] || k[2] == k[4] || k[1].Username != "Basic YTpi" || k[4].Password != "2" {
		t.Errorf("isolation keys %+v", k)
	}
	if k[0].Protocol != 0 || k[0].Listener != "http" {
		t.Errorf("key %+v: want the listener and no protocol isolation (not asked for)", k[0])
	}
}

// endError is a stream failure with an exit's END reason, as
// tor.StreamError.
type endError string

func (e endError) Error() string     { return "stream closed by the exit: " + string(e) }
func (e endError) EndReason() string { return string(e) }

func TestResponse(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("dial: %w", endError("DESTROY")), "HTTP/1.0 502 Bad Gateway (destroy cell received)"},
		{&socks.Error{Reply: socks.ReplyGeneralFailure, Err: endError("RESOURCELIMIT")}, "HTTP/1.0 502 Bad Gateway (resource limit)"},
		{endError("CONNRESET"), "HTTP/1.0 403 Forbidden (connection reset)"},
		{endError(""), "HTTP/1.0 500 Internal Server Error"}, // no END: the SOCKS reply decides
		{&socks.Error{Reply: socks.ReplyTTLExpired, Err: endError("")}, "HTTP/1.0 504 Gateway Timeout"},
		{&socks.Error{Reply: socks.ReplyOnionBadAddress}, "HTTP/1.0 502 Bad Gateway (tor protocol violation)"},
		{&socks.Error{Reply: socks.ReplyOnionIntroTimedOut}, "HTTP/1.0 504 Gateway Timeout"},
		{&socks.Error{Reply: socks.ReplyOnionMissingClientAuth}, "HTTP/1.0 404 Not Found (resolve failed)"},
		{context.DeadlineExceeded, "HTTP/1.0 504 Gateway Timeout"},
	} {
		if got, _, _ := strings.Cut(Response(tc.err), "\r\n"); got != tc.want {
			t.Errorf("Response(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
