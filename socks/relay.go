package socks

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// The copy buffers are pooled so that an idle server holds none and a busy
// one reuses them. A relay holds a buffer per direction only while that
// direction moves data (or waits for the stream's data: see relay):
//
//   - client to stream (upBufs): the client's socket is waited on without
//     a buffer (see copyUp). 16 KiB fill 32 DATA cells of 498 bytes and a
//     33rd with 448, so an upload wastes little of its cells.
//   - stream to client (downBufs): the stream delivers at most 498 bytes a
//     cell and Read fills the buffer from the cells queued, so 4 KiB (eight
//     cells a write to the client's socket) keep up with what a router's
//     circuits carry; and a slow client, in whose socket the relay then
//     waits, holds 4 KiB and not 16 of the process's memory.
const (
	upBufSize   = 16 << 10
	downBufSize = 4 << 10
)

var (
	upBufs   = sync.Pool{New: func() any { b := make([]byte, upBufSize); return &b }}
	downBufs = sync.Pool{New: func() any { b := make([]byte, downBufSize); return &b }}
)

// closeWriter is implemented by connections that can half-close
// (*net.TCPConn, and the tor package's streams).
type closeWriter interface{ CloseWrite() error }

// relay copies bytes both ways between the client (reading through br,
// which may hold early data) and the stream until both directions have
// ended, or either fails, or ctx is done. A clean end of one direction
// half-closes the other side's write half when it can.
func (s *Server) relay(ctx context.Context, client net.Conn, br io.Reader, stream net.Conn) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			stream.Close()
		})
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	defer closeBoth()

	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		n, err := copyUp(stream, client, br)
		s.bytesUp.Add(uint64(n))
		if err != nil || !halfClose(stream) {
			closeBoth()
		}
	}()
	n, err := copyBuf(client, stream, &downBufs)
	s.bytesDown.Add(uint64(n))
	if err != nil {
		// The stream broke (its circuit died, say): reset the client's
		// connection so that it sees an error, not a clean end of data.
		if tc, ok := client.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		closeBoth()
	} else if !halfClose(client) {
		closeBoth()
	}
	<-upDone
}

// halfClose shuts the write half of c, reporting whether it could.
func halfClose(c net.Conn) bool {
	cw, ok := c.(closeWriter)
	return ok && cw.CloseWrite() == nil
}

// copyBuf copies src to dst with a buffer from pool. It hides ReaderFrom
// and WriterTo so the buffer size, not the connection type, bounds memory.
// io.EOF from src is a clean end and returns a nil error.
func copyBuf(dst io.Writer, src io.Reader, pool *sync.Pool) (int64, error) {
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	n, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// copyUp copies what the client sends to dst, as copyBuf(dst, br, &upBufs)
// does, but holds no buffer while it waits for the client, which after
// its request usually sends nothing more for the life of the connection:
// the early data that br holds goes first, and then, on a TCP or Unix
// socket, the socket is read only once the poller says it is readable.
// br must read client (a *bufio.Reader over it, or client itself); other
// readers, and connections without a socket, are copied by copyBuf. The
// semantics are those of copyBuf: the client's deadlines and Close end
// the wait with their errors, a reset is an error and EOF a nil one.
func copyUp(dst io.Writer, client net.Conn, br io.Reader) (int64, error) {
	var rc syscall.RawConn
	var err error
	switch c := client.(type) {
	case *net.TCPConn:
		rc, err = c.SyscallConn()
	case *net.UnixConn:
		rc, err = c.SyscallConn()
	}
	if rc == nil || err != nil {
		return copyBuf(dst, br, &upBufs)
	}
	var written int64
	switch r := br.(type) {
	case *bufio.Reader:
		// The early data first, from br's own buffer. br holds no error
		// to report: the request was read whole, so any read that failed
		// failed the request.
		if k := r.Buffered(); k > 0 {
			p, _ := r.Peek(k)
			n, err := dst.Write(p)
			r.Discard(n)
			written += int64(n)
			if err != nil {
				return written, err
			}
		}
	case net.Conn:
		if r != client {
			return copyBuf(dst, br, &upBufs)
		}
	default:
		return copyBuf(dst, br, &upBufs)
	}
	rr := &rawReader{}
	rr.fn = rr.read // one method value for all the reads
	for {
		if err := rc.Read(rr.fn); err != nil {
			// Closed (the other direction failed, or ctx is done) or past
			// a deadline: as the conn's Read would fail.
			return written, err
		}
		if rr.err != nil {
			return written, &net.OpError{Op: "read", Net: client.LocalAddr().Network(), Source: client.LocalAddr(), Addr: client.RemoteAddr(), Err: os.NewSyscallError("read", rr.err)}
		}
		if rr.n == 0 {
			return written, nil // end of data
		}
		n, err := dst.Write((*rr.bp)[:rr.n])
		if n < rr.n && err == nil {
			err = io.ErrShortWrite
		}
		upBufs.Put(rr.bp)
		rr.bp = nil
		written += int64(n)
		if err != nil {
			return written, err
		}
	}
}

// rawReader reads a socket inside syscall.RawConn.Read, taking a buffer
// only when the socket has data or an end to report.
type rawReader struct {
	fn  func(fd uintptr) bool
	bp  *[]byte // the data, rawReader.n bytes, when read returned true with a nil err
	n   int
	err error
}

// read is the RawConn.Read callback: false (wait for readability) when
// the socket has nothing to read.
func (r *rawReader) read(fd uintptr) bool {
	bp := upBufs.Get().(*[]byte)
	n, err := syscall.Read(int(fd), *bp)
	for err == syscall.EINTR {
		n, err = syscall.Read(int(fd), *bp)
	}
	if err == syscall.EAGAIN {
		upBufs.Put(bp)
		return false
	}
	if err != nil || n <= 0 {
		upBufs.Put(bp)
		r.n, r.err = 0, err
		return true
	}
	r.bp, r.n, r.err = bp, n, nil
	return true
}
