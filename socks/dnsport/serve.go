package dnsport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/policy"
)

// maxUDPMessage is the largest datagram read; longer ones are cut and
// then fail to parse.
const maxUDPMessage = 4096

// ServeUDP answers the queries that arrive on pc until ctx ends or Close,
// then closes pc. Each query is answered on a goroutine of its own, so a
// slow lookup does not hold the others up.
func (s *Server) ServeUDP(ctx context.Context, pc *net.UDPConn) error {
	ctx, cancel, err := s.join(ctx)
	if err != nil {
		pc.Close()
		return err
	}
	defer cancel()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	s.log.Noticef("Opened DNS listener connection (ready) on %v (UDP)", pc.LocalAddr())
	for {
		buf := make([]byte, maxUDPMessage)
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return errfmt.Errorf("dnsport: reading on %v: %w", pc.LocalAddr(), err)
			}
			s.log.Infof("Error reading a DNS request on %v: %v", pc.LocalAddr(), err)
			continue
		}
		s.wg.Go(func() {
			client := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if out := s.handle(ctx, buf[:n], client, true); out != nil {
				pc.WriteToUDPAddrPort(out, from)
			}
		})
	}
}

// ServeTCP answers queries on the connections ln accepts until ctx ends
// or Close, then closes ln and the connections. SocksPolicy is applied
// when a connection is accepted: a refused client is closed at once.
func (s *Server) ServeTCP(ctx context.Context, ln net.Listener) error {
	ctx, cancel, err := s.join(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	s.log.Noticef("Opened DNS listener connection (ready) on %v (TCP)", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return errfmt.Errorf("dnsport: accepting on %v: %w", ln.Addr(), err)
			}
			// Out of file descriptors and the like: wait a moment, as
			// the condition usually passes.
			s.log.Warnf("Error accepting DNS connection on %v: %v; retrying.", ln.Addr(), err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		client := addrOf(c.RemoteAddr())
		if !s.cfg.Policy.Allows(client.Addr(), policy.AcceptUnmatched) {
			s.counters.add(Refused)
			s.log.Warnf("Rejecting DNS connection from disallowed IP.")
			c.Close()
			continue
		}
		if s.tcpConns.Add(1) > int64(s.cfg.MaxTCPConns) {
			s.tcpConns.Add(-1)
			s.counters.add(Overloaded)
			s.log.Infof("Too many open DNS connections (%d); closing new connection.", s.cfg.MaxTCPConns)
			c.Close()
			continue
		}
		s.wg.Go(func() {
			defer s.tcpConns.Add(-1)
			s.serveConn(ctx, c, client)
		})
	}
}

// ErrClosed is returned by ServeUDP and ServeTCP after Close.
var ErrClosed = errors.New("dnsport: server closed")

// join registers a serving loop, which Close waits for, and returns a
// context that ends with ctx or with Close.
func (s *Server) join(ctx context.Context) (context.Context, context.CancelFunc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	s.wg.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel(); s.wg.Done() }, nil
}

// maxConnQueries bounds the queries one TCP connection has in flight: a
// client that pipelines and does not read stops being read from.
const maxConnQueries = 32

// serveConn reads length-prefixed messages from one TCP client and
// answers each on its own goroutine (answers may come back out of order,
// as RFC 7766 allows). A message that is too long, cut short or
// malformed closes the connection at once; a client that closes its side
// or goes idle still gets the answers to the queries it sent.
func (s *Server) serveConn(ctx context.Context, c net.Conn, client netip.AddrPort) {
	ctx, cancel := context.WithCancel(ctx)
	var queries sync.WaitGroup
	graceful := false
	defer func() {
		if graceful {
			queries.Wait()
		}
		cancel()
		c.Close()
		queries.Wait()
	}()
	inflight := make(chan struct{}, maxConnQueries)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var wmu lock.Mutex
	br := bufio.NewReaderSize(c, 1024)
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdle))
		msg, err := readTCPMessage(br, s.cfg.MaxTCPMessage)
		if err != nil {
			var ne net.Error
			graceful = errors.Is(err, io.EOF) || errors.As(err, &ne) && ne.Timeout()
			if !graceful && ctx.Err() == nil {
				s.counters.add(Malformed)
				s.log.Infof("Closing DNS connection from %v: %v", client, err)
			}
			return
		}
		if _, err := parse(msg); err != nil {
			s.counters.add(Malformed)
			s.log.Infof("Closing DNS connection from %v: %v", client, err)
			return
		}
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
			return
		}
		queries.Go(func() {
			defer func() { <-inflight }()
			out := s.handle(ctx, msg, client, false)
			if out == nil {
				return
			}
			frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(out)), uint16(len(out)))
			wmu.Lock()
			defer wmu.Unlock()
			c.SetWriteDeadline(time.Now().Add(s.cfg.TCPIdle))
			if _, err := c.Write(append(frame, out...)); err != nil {
				cancel()
			}
		})
	}
}

// readTCPMessage reads one RFC 1035 4.2.2 message: a two-byte length,
// then that many bytes. io.EOF means the client closed between messages.
func readTCPMessage(r io.Reader, maxLen int) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("message length cut short")
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n == 0 || n > maxLen {
		return nil, errfmt.Errorf("message of %d bytes (allowed: 1 to %d)", n, maxLen)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, errfmt.Errorf("message of %d bytes cut short: %w", n, err)
	}
	return msg, nil
}

// addrOf returns the address and port of a TCP peer.
func addrOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
