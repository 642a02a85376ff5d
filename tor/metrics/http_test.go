package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"tinytor/tor/policy"
)

func startHTTP(t *testing.T, r *Registry, p policy.Policy) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(r, p, nil).Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// exchange sends raw and returns everything the server sends until it
// closes the connection.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, raw)
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		// A reset after the server closes on unread input is fine.
		var ne *net.OpError
		if !errors.As(err, &ne) {
			t.Fatal(err)
		}
	}
	return string(b)
}

func TestHTTPMetrics(t *testing.T) {
	r := testRegistry(t)
	addr := startHTTP(t, r, nil)
	got := exchange(t, addr, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/2.42\r\nAccept: text/plain\r\n\r\n")
	want := "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
		strconv.Itoa(len(wantExposition)) + "\r\nConnection: close\r\n\r\n" + wantExposition
	if got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
	if got := exchange(t, addr, "GET /metrics?x=1 HTTP/1.0\n\n"); !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") {
		t.Errorf("query string / bare LF: %q", got)
	}
	for _, tc := range []struct{ req, status string }{
		{"GET / HTTP/1.1\r\n\r\n", "404 Not Found"},
		{"GET /metricsx HTTP/1.0\r\n\r\n", "404 Not Found"},
		{"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "405 Method Not Allowed"},
		{"HEAD /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed"},
		{"GET /metrics HTTP/2.0\r\n\r\n", "505 HTTP Version Not Supported"},
		{"GET /metrics\r\n\r\n", "400 Bad Request"},
		{"GET /metrics HTTP/1.1\r\nbad header\r\n\r\n", "400 Bad Request"},
		{"GET /metrics HTTP/1.1\r\nX: " + strings.Repeat("a", MaxRequestSize) + "\r\n\r\n", "431 Request Header Fields Too Large"},
	} {
		got := exchange(t, addr, tc.req)
		if !strings.HasPrefix(got, "HTTP/1.0 "+tc.status+"\r\n") {
			t.Errorf("%.30q: got %.80q, want %s", tc.req, got, tc.status)
		}
	}
}

func TestHTTPPolicyRejects(t *testing.T) {
	r := testRegistry(t)
	p, err := policy.Parse("reject 127.0.0.1/8, accept *")
	if err != nil {
		t.Fatal(err)
	}
	addr := startHTTP(t, r, p)
	if got := exchange(t, addr, "GET /metrics HTTP/1.0\r\n\r\n"); got != "" {
		t.Fatalf("rejected client got %q", got)
	}
}

func TestPolicy(t *testing.T) {
	ip := netip.MustParseAddr
	allow := func(s *Server, a string) bool {
		return s.allowed(net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip(a), 4000)))
	}
	zero := NewServer(NewRegistry(), nil, nil)
	if !allow(zero, "127.0.0.5") || !allow(zero, "::1") || allow(zero, "192.168.1.2") {
		t.Error("default policy is not loopback-only")
	}
	p, err := policy.Parse("accept 192.168.1.0/24\nreject 10.1.0.0/16,accept 10.0.0.0/8\naccept [fd00::]/8")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(NewRegistry(), p, nil)
	for addr, want := range map[string]bool{
		"192.168.1.77": true, "192.168.2.1": false, "10.1.2.3": false, "10.2.3.4": true,
		"fd12::1": true, "fe80::1": false, "127.0.0.1": false, "::ffff:10.2.3.4": true,
	} {
		if got := allow(s, addr); got != want {
			t.Errorf("allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	p, _ = policy.Parse("accept *6")
	if s := NewServer(NewRegistry(), p, nil); !allow(s, "::1") || allow(s, "127.0.0.1") {
		t.Error("*6")
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "GET /metrics HTTP/1.0\n\n", "POST / HTTP/1.1\r\n\r\n",
		"GET  HTTP/1.1\r\n\r\n", "\r\n\r\n", "GET /metrics HTTP/1.1\r\n: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || statusText(re.Status) == "" {
				t.Fatalf("error %v is not a RequestError with a known status", err)
			}
			return
		}
		if r.Method == "" || r.Target == "" || (r.Proto != "HTTP/1.0" && r.Proto != "HTTP/1.1") {
			t.Fatalf("accepted bad request %+v", r)
		}
	})
}
