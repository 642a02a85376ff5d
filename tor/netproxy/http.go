package netproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"tinytor/tor/errfmt"
)

// Bounds on what an HTTP proxy may send before the tunnel starts.
const (
	maxHTTPLine    = 4096 // one status or header line
	maxHTTPHeaders = 64   // header lines after the status line
)

// HTTPConnect returns a Dialer that tunnels through the HTTP proxy at proxy
// with CONNECT, as C tor's HTTPSProxy does. When user or pass is not empty
// the request carries "Proxy-Authorization: Basic" with user:pass.
func HTTPConnect(proxy netip.AddrPort, user, pass string) Dialer {
	return DialFunc(func(ctx context.Context, target netip.AddrPort) (net.Conn, error) {
		req := httpRequest(target, user, pass)
		return handshake(ctx, "HTTP", proxy, target, func(c net.Conn) (net.Conn, error) {
			if _, err := c.Write(req); err != nil {
				return nil, errfmt.Errorf("sending CONNECT: %w", err)
			}
			br := bufio.NewReaderSize(c, maxHTTPLine)
			if err := readHTTPReply(br); err != nil {
				return nil, err
			}
			if n := br.Buffered(); n > 0 {
				// The proxy already sent tunnelled bytes: serve
				// them before reading from the connection again.
				buf, _ := br.Peek(n)
				return &prefixConn{Conn: c, buf: bytes.Clone(buf)}, nil
			}
			return c, nil
		})
	})
}

func httpRequest(target netip.AddrPort, user, pass string) []byte {
	t := netip.AddrPortFrom(target.Addr().Unmap(), target.Port()).String()
	var b strings.Builder
	b.WriteString("CONNECT " + t + " HTTP/1.0\r\nHost: " + t + "\r\n")
	if user != "" || pass != "" {
		b.WriteString("Proxy-Authorization: Basic " +
			base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// readHTTPReply reads the status line and the headers of the proxy's answer
// to CONNECT and reports a refusal. It reads nothing past the blank line
// that ends the headers, except what stays buffered in br.
func readHTTPReply(br *bufio.Reader) error {
	status, err := readHTTPLine(br)
	if err != nil {
		return errfmt.Errorf("reading status line: %w", err)
	}
	code, err := parseStatusLine(status)
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		if i == maxHTTPHeaders {
			return errfmt.Errorf("more than %d header lines: %w", maxHTTPHeaders, ErrBadReply)
		}
		line, err := readHTTPLine(br)
		if err != nil {
			return errfmt.Errorf("reading headers: %w", err)
		}
		if line == "" {
			break
		}
	}
	if code < 200 || code > 299 {
		if code == 407 {
			return errfmt.Errorf("%w: %w", ErrAuthFailed, &ReplyError{Proto: "HTTP", Code: code, Msg: status})
		}
		return &ReplyError{Proto: "HTTP", Code: code, Msg: status}
	}
	return nil
}

// parseStatusLine checks "HTTP/1.x NNN reason" and returns NNN.
func parseStatusLine(line string) (int, error) {
	rest, ok := strings.CutPrefix(line, "HTTP/1.")
	if !ok || len(rest) < 5 || (rest[0] != '0' && rest[0] != '1') || rest[1] != ' ' {
		return 0, errfmt.Errorf("status line %q: %w", clip(line), ErrBadReply)
	}
	num := rest[2:5]
	if len(rest) > 5 && rest[5] != ' ' {
		return 0, errfmt.Errorf("status line %q: %w", clip(line), ErrBadReply)
	}
	code, err := strconv.Atoi(num)
	if err != nil || num[0] < '1' || num[0] > '9' || code < 100 {
		return 0, errfmt.Errorf("status line %q: %w", clip(line), ErrBadReply)
	}
	return code, nil
}

// readHTTPLine reads one CRLF- or LF-terminated line of at most maxHTTPLine
// bytes and returns it without the terminator.
func readHTTPLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errfmt.Errorf("line longer than %d bytes: %w", maxHTTPLine, ErrBadReply)
	}
	if err != nil {
		return "", noEOF(err)
	}
	b = bytes.TrimSuffix(b[:len(b)-1], []byte{'\r'})
	return string(b), nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// prefixConn is a net.Conn whose first reads return buf.
type prefixConn struct {
	net.Conn
	buf []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
