package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"tinytor/tor/errfmt"
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

func (e *RequestError) Error() string { return "HTTP " + strconv.Itoa(e.Status) + ": " + e.Reason }

// requestError returns a RequestError whose reason is msg followed by the
// offending text t, quoted and cut after 40 bytes.
func requestError(status int, msg, t string) *RequestError {
	if len(t) > 40 {
		t = t[:40] + "..."
	}
	return &RequestError{status, msg + " " + strconv.Quote(t)}
}

// Request is the part of an HTTP request the metrics server looks at.
type Request struct {
	Method, Target, Proto string
}

// ParseRequest parses an HTTP/1.0 or HTTP/1.1 request head: the request
// line and header lines, up to and including the empty line. Header lines
// are checked for syntax and otherwise ignored.
func ParseRequest(head []byte) (*Request, error) {
	line, rest, ok := strings.Cut(string(head), "\n")
	if !ok {
		return nil, &RequestError{400, "request line not terminated"}
	}
	line = strings.TrimSuffix(line, "\r")
	parts := strings.Split(line, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return nil, requestError(400, "malformed request line", line)
	}
	for _, c := range []byte(parts[0]) {
		if c < 'A' || c > 'Z' {
			return nil, requestError(400, "malformed method", parts[0])
		}
	}
	if parts[2] != "HTTP/1.0" && parts[2] != "HTTP/1.1" {
		return nil, requestError(505, "unsupported protocol", parts[2])
	}
	for n := 2; ; n++ {
		l, more, ok := strings.Cut(rest, "\n")
		if !ok {
			return nil, &RequestError{400, "headers not terminated by an empty line"}
		}
		rest = more
		l = strings.TrimSuffix(l, "\r")
		if l == "" {
			if rest != "" {
				return nil, &RequestError{400, "data after the request head"}
			}
			return &Request{Method: parts[0], Target: parts[1], Proto: parts[2]}, nil
		}
		name, _, ok := strings.Cut(l, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, &RequestError{400, "malformed header on line " + strconv.Itoa(n)}
		}
	}
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
			return nil, errfmt.Errorf("reading request: %w", err)
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
			return errfmt.Errorf("metrics port: accept: %w", err)
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

// statusText is the reason phrase of the statuses the server sends ("" for
// others).
func statusText(status int) string {
	switch status {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 505:
		return "HTTP Version Not Supported"
	}
	return ""
}

func (s *Server) handle(c net.Conn) {
	c.SetDeadline(time.Now().Add(s.timeout))
	head, err := readHead(bufio.NewReaderSize(c, 1024))
	var req *Request
	if err == nil {
		req, err = ParseRequest(head)
	}
	status, ctype, body := 200, "text/plain", ""
	var re *RequestError
	switch {
	case errors.As(err, &re):
		s.log.Infof("Bad metrics port request from %s: %v", c.RemoteAddr(), err)
		status, body = re.Status, re.Reason
	case err != nil:
		return
	case req.Target != "/metrics" && !strings.HasPrefix(req.Target, "/metrics?"):
		status, body = 404, "not found"
	case req.Method != "GET":
		status, body = 405, "only GET is supported"
	default:
		var b strings.Builder
		if _, err := s.reg.WriteTo(&b); err != nil {
			s.log.Warnf("Rendering metrics: %v", err)
			status, body = 500, "internal error"
			break
		}
		ctype, body = ContentType, b.String()
	}
	if ctype != ContentType {
		body += "\n"
	}
	writeResponse(c, status, ctype, body)
}

func writeResponse(w io.Writer, status int, ctype string, body string) error {
	allow := ""
	if status == 405 {
		allow = "Allow: GET\r\n"
	}
	_, err := io.WriteString(w, "HTTP/1.0 "+strconv.Itoa(status)+" "+statusText(status)+"\r\n"+
		"Content-Type: "+ctype+"\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n"+
		"Connection: close\r\n"+allow+"\r\n"+body)
	return err
}
