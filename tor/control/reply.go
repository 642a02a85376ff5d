package control

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// ReplyWriter writes control-protocol replies (control-spec 2.3). Every
// line ends in CRLF. Writes are buffered until Flush; the first write
// error is kept and returned by Flush.
type ReplyWriter struct {
	w   *bufio.Writer
	err error
}

// NewReplyWriter returns a ReplyWriter on w.
func NewReplyWriter(w io.Writer) *ReplyWriter {
	return &ReplyWriter{w: bufio.NewWriter(w)}
}

func (r *ReplyWriter) line(code int, sep byte, text string) {
	if r.err != nil {
		return
	}
	var b [4]byte
	s := strconv.AppendInt(b[:0], int64(code%1000), 10)
	for len(s) < 3 {
		s = append([]byte{'0'}, s...)
	}
	r.w.Write(s)
	r.w.WriteByte(sep)
	r.w.WriteString(oneLine(text))
	_, r.err = r.w.WriteString("\r\n")
}

// Mid writes a MidReplyLine: "250-text".
func (r *ReplyWriter) Mid(code int, text string) { r.line(code, '-', text) }

// End writes an EndReplyLine: "250 text".
func (r *ReplyWriter) End(code int, text string) { r.line(code, ' ', text) }

// Data writes a DataReplyLine: "250+head", then body line by line with
// dot-stuffing, then the terminating ".". Line breaks in body may be LF or
// CRLF; they are sent as CRLF.
func (r *ReplyWriter) Data(code int, head, body string) {
	r.line(code, '+', head)
	if r.err != nil {
		return
	}
	body = strings.TrimSuffix(body, "\n")
	for more := body != ""; more; {
		var l string
		l, body, more = strings.Cut(body, "\n")
		l = strings.TrimSuffix(l, "\r")
		if strings.HasPrefix(l, ".") {
			r.w.WriteByte('.')
		}
		r.w.WriteString(l)
		r.w.WriteString("\r\n")
	}
	_, r.err = r.w.WriteString(".\r\n")
}

// Error writes e as an EndReplyLine.
func (r *ReplyWriter) Error(e *Error) { r.End(e.Code, e.Msg) }

// Flush sends buffered lines and returns the first error seen.
func (r *ReplyWriter) Flush() error {
	if r.err != nil {
		return r.err
	}
	r.err = r.w.Flush()
	return r.err
}
