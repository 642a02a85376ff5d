package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// startProxy serves a Proxy with the given delay in front of target and
// returns its address; the proxy stops at the end of the test.
func startProxy(t *testing.T, delay time.Duration, buffer int, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{Delay: delay, Buffer: buffer, Logf: t.Logf}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, target) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// startServer runs handle for every connection to a new loopback listener.
func startServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func echo(c net.Conn) { io.Copy(c, c) }

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn)
}

func TestRoundTripTakesTwiceTheDelay(t *testing.T) {
	const delay = 40 * time.Millisecond
	addr := startProxy(t, delay, 1<<20, startServer(t, echo))
	c := dial(t, addr)
	for i := range 3 {
		msg := []byte{'p', 'i', 'n', byte('0' + i)}
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		rtt := time.Since(start)
		if !bytes.Equal(got, msg) {
			t.Fatalf("echo %q, want %q", got, msg)
		}
		if rtt < 2*delay {
			t.Errorf("round trip %d took %s, want at least %s", i, rtt, 2*delay)
		}
		if rtt > 2*delay+2*time.Second {
			t.Errorf("round trip %d took %s, far more than %s", i, rtt, 2*delay)
		}
		t.Logf("round trip %d: %s", i, rtt)
	}
}

// TestBulkTransferIsNotWindowLimited sends 16 MiB through a 50 ms proxy: a
// proxy that held one buffer per round trip (a 64 KiB window over 100 ms)
// would need 25 s; this one must pass the data at the speed of the
// machine, one delay late.
func TestBulkTransferIsNotWindowLimited(t *testing.T) {
	const (
		delay = 50 * time.Millisecond
		size  = 16 << 20
	)
	// The server hashes what it receives until EOF and answers with the hash.
	addr := startProxy(t, delay, 8<<20, startServer(t, func(c net.Conn) {
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return
		}
		c.Write(h.Sum(nil))
	}))
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	c := dial(t, addr)
	start := time.Now()
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("server hashed %x, want %x", got, want)
	}
	windowLimited := time.Duration(size/(64<<10)) * 2 * delay
	t.Logf("16 MiB in %s (%.1f MiB/s); a 64 KiB window per round trip would take %s",
		elapsed, float64(size)/(1<<20)/elapsed.Seconds(), windowLimited)
	if elapsed < 2*delay {
		t.Errorf("transfer and answer took %s, less than one round trip %s", elapsed, 2*delay)
	}
	if elapsed > windowLimited/8 {
		t.Errorf("transfer took %s: throughput capped (a 64 KiB window per round trip takes %s)", elapsed, windowLimited)
	}
}

func TestHalfCloseIsDelayed(t *testing.T) {
	const delay = 30 * time.Millisecond
	type result struct {
		got     string
		eofWait time.Duration
	}
	results := make(chan result, 1)
	addr := startProxy(t, delay, 1<<20, startServer(t, func(c net.Conn) {
		start := time.Now()
		b, err := io.ReadAll(c)
		if err != nil {
			results <- result{got: "error: " + err.Error()}
			return
		}
		results <- result{got: string(b), eofWait: time.Since(start)}
		c.Write([]byte("bye"))
	}))
	c := dial(t, addr)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "bye" {
		t.Errorf("client read %q after its half-close, want bye", got)
	}
	r := <-results
	if r.got != "hello" {
		t.Errorf("server read %q, want hello", r.got)
	}
	if r.eofWait < delay {
		t.Errorf("server saw EOF %s after accepting, want at least the delay %s", r.eofWait, delay)
	}
}

func TestUnreachableTargetClosesClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	c := dial(t, startProxy(t, 10*time.Millisecond, 1<<20, target))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, %v; want the proxy to close the connection", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed: %v", err)
	}
}

func TestServeEndsConnectionsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	p := &Proxy{Delay: 5 * time.Millisecond, Buffer: 1 << 20}
	go func() { done <- p.Serve(ctx, ln, startServer(t, echo)) }()
	c := dial(t, ln.Addr().String())
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d, %v after Serve returned; want the connection closed", n, err)
	}
}

func TestQueueHoldsAtMostMaxBytes(t *testing.T) {
	q := newQueue(100)
	if !q.push(chunk{data: make([]byte, 60)}) {
		t.Fatal("push into an empty queue failed")
	}
	pushed := make(chan bool, 1)
	go func() { pushed <- q.push(chunk{data: make([]byte, 60)}) }()
	select {
	case <-pushed:
		t.Fatal("a push past the limit did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	if c, ok := q.pop(); !ok || len(c.data) != 60 {
		t.Fatalf("pop = %d bytes, %v", len(c.data), ok)
	}
	if !<-pushed {
		t.Fatal("the waiting push failed after a pop")
	}
	q.mu.Lock()
	held := q.bytes
	q.mu.Unlock()
	if held != 60 {
		t.Errorf("queue holds %d bytes, want 60", held)
	}
	// A chunk larger than the limit still passes through an empty queue.
	if _, ok := q.pop(); !ok {
		t.Fatal("pop failed")
	}
	if !q.push(chunk{data: make([]byte, 150)}) {
		t.Fatal("an oversized chunk into an empty queue failed")
	}
	q.close()
	if q.push(chunk{data: []byte{1}}) {
		t.Error("push after close succeeded")
	}
	if _, ok := q.pop(); ok {
		t.Error("pop after close succeeded")
	}
}

func TestParsePair(t *testing.T) {
	good, err := parsePair("127.0.0.1:5000=127.0.0.1:5001")
	if err != nil {
		t.Fatal(err)
	}
	if good.listen.Port() != 5000 || good.target.Port() != 5001 {
		t.Errorf("parsed %v", good)
	}
	for _, bad := range []string{
		"", "127.0.0.1:5000", "127.0.0.1:5000=", "=127.0.0.1:5001",
		"127.0.0.1:5000=192.0.2.1:5001", "10.0.0.1:5000=127.0.0.1:5001",
		"127.0.0.1:0=127.0.0.1:5001", "127.0.0.1:5000=127.0.0.1:5000",
		"localhost:5000=127.0.0.1:5001", "127.0.0.1:5000=127.0.0.1:5001=x",
	} {
		if p, err := parsePair(bad); err == nil {
			t.Errorf("parsePair(%q) = %v, want an error", bad, p)
		}
	}
}

func FuzzParsePair(f *testing.F) {
	f.Add("127.0.0.1:5000=127.0.0.1:5001")
	f.Add("[::1]:1=[::1]:2")
	f.Add("127.0.0.1:5000=")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePair(s)
		if err != nil {
			return
		}
		if !p.listen.Addr().IsLoopback() || !p.target.Addr().IsLoopback() || p.listen == p.target {
			t.Fatalf("parsePair(%q) accepted %v", s, p)
		}
		if !strings.Contains(s, "=") {
			t.Fatalf("parsePair(%q) accepted a string without '='", s)
		}
	})
}
