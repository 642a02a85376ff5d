package httptunnel

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"tinytor/tor/errfmt"
)

// Bounds of a request, as C tor's fetch_from_buf_http and socks_request_t.
const (
	// MaxHeader bounds the request line and headers together (C tor:
	// 8192 bytes); a longer request is answered 400.
	MaxHeader = 8192
	// MaxHost bounds the host of "CONNECT host:port" (C tor's
	// MAX_SOCKS_ADDR_LEN is 256, NUL included); a longer one is answered
	// 414.
	MaxHost = 255
)

// The responses C tor's connection_ap_process_http_connect sends for a
// request it cannot serve.
const (
	respBadRequest = "HTTP/1.0 400 Bad Request\r\n\r\n"
	respTooLong    = "HTTP/1.0 414 Request-URI Too Long\r\n\r\n"
	// respNotConnect answers any method but CONNECT.
	respNotConnect = "HTTP/1.0 405 Method Not Allowed\r\n" +
		"Content-Type: text/html; charset=iso-8859-1\r\n\r\n" +
		"<html>\n<head>\n<title>This is an HTTP CONNECT tunnel, not a full HTTP Proxy</title>\n</head>\n<body>\n" +
		"<h1>This is an HTTP CONNECT tunnel, not an HTTP proxy.</h1>\n<p>\n" +
		"It appears you have configured your web browser to use this Tor port as\nan HTTP proxy.\n</p><p>\n" +
		"This is not correct: This port is configured as a CONNECT tunnel, not\nan HTTP proxy. " +
		"Please configure your client accordingly.  You can also\nuse HTTPS; then the client should automatically use HTTP CONNECT.</p>\n" +
		"</body>\n</html>\n"
)

// Request is a parsed "CONNECT host:port HTTP/1.x" request.
type Request struct {
	Host string // a name or an IP address (IPv6 without brackets)
	Port uint16
	// ProxyAuthorization and Isolation are the values of the
	// Proxy-Authorization and X-Tor-Stream-Isolation headers ("" when
	// absent). C tor isolates streams by them as by SOCKS username and
	// password (IsolateSOCKSAuth): the whole Proxy-Authorization value
	// (e.g. "Basic dXNlcjpwYXNz") is the username.
	ProxyAuthorization, Isolation string
	// HasAuth is true if either header was sent.
	HasAuth bool
}

// RequestError is a request that is refused before any stream is asked
// for; Response is what C tor answers.
type RequestError struct {
	Response string
	Err      error
}

// Error describes the refusal.
func (e *RequestError) Error() string { return "HTTP tunnel request: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *RequestError) Unwrap() error { return e.Err }

// Status is the response's status line, without its CRLF.
func (e *RequestError) Status() string {
	s, _, _ := strings.Cut(e.Response, "\r\n")
	return s
}

func refuse(resp, format string, args ...any) error {
	return &RequestError{Response: resp, Err: errfmt.Errorf(format, args...)}
}

// ReadRequest reads one request (request line and headers, ending with an
// empty line) from r and parses it as C tor does: a malformed request or a
// missing or bad host:port is a *RequestError answered 400, a host longer
// than MaxHost 414, and another method than CONNECT 405. It reads no byte
// past the empty line, so the tunnel's first bytes stay in r. Other errors
// are r's (the client went away or was too slow).
func ReadRequest(r *bufio.Reader) (*Request, error) {
	head, err := readHead(r)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(head, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	method, target, version, ok := splitRequestLine(lines[0])
	if !ok {
		return nil, refuse(respBadRequest, "malformed request line %q", clip(lines[0]))
	}
	if !strings.EqualFold(method, "CONNECT") {
		return nil, refuse(respNotConnect, "method %q is not CONNECT: this port is not an HTTP proxy", clip(method))
	}
	if !strings.HasPrefix(version, "HTTP/") {
		return nil, refuse(respBadRequest, "bad protocol version %q", clip(version))
	}
	req := &Request{}
	if req.Host, req.Port, err = splitTarget(target); err != nil {
		if len(req.Host) > MaxHost {
			return nil, refuse(respTooLong, "%v", err)
		}
		return nil, refuse(respBadRequest, "%v", err)
	}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, refuse(respBadRequest, "malformed header line %q", clip(l))
		}
		value = strings.Trim(value, " \t")
		switch {
		case strings.EqualFold(name, "Proxy-Authorization"):
			req.ProxyAuthorization, req.HasAuth = value, true
		case strings.EqualFold(name, "X-Tor-Stream-Isolation"):
			req.Isolation, req.HasAuth = value, true
		}
	}
	return req, nil
}

// readHead reads up to the empty line that ends the headers and returns
// what precedes it (no final line break). Empty lines before the request
// line are skipped (RFC 9112 section 2.2); they count towards MaxHeader.
func readHead(r *bufio.Reader) (string, error) {
	var head []byte
	start, total := 0, 0 // where the current line starts in head; bytes read
	for {
		part, err := r.ReadSlice('\n')
		head = append(head, part...)
		if total += len(part); total > MaxHeader {
			return "", refuse(respBadRequest, "request headers longer than %d bytes", MaxHeader)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return "", io.ErrUnexpectedEOF
		case err != nil:
			return "", err
		}
		if len(bytes.TrimRight(head[start:], "\r\n")) > 0 {
			start = len(head)
			continue
		}
		if start == 0 {
			head = head[:0]
			continue
		}
		head = bytes.TrimRight(head[:start], "\r\n")
		if bytes.IndexByte(head, 0) >= 0 {
			return "", refuse(respBadRequest, "NUL byte in request headers")
		}
		return string(head), nil
	}
}

// splitRequestLine splits "METHOD SP target SP version".
func splitRequestLine(l string) (method, target, version string, ok bool) {
	f := strings.Fields(l)
	if len(f) != 3 {
		return "", "", "", false
	}
	return f[0], f[1], f[2], true
}

// splitTarget parses the authority of a CONNECT request: "host:port",
// "[IPv6]:port". host is returned even on error, for the length check.
func splitTarget(t string) (host string, port uint16, err error) {
	i := strings.LastIndexByte(t, ':')
	if i < 0 {
		return t, 0, errfmt.Errorf("CONNECT target %q has no port", clip(t))
	}
	host, p := t[:i], t[i+1:]
	if len(host) > MaxHost {
		return host, 0, errfmt.Errorf("CONNECT host of %d bytes is longer than %d", len(host), MaxHost)
	}
	n, perr := strconv.ParseUint(p, 10, 16)
	ok := perr == nil && n > 0 && p[0] != '+' && host != ""
	if ok && host[0] == '[' {
		a, aerr := netip.ParseAddr(strings.TrimSuffix(host[1:], "]"))
		host = a.String()
		ok = aerr == nil && a.Is6() && a.Zone() == "" && strings.HasSuffix(t[:i], "]")
	} else {
		for j := 0; ok && j < len(host); j++ {
			c := host[j]
			ok = c > ' ' && c < 0x7f && !strings.ContainsRune("/@[]:", rune(c))
		}
	}
	if !ok {
		return host, 0, errfmt.Errorf("bad CONNECT target %q: want host:port", clip(t))
	}
	return host, uint16(n), nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
