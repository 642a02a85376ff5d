package metrics

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"tinytor/tor/policy"
	"tinytor/tor/torlog"
)

// Request limits.
const (
	// MaxRequestSize bounds the request line plus headers.
	MaxRequestSize = 8 << 10
	// DefaultTimeout bounds reading the request and writing the answer.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxConns bounds concurrent scrapes; more are closed at once.
	DefaultMaxConns = 8
)

// RequestError is a request the server answers with an HTTP error status.
type RequestError struct {
	Status int // 400, 404, 405, 431, 505
	Reason string
}

func (e *RequestError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Reason) }

// Request is the part of an HTTP request the metrics server looks at.
type Request struct {
	Method, Target, Proto string
}

// ParseRequest parses an HTTP/1.0 or HTTP/1.1 request head: the request
// line and header lines, up to and including the empty line. Header lines
// are checked for syntax and otherwise ignored.
func ParseRequest(head []byte) (*Request, error) {
	line, rest, ok := bytes.Cut(head, []byte("\n"))
	if !ok {
		return nil, &RequestError{400, "request line not terminated"}
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	parts := bytes.Split(line, []byte(" "))
	if len(parts) != 3 || len(parts[0]) == 0 || len(parts[1]) == 0 {
		return nil, &RequestError{400, fmt.Sprintf("malformed request line %q", truncate(line))}
	}
	for _, c := range parts[0] {
		if c < 'A' || c > 'Z' {
			return nil, &RequestError{400, fmt.Sprintf("malformed method %q", truncate(parts[0]))}
		}
	}
	r := &Request{Method: string(parts[0]), Target: string(parts[1]), Proto: string(parts[2])}
	if r.Proto != "HTTP/1.0" && r.Proto != "HTTP/1.1" {
		return nil, &RequestError{505, fmt.Sprintf("unsupported protocol %q", truncate(parts[2]))}
	}
	for n := 2; ; n++ {
		l, more, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, &RequestError{400, "headers not terminated by an empty line"}
		}
		rest = more
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) == 0 {
			if len(rest) != 0 {
				return nil, &RequestError{400, "data after the request head"}
			}
			return r, nil
		}
		name, _, ok := bytes.Cut(l, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return nil, &RequestError{400, fmt.Sprintf("malformed header on line %d", n)}
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// readHead reads up to the empty line ending the request head.
func readHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		l, err := br.ReadSlice('\n')
		if len(head)+len(l) > MaxRequestSize {
			return nil, &RequestError{431, "request head too large"}
		}
		head = append(head, l...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading request: %w", err)
		}
		if len(l) == 1 || (len(l) == 2 && l[0] == '\r') {
			return head, nil
		}
	}
}

// Server serves a Registry on GET /metrics.
type Server struct {
	reg      *Registry
	policy   policy.Policy
	log      *torlog.Logger
	timeout  time.Duration
	maxConns int
}

// NewServer returns a Server for reg. pol is the MetricsPortPolicy: a
// client no rule matches is rejected, as in C tor, and an empty pol (no
// MetricsPortPolicy configured) accepts loopback clients only
// (policy.Loopback). log may be nil.
func NewServer(reg *Registry, pol policy.Policy, log *torlog.Logger) *Server {
	if log == nil {
		log = torlog.Discard()
	}
	if len(pol) == 0 {
		pol = policy.Loopback()
	}
	return &Server{reg: reg, policy: pol, log: log, timeout: DefaultTimeout, maxConns: DefaultMaxConns}
}

// Serve accepts scrapers on l until ctx is cancelled or l fails; it closes
// l and waits for running connections before returning.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer wg.Wait()
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	sem := make(chan struct{}, s.maxConns)
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.Close()
			return fmt.Errorf("metrics port: accept: %w", err)
		}
		if !s.allowed(c.RemoteAddr()) {
			s.log.Infof("Rejecting metrics port connection from %s by MetricsPortPolicy.", c.RemoteAddr())
			c.Close()
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			stopConn := context.AfterFunc(ctx, func() { c.Close() })
			defer stopConn()
			defer c.Close()
			s.handle(c)
		}()
	}
}

func (s *Server) allowed(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	return s.policy.Allows(ap.Addr(), policy.RejectUnmatched)
}

var statusText = map[int]string{
	200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
	431: "Request Header Fields Too Large", 500: "Internal Server Error", 505: "HTTP Version Not Supported",
}

func (s *Server) handle(c net.Conn) {
	c.SetDeadline(time.Now().Add(s.timeout))
	head, err := readHead(bufio.NewReaderSize(c, 1024))
	var req *Request
	if err == nil {
		req, err = ParseRequest(head)
	}
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			s.log.Infof("Bad metrics port request from %s: %v", c.RemoteAddr(), err)
			writeResponse(c, re.Status, "text/plain", []byte(re.Reason+"\n"))
		}
		return
	}
	path := req.Target
	if i := bytes.IndexByte([]byte(path), '?'); i >= 0 {
		path = path[:i]
	}
	switch {
	case path != "/metrics":
		writeResponse(c, 404, "text/plain", []byte("not found\n"))
	case req.Method != "GET":
		writeResponse(c, 405, "text/plain", []byte("only GET is supported\n"))
	default:
		var body bytes.Buffer
		if _, err := s.reg.WriteTo(&body); err != nil {
			s.log.Warnf("Rendering metrics: %v", err)
			writeResponse(c, 500, "text/plain", []byte("internal error\n"))
			return
		}
		writeResponse(c, 200, ContentType, body.Bytes())
	}
}

func writeResponse(w io.Writer, status int, ctype string, body []byte) error {
	var b bytes.Buffer
	b.WriteString("HTTP/1.0 " + strconv.Itoa(status) + " " + statusText[status] + "\r\n")
	b.WriteString("Content-Type: " + ctype + "\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	b.WriteString("Connection: close\r\n")
	if status == 405 {
		b.WriteString("Allow: GET\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	_, err := w.Write(b.Bytes())
	return err
}
