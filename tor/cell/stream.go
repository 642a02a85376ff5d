package cell

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"

	"tinytor/tor/errfmt"
)

// wideCircIDs reports whether link protocol version v uses 4-byte circuit
// IDs (tor-spec 4: version 4 and later; version 0 stands for "not yet
// negotiated", when VERSIONS cells use 2-byte circuit IDs).
func wideCircIDs(v int) bool { return v >= 4 }

// Reader reads cells from a byte stream for one link protocol version.
// Fixed-size cells are read into cells from a [Pool] without allocating
// (taken with [Pool.GetInbound], so reading waits while the pool is full);
// variable-length cells are allocated.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	r    *bufio.Reader
	pool *Pool
	ctx  context.Context
	wide bool
	hdr  [7]byte
}

// NewReader returns a Reader of r that takes fixed-size cells from pool.
// It starts in the pre-negotiation state (link version 0, 2-byte circuit
// IDs), as is right for reading a VERSIONS cell; call
// [Reader.SetLinkVersion] once the version is negotiated.
func NewReader(r io.Reader, pool *Pool) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 4*Len)
	}
	return &Reader{r: br, pool: pool, ctx: context.Background()}
}

// SetContext sets the context that ends a wait for a free cell in
// ReadCell (see [Pool.GetInbound]); the default never ends.
func (r *Reader) SetContext(ctx context.Context) { r.ctx = ctx }

// SetLinkVersion sets the link protocol version that determines the width
// of circuit IDs.
func (r *Reader) SetLinkVersion(v int) { r.wide = wideCircIDs(v) }

// ReadCell reads the next cell. Exactly one of fixed and variable is
// non-nil when err is nil. The payload of a VPADDING cell is skipped, not
// returned (its Payload is nil). The caller owns fixed and must return it to the
// pool (or hand it on). At a clean end of stream before any byte of a cell,
// err is io.EOF; a stream that ends inside a cell gives
// io.ErrUnexpectedEOF.
func (r *Reader) ReadCell() (fixed *Cell, variable *VarCell, err error) {
	idLen := 2
	if r.wide {
		idLen = 4
	}
	if _, err := io.ReadFull(r.r, r.hdr[:idLen+1]); err != nil {
		return nil, nil, errfmt.Errorf("reading cell header: %w", err)
	}
	var circID uint32
	if r.wide {
		circID = binary.BigEndian.Uint32(r.hdr[0:4])
	} else {
		circID = uint32(binary.BigEndian.Uint16(r.hdr[0:2]))
	}
	cmd := Command(r.hdr[idLen])
	if IsVariable(cmd) {
		if _, err := io.ReadFull(r.r, r.hdr[idLen+1:idLen+3]); err != nil {
			return nil, nil, errfmt.Errorf("reading length of %s cell: %w", cmd, unexpected(err))
		}
		n := int(binary.BigEndian.Uint16(r.hdr[idLen+1 : idLen+3]))
		if cmd == VPadding {
			// Padding is meaningless: skip it without allocating a
			// buffer for it.
			if _, err := r.r.Discard(n); err != nil {
				return nil, nil, errfmt.Errorf("skipping %d-byte payload of %s cell: %w", n, cmd, unexpected(err))
			}
			return nil, &VarCell{CircID: circID, Command: cmd}, nil
		}
		v := &VarCell{CircID: circID, Command: cmd, Payload: make([]byte, n)}
		if _, err := io.ReadFull(r.r, v.Payload); err != nil {
			return nil, nil, errfmt.Errorf("reading %d-byte payload of %s cell: %w", n, cmd, unexpected(err))
		}
		return nil, v, nil
	}
	// Back-pressure: with the pool at its inbound limit this waits,
	// and nothing more is read from the connection meanwhile.
	c, err := r.pool.GetInbound(r.ctx)
	if err != nil {
		return nil, nil, errfmt.Errorf("reading %s cell: %w", cmd, err)
	}
	c.CircID = circID
	c.Command = cmd
	if _, err := io.ReadFull(r.r, c.Payload[:]); err != nil {
		r.pool.Put(c)
		return nil, nil, errfmt.Errorf("reading payload of %s cell: %w", cmd, unexpected(err))
	}
	return c, nil, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Writer writes cells to a byte stream for one link protocol version,
// buffering them until [Writer.Flush]. It does not allocate for fixed-size
// cells. A Writer is not safe for concurrent use.
type Writer struct {
	w    *bufio.Writer
	wide bool
	buf  [Len]byte
}

// NewWriter returns a Writer to w in the pre-negotiation state (2-byte
// circuit IDs); call [Writer.SetLinkVersion] once the version is negotiated.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 4*Len)}
}

// SetLinkVersion sets the link protocol version that determines the width
// of circuit IDs.
func (w *Writer) SetLinkVersion(v int) { w.wide = wideCircIDs(v) }

// ErrCircIDTooWide is returned when a circuit ID does not fit in the 2 bytes
// of a link protocol before version 4.
var ErrCircIDTooWide = errors.New("circuit ID does not fit in 2 bytes")

// WriteCell buffers c. It does not take ownership of c.
func (w *Writer) WriteCell(c *Cell) error {
	if IsVariable(c.Command) {
		return errfmt.Errorf("writing %s: command is variable-length, not fixed-size", c.Command)
	}
	if w.wide {
		c.MarshalTo(&w.buf)
		_, err := w.w.Write(w.buf[:])
		return err
	}
	if c.CircID > 0xffff {
		return errfmt.Errorf("writing %s: %w", c, ErrCircIDTooWide)
	}
	binary.BigEndian.PutUint16(w.buf[0:2], uint16(c.CircID))
	w.buf[2] = byte(c.Command)
	copy(w.buf[3:LenV3], c.Payload[:])
	_, err := w.w.Write(w.buf[:LenV3])
	return err
}

// WriteVarCell buffers v.
func (w *Writer) WriteVarCell(v *VarCell) error {
	if !IsVariable(v.Command) {
		return errfmt.Errorf("writing %s: command is fixed-size, not variable-length", v.Command)
	}
	if len(v.Payload) > MaxVarPayloadLen {
		return errfmt.Errorf("writing %s: payload of %d bytes exceeds %d", v.Command, len(v.Payload), MaxVarPayloadLen)
	}
	n := 0
	if w.wide {
		binary.BigEndian.PutUint32(w.buf[0:4], v.CircID)
		n = 4
	} else {
		if v.CircID > 0xffff {
			return errfmt.Errorf("writing %s: %w", v, ErrCircIDTooWide)
		}
		binary.BigEndian.PutUint16(w.buf[0:2], uint16(v.CircID))
		n = 2
	}
	w.buf[n] = byte(v.Command)
	binary.BigEndian.PutUint16(w.buf[n+1:n+3], uint16(len(v.Payload)))
	if _, err := w.w.Write(w.buf[:n+3]); err != nil {
		return err
	}
	_, err := w.w.Write(v.Payload)
	return err
}

// Buffered returns the number of bytes written but not yet flushed.
func (w *Writer) Buffered() int { return w.w.Buffered() }

// Flush writes out buffered cells.
func (w *Writer) Flush() error { return w.w.Flush() }
