// Command testnet-delay is the latency proxy of the private test network
// started by scripts/testnet with TESTNET_LATENCY_MS=N: every ORPort of the
// network is advertised on a port this proxy listens on, and the proxy
// forwards each connection to the tor's real (NoAdvertise) listener, holding
// every chunk of data for -delay in each direction. Clients and relays that
// connect to each other thus all cross one delay each way, as on a real
// network. It is a test tool only and is never linked into tinytor.
//
//	testnet-delay -delay 25ms LISTEN=TARGET [LISTEN=TARGET ...]
//
// LISTEN and TARGET are loopback IP:port pairs. Each chunk read from one side
// is stamped with the time it arrived and queued; a writer per direction
// sends it to the other side once its time has come. Reading goes on while
// earlier chunks wait, so throughput is not capped to one buffer per round
// trip: a bulk transfer runs at full speed, only later. Each direction of a
// connection queues at most -buffer bytes; past that its reader stops
// reading, and TCP flow control pushes back on the sender. A half-close
// (EOF) is passed on after the same delay. The TCP handshake itself is not
// delayed: the first data is.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	delay := flag.Duration("delay", 0, "one-way delay added to every chunk in each direction")
	buffer := flag.Int("buffer", 4<<20, "bytes queued at most per direction of a connection")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: testnet-delay -delay D [-buffer B] LISTEN=TARGET ...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *delay < 0 || *buffer < 1 || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var pairs []pair
	for _, a := range flag.Args() {
		p, err := parsePair(a)
		if err != nil {
			log.Fatalf("testnet-delay: %v", err)
		}
		pairs = append(pairs, p)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p := &Proxy{Delay: *delay, Buffer: *buffer, Logf: log.Printf}
	if err := p.Run(ctx, pairs); err != nil {
		log.Fatalf("testnet-delay: %v", err)
	}
}

// pair is one LISTEN=TARGET argument.
type pair struct {
	listen, target netip.AddrPort
}

// parsePair parses "IP:PORT=IP:PORT"; both addresses must be loopback and
// both ports non-zero.
func parsePair(s string) (pair, error) {
	l, t, ok := strings.Cut(s, "=")
	if !ok {
		return pair{}, fmt.Errorf("argument %q: want LISTEN=TARGET", s)
	}
	var p pair
	var err error
	if p.listen, err = netip.ParseAddrPort(l); err != nil {
		return pair{}, fmt.Errorf("argument %q: listen address: %w", s, err)
	}
	if p.target, err = netip.ParseAddrPort(t); err != nil {
		return pair{}, fmt.Errorf("argument %q: target address: %w", s, err)
	}
	for _, a := range []netip.AddrPort{p.listen, p.target} {
		if !a.Addr().IsLoopback() || a.Port() == 0 {
			return pair{}, fmt.Errorf("argument %q: %s is not a loopback address with a port", s, a)
		}
	}
	if p.listen == p.target {
		return pair{}, fmt.Errorf("argument %q: listen and target are the same", s)
	}
	return p, nil
}

// Proxy forwards connections with a fixed one-way delay in each direction.
type Proxy struct {
	// Delay is added to every chunk, in each direction.
	Delay time.Duration
	// Buffer is the most bytes queued per direction of a connection.
	Buffer int
	// Logf, if not nil, receives errors that do not stop the proxy.
	Logf func(format string, args ...any)
}

func (p *Proxy) logf(format string, args ...any) {
	if p.Logf != nil {
		p.Logf(format, args...)
	}
}

// Run listens on every pair's listen address and serves until ctx ends.
// It fails at once if a listen address cannot be bound.
func (p *Proxy) Run(ctx context.Context, pairs []pair) error {
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	var lc net.ListenConfig
	for _, pr := range pairs {
		ln, err := lc.Listen(ctx, "tcp", pr.listen.String())
		if err != nil {
			closeAll()
			return fmt.Errorf("listening on %s: %w", pr.listen, err)
		}
		lns = append(lns, ln)
	}
	p.logf("testnet-delay: %d listeners, delay %s each way", len(lns), p.Delay)
	var wg sync.WaitGroup
	errs := make(chan error, len(lns))
	for i, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- p.Serve(ctx, ln, pairs[i].target.String())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Serve accepts connections on ln and forwards each to target until ctx
// ends; it closes ln and every connection it made before it returns. It
// returns nil when ctx ended, or the error that stopped accepting.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, target string) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accepting on %s: %w", ln.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.handle(ctx, c, target)
		}()
	}
}

// handle forwards one accepted connection to target.
func (p *Proxy) handle(ctx context.Context, client net.Conn, target string) {
	defer client.Close()
	d := net.Dialer{Timeout: 10 * time.Second}
	server, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		if ctx.Err() == nil {
			p.logf("testnet-delay: %s -> %s: %v", client.RemoteAddr(), target, err)
		}
		return
	}
	defer server.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Closing both connections unblocks every reader and writer.
	stop := context.AfterFunc(ctx, func() {
		client.Close()
		server.Close()
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.pipe(ctx, cancel, server, client)
	}()
	go func() {
		defer wg.Done()
		p.pipe(ctx, cancel, client, server)
	}()
	wg.Wait()
}

// chunk is data read from one side, with the time it arrived; eof marks
// the end of that side's data.
type chunk struct {
	at   time.Time
	data []byte
	eof  bool
}

// queue is a FIFO of chunks holding at most max bytes of data.
type queue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []chunk
	bytes  int
	max    int
	closed bool
}

func newQueue(max int) *queue {
	q := &queue{max: max}
	q.cond.L = &q.mu
	return q
}

// push appends c, waiting while the queue holds data and c would not fit.
// It reports false if the queue was closed.
func (q *queue) push(c chunk) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed && q.bytes > 0 && q.bytes+len(c.data) > q.max {
		q.cond.Wait()
	}
	if q.closed {
		return false
	}
	q.items = append(q.items, c)
	q.bytes += len(c.data)
	q.cond.Broadcast()
	return true
}

// pop removes the oldest chunk, waiting for one. It reports false if the
// queue was closed.
func (q *queue) pop() (chunk, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed && len(q.items) == 0 {
		q.cond.Wait()
	}
	if q.closed {
		return chunk{}, false
	}
	c := q.items[0]
	q.items[0] = chunk{}
	q.items = q.items[1:]
	q.bytes -= len(c.data)
	q.cond.Broadcast()
	return c, true
}

// close wakes every waiter; later pushes and pops fail.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.items = nil
	q.mu.Unlock()
	q.cond.Broadcast()
}

// pipe copies src to dst, each chunk p.Delay after it was read, and passes
// src's EOF on as a half-close of dst. When the copy fails it calls
// teardown, which must close both connections (ending the other
// direction's pipe too).
func (p *Proxy) pipe(ctx context.Context, teardown func(), dst, src net.Conn) {
	q := newQueue(p.Buffer)
	stop := context.AfterFunc(ctx, q.close)
	defer stop()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		if err := p.read(src, q); err != nil {
			teardown()
		}
	}()
	if err := p.write(ctx, dst, q); err != nil {
		teardown()
	}
	q.close()
	<-readDone
}

// read reads src into q until EOF (queued as an eof chunk) or an error.
func (p *Proxy) read(src net.Conn, q *queue) error {
	bufSize := 32 << 10
	if bufSize > p.Buffer {
		bufSize = p.Buffer
	}
	buf := make([]byte, bufSize)
	for {
		n, err := src.Read(buf)
		at := time.Now()
		if n > 0 {
			if !q.push(chunk{at: at, data: append([]byte(nil), buf[:n]...)}) {
				return nil
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				q.push(chunk{at: at, eof: true})
				return nil
			}
			// A reset or a closed socket: the writer sees the queue closed.
			q.close()
			return fmt.Errorf("reading from %s: %w", src.RemoteAddr(), err)
		}
	}
}

// write sends each chunk of q to dst once p.Delay has passed since it was
// read. It returns nil after passing on an EOF.
func (p *Proxy) write(ctx context.Context, dst net.Conn, q *queue) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		c, ok := q.pop()
		if !ok {
			return errors.New("connection closed")
		}
		if wait := time.Until(c.at.Add(p.Delay)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if c.eof {
			if tc, ok := dst.(interface{ CloseWrite() error }); ok {
				if err := tc.CloseWrite(); err != nil {
					return fmt.Errorf("half-closing %s: %w", dst.RemoteAddr(), err)
				}
				return nil
			}
			return errors.New("end of data on a connection without half-close")
		}
		if _, err := dst.Write(c.data); err != nil {
			return fmt.Errorf("writing to %s: %w", dst.RemoteAddr(), err)
		}
	}
}
