package socks

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

// relayBufSize is the copy buffer per direction. Buffers are pooled so an
// idle server holds none and a busy one reuses them.
const relayBufSize = 16 << 10

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

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
		n, err := copyBuf(stream, br)
		s.bytesUp.Add(uint64(n))
		if err != nil || !halfClose(stream) {
			closeBoth()
		}
	}()
	n, err := copyBuf(client, stream)
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

// copyBuf copies src to dst with a pooled buffer. It hides ReaderFrom and
// WriterTo so the buffer size, not the connection type, bounds memory.
// io.EOF from src is a clean end and returns a nil error.
func copyBuf(dst io.Writer, src io.Reader) (int64, error) {
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	n, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}
