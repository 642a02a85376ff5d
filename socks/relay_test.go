package socks

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// connPair returns both ends of a fresh connection on network ("tcp" or
// "unix"): the accepted one (the server's, as relay sees it) and the
// dialled one (the client's).
func connPair(t *testing.T, network string) (server, client net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() { c, err := ln.Accept(); ch <- accepted{c, err} }()
	client, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Cleanup(func() { a.c.Close(); client.Close() })
	return a.c, client
}

// notifyWriter collects what is written to it and signals each write.
type notifyWriter struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newNotifyWriter() *notifyWriter { return &notifyWriter{wrote: make(chan struct{}, 1024)} }

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	w.wrote <- struct{}{}
	return n, err
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

type copyResult struct {
	n   int64
	err error
}

// startCopyUp runs copyUp(dst, server, br) in a goroutine.
func startCopyUp(dst io.Writer, server net.Conn, br io.Reader) <-chan copyResult {
	done := make(chan copyResult, 1)
	go func() { n, err := copyUp(dst, server, br); done <- copyResult{n, err} }()
	return done
}

func TestCopyUpEarlyDataFirst(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			server, client := connPair(t, network)
			if _, err := client.Write([]byte("REQUEST|early,")); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReaderSize(server, 512)
			if req, err := br.ReadString('|'); err != nil || req != "REQUEST|" {
				t.Fatalf("request %q, %v", req, err)
			}
			if br.Buffered() == 0 {
				t.Fatal("the early data is not in the bufio.Reader: the test tests nothing")
			}
			w := newNotifyWriter()
			done := startCopyUp(w, server, br)
			<-w.wrote // the early data
			big := bytes.Repeat([]byte("0123456789abcdef"), 10000)
			if _, err := client.Write(big); err != nil {
				t.Fatal(err)
			}
			if err := client.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			r := <-done
			want := "early," + string(big)
			if r.err != nil || r.n != int64(len(want)) || w.String() != want {
				t.Fatalf("copyUp: %d bytes, %v; got %d bytes, want %d", r.n, r.err, len(w.String()), len(want))
			}
		})
	}
}

func TestCopyUpDeadline(t *testing.T) {
	server, _ := connPair(t, "tcp")
	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	r := <-startCopyUp(io.Discard, server, server)
	if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.n != 0 {
		t.Fatalf("copyUp past the deadline: %d, %v", r.n, r.err)
	}
}

func TestCopyUpClosed(t *testing.T) {
	server, client := connPair(t, "tcp")
	w := newNotifyWriter()
	done := startCopyUp(w, server, bufio.NewReader(server))
	client.Write([]byte("x"))
	<-w.wrote
	server.Close() // as relay's closeBoth does
	r := <-done
	if !errors.Is(r.err, net.ErrClosed) || r.n != 1 {
		t.Fatalf("copyUp of a closed conn: %d, %v", r.n, r.err)
	}
}

func TestCopyUpReset(t *testing.T) {
	server, client := connPair(t, "tcp")
	w := newNotifyWriter()
	done := startCopyUp(w, server, server)
	client.Write([]byte("x"))
	<-w.wrote
	client.(*net.TCPConn).SetLinger(0)
	client.Close()
	// A reset is an error, not a clean end of data.
	if r := <-done; !errors.Is(r.err, syscall.ECONNRESET) || r.n != 1 {
		t.Fatalf("copyUp of a reset conn: %d, %v", r.n, r.err)
	}
}

// errWriter fails every write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("stream broke") }

func TestCopyUpWriteError(t *testing.T) {
	server, client := connPair(t, "tcp")
	done := startCopyUp(errWriter{}, server, server)
	client.Write([]byte("x"))
	if r := <-done; r.err == nil || r.err.Error() != "stream broke" {
		t.Fatalf("copyUp to a broken stream: %d, %v", r.n, r.err)
	}
}

// TestCopyUpFallback covers connections without a socket (net.Pipe) and
// readers copyUp does not know.
func TestCopyUpFallback(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	go func() { client.Write([]byte("piped")); client.Close() }()
	if n, err := copyUp(io.Discard, server, bufio.NewReader(server)); err != nil || n != 5 {
		t.Errorf("net.Pipe: %d, %v", n, err)
	}

	tcp, tclient := connPair(t, "tcp")
	go func() { tclient.Write([]byte("tcp")); tclient.Close() }()
	var got bytes.Buffer
	if n, err := copyUp(&got, tcp, io.MultiReader(bytes.NewReader([]byte("pre-")), tcp)); err != nil || got.String() != "pre-tcp" {
		t.Errorf("other reader: %d, %v, %q", n, err, got.String())
	}
}

// TestCopyUpIdleHoldsNoBuffer checks that a client that sends nothing
// costs its relay no copy buffer: 200 idle copies must hold far less
// heap than 200 buffers.
func TestCopyUpIdleHoldsNoBuffer(t *testing.T) {
	const conns = 200
	servers := make([]net.Conn, conns)
	clients := make([]net.Conn, conns)
	for i := range conns {
		servers[i], clients[i] = connPair(t, "tcp")
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // a second cycle empties the pools
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	w := newNotifyWriter()
	dones := make([]<-chan copyResult, conns)
	for i := range conns {
		dones[i] = startCopyUp(w, servers[i], servers[i])
		// One byte through each, so that each copy has been through a
		// read and is back waiting for the next.
		clients[i].Write([]byte("x"))
		<-w.wrote
	}
	after := heap()
	for i := range conns {
		clients[i].Close()
		if r := <-dones[i]; r.err != nil || r.n != 1 {
			t.Errorf("copy %d: %d, %v", i, r.n, r.err)
		}
	}
	if grew := int64(after) - int64(before); grew > conns*upBufSize/4 {
		t.Errorf("%d idle copies took %d bytes of heap, %d each (a buffer is %d)", conns, grew, grew/conns, upBufSize)
	} else {
		t.Logf("%d idle copies took %d bytes of heap, %d each", conns, grew, grew/conns)
	}
}
