package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/socks"
	"tinytor/socks/sockstest"
)

// startHTTP serves a fixed body on loopback with a tiny HTTP/1.0 server:
// "/" answers 200 with body, anything else 404.
func startHTTP(t *testing.T, body []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				for { // headers
					h, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if h == "\r\n" {
						break
					}
				}
				if f := strings.Fields(line); len(f) < 2 || f[1] != "/" {
					io.WriteString(c, "HTTP/1.0 404 Not Found\r\n\r\n")
					return
				}
				fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
				c.Write(body)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// loopDialer is a socks.Dialer that maps hostname "web.test" to the loopback
// HTTP server and refuses everything else; it records the usernames used.
type loopDialer struct {
	web string
	// barrier, when set, holds the first barrier dials until that many are
	// in progress at once.
	barrier int

	mu      sync.Mutex
	users   map[string]int
	arrived int
	full    chan struct{} // closed when barrier dials have arrived
}

func (d *loopDialer) DialStream(ctx context.Context, req *socks.Request, iso socks.IsolationKey) (net.Conn, error) {
	d.mu.Lock()
	d.users[iso.Username]++
	d.arrived++
	wait := d.barrier > 0 && d.arrived <= d.barrier
	if d.barrier > 0 && d.arrived == d.barrier {
		close(d.full)
	}
	d.mu.Unlock()
	if wait {
		select {
		case <-d.full:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if req.Host != "web.test" {
		return nil, socks.Errorf(socks.ReplyHostUnreachable, "unknown host %q", req.Host)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", d.web)
}

// seen returns a copy of the username counts.
func (d *loopDialer) seen() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string]int, len(d.users))
	for k, v := range d.users {
		m[k] = v
	}
	return m
}

func (d *loopDialer) Resolve(context.Context, string, socks.IsolationKey) ([]netip.Addr, error) {
	return nil, errors.New("not in this test")
}

func (d *loopDialer) ResolvePTR(context.Context, netip.Addr, socks.IsolationKey) (string, error) {
	return "", errors.New("not in this test")
}

// startProxy runs tinytor's SOCKS server on loopback in front of d.
func startProxy(t *testing.T, d socks.Dialer) string {
	t.Helper()
	_, addr := sockstest.Serve(t, socks.Config{Flags: socks.DefaultFlags()}, d)
	return addr
}

func TestRunEndToEnd(t *testing.T) {
	body := bytes.Repeat([]byte("tinytor "), 8192) // 64 KiB
	// The first 4 dials wait for one another: a worker has one request in
	// flight at a time, so all 4 workers must have dialled, each with its
	// own username. (Without the barrier, 20 requests taken from a shared
	// count need not reach every worker.)
	d := &loopDialer{web: startHTTP(t, body), users: map[string]int{}, barrier: 4, full: make(chan struct{})}
	proxy := startProxy(t, d)
	port := d.web[strings.LastIndexByte(d.web, ':')+1:]

	res, err := Run(context.Background(), Config{
		Proxy: proxy, URL: "http://web.test:" + port + "/", Workers: 4, Count: 20,
		Timeout: 10 * time.Second, UserPerWorker: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 20 || len(res.Errors) != 0 {
		t.Fatalf("ok %d, errors %v", res.OK, res.Errors)
	}
	header := int64(len(fmt.Sprintf("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))))
	if want := 20 * (header + int64(len(body))); res.Bytes != want {
		t.Errorf("bytes %d, want %d", res.Bytes, want)
	}
	for _, l := range []*Latency{&res.Connect, &res.First, &res.Complete} {
		if l.Count() != 20 || l.Percentile(50) <= 0 || l.Max() < l.Percentile(99) {
			t.Errorf("latency count %d p50 %v p99 %v max %v", l.Count(), l.Percentile(50), l.Percentile(99), l.Max())
		}
	}
	if res.First.Percentile(50) < res.Connect.Percentile(50) || res.Complete.Max() < res.First.Max() {
		t.Error("first byte before connect, or completion before first byte")
	}
	// Each worker used its own username, bench-PID-W.
	users, total := d.seen(), 0
	for w := range 4 {
		total += users[fmt.Sprintf("bench-%d-%d", os.Getpid(), w)]
	}
	if len(users) != 4 || total != 20 {
		t.Errorf("usernames %v, want bench-%d-0 to -3 for 20 requests", users, os.Getpid())
	}
	var out strings.Builder
	res.Print(&out)
	for _, want := range []string{"ok 20, failed 0", "MiB/s", "socks connect", "first byte", "p99"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunErrorsByKind(t *testing.T) {
	d := &loopDialer{web: startHTTP(t, []byte("x")), users: map[string]int{}}
	proxy := startProxy(t, d)
	port := d.web[strings.LastIndexByte(d.web, ':')+1:]

	res, err := Run(context.Background(), Config{Proxy: proxy, URL: "http://nowhere.test/", Workers: 2, Count: 5, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Errors["socks reply 0x04 (host unreachable)"] != 5 {
		t.Errorf("ok %d, errors %v", res.OK, res.Errors)
	}
	if res.Connect.Count() != 0 {
		t.Errorf("%d connect latencies recorded for failed connects", res.Connect.Count())
	}

	res, err = Run(context.Background(), Config{Proxy: proxy, URL: "http://web.test:" + port + "/missing", Workers: 1, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["HTTP status 404"] != 3 {
		t.Errorf("errors %v", res.Errors)
	}

	// A proxy that is not there.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	res, err = Run(context.Background(), Config{Proxy: dead, URL: "http://web.test/", Workers: 1, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["proxy unreachable"] != 2 {
		t.Errorf("errors %v", res.Errors)
	}
	var out strings.Builder
	res.Print(&out)
	if !strings.Contains(out.String(), "2  proxy unreachable") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestRunDuration(t *testing.T) {
	d := &loopDialer{web: startHTTP(t, []byte("hello")), users: map[string]int{}}
	proxy := startProxy(t, d)
	port := d.web[strings.LastIndexByte(d.web, ':')+1:]
	start := time.Now()
	res, err := Run(context.Background(), Config{Proxy: proxy, URL: "http://web.test:" + port + "/", Workers: 2, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Run stops no earlier than the duration; how much later depends on the
	// machine's load, so that is only logged.
	el := time.Since(start)
	if el < 200*time.Millisecond {
		t.Errorf("ran %v for a 200ms duration", el)
	}
	t.Logf("ran %v for a 200ms duration", el)
	if res.OK == 0 || len(res.Errors) != 0 {
		t.Errorf("ok %d, errors %v", res.OK, res.Errors)
	}
	// No username without -user-per-worker.
	if users := d.seen(); len(users) != 1 || users[""] == 0 {
		t.Errorf("usernames %v", users)
	}
}

// TestSOCKS5ClientReplies drives the client against a scripted server to
// cover reply forms tinytor does not send (domain and IPv6 bound addresses).
func TestSOCKS5ClientReplies(t *testing.T) {
	for name, tc := range map[string]struct {
		reply   []byte
		wantErr string
	}{
		"ipv4 bound":   {[]byte{5, 0, 0, 1, 1, 2, 3, 4, 0, 80}, ""},
		"ipv6 bound":   {append([]byte{5, 0, 0, 4}, make([]byte, 18)...), ""},
		"domain bound": {append([]byte{5, 0, 0, 3, 3}, "abc\x00\x50"...), ""},
		"refused":      {[]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}, "0x05 (connection refused)"},
		"bad atyp":     {[]byte{5, 0, 0, 9}, "address type 9"},
		"short":        {[]byte{5, 0, 0}, "reading socks reply"},
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan []byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- nil
					return
				}
				defer c.Close()
				greeting := make([]byte, 3)
				io.ReadFull(c, greeting)
				c.Write([]byte{5, 0}) // answer before the request is sent
				buf := make([]byte, 7+len("web.test"))
				io.ReadFull(c, buf)
				got <- append(greeting, buf...)
				c.Write(tc.reply)
				if name != "short" {
					c.Write([]byte("payload"))
				}
			}()
			c, err := dialSOCKS5(context.Background(), ln.Addr().String(), "web.test", 80, "", "")
			req := <-got
			if !bytes.Equal(req, append([]byte{5, 1, 0, 5, 1, 0, 3, 8}, "web.test\x00\x50"...)) {
				t.Errorf("request % x", req)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rest, _ := io.ReadAll(c)
			if string(rest) != "payload" {
				t.Errorf("after the reply: %q", rest)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tg, err := parseTarget("http://example.com:8080/a/b?c=d")
	if err != nil || tg.host != "example.com" || tg.port != 8080 || tg.path != "/a/b?c=d" || tg.hdr != "example.com:8080" {
		t.Errorf("%+v, %v", tg, err)
	}
	tg, err = parseTarget("http://xyz.onion")
	if err != nil || tg.port != 80 || tg.path != "/" {
		t.Errorf("%+v, %v", tg, err)
	}
	for _, bad := range []string{"https://a/", "http:///x", "http://a:0/", "http://a:99999/", "::"} {
		if _, err := parseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q) succeeded", bad)
		}
	}
}
