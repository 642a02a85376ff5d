package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// fetchResult is one HTTP GET through a SOCKS5 proxy.
type fetchResult struct {
	start time.Time     // before dialing the SOCKS port
	ttfb  time.Duration // start to the first byte of the HTTP response
	total time.Duration // start to the end of the body
	body  int64         // body bytes
	sum   string        // hex sha256 of the body
	small []byte        // the first 4 KiB of the body
}

// fetch GETs rawURL (http://host[:port]/path) through the SOCKS5 proxy,
// authenticating as user (Tor isolates streams by SOCKS username), and
// hashes the body.
func fetch(ctx context.Context, proxy, rawURL, user string) (*fetchResult, error) {
	return fetchPrefix(ctx, proxy, rawURL, user, 0)
}

// fetchPrefix is fetch for the first limit bytes of the resource only
// (an HTTP Range request, answered with 206), or all of it if limit is 0.
func fetchPrefix(ctx context.Context, proxy, rawURL, user string, limit int64) (*fetchResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("fetch: want an http://host/ URL, got %q", rawURL)
	}
	host, portStr := u.Hostname(), u.Port()
	if portStr == "" {
		portStr = "80"
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("fetch: port in %q: %w", rawURL, err)
	}
	path := u.RequestURI()
	r := &fetchResult{start: time.Now()}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: dialing SOCKS port %s: %w", rawURL, proxy, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	br := bufio.NewReaderSize(conn, 64*1024)
	if err := socks5Connect(conn, br, host, uint16(port), user); err != nil {
		return nil, fmt.Errorf("fetch %s via %s: %w", rawURL, proxy, err)
	}
	rangeHdr := ""
	if limit > 0 {
		rangeHdr = fmt.Sprintf("Range: bytes=0-%d\r\n", limit-1)
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n%sConnection: close\r\n\r\n", path, u.Host, rangeHdr); err != nil {
		return nil, fmt.Errorf("fetch %s: sending the request: %w", rawURL, err)
	}
	if _, err := br.Peek(1); err != nil {
		return nil, fmt.Errorf("fetch %s: waiting for the response: %w", rawURL, err)
	}
	r.ttfb = time.Since(r.start)
	status, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("fetch %s: status line: %w", rawURL, err)
	}
	want := "200"
	if limit > 0 {
		want = "206"
	}
	if f := strings.Fields(status); len(f) < 2 || f[1] != want {
		return nil, fmt.Errorf("fetch %s: status %q", rawURL, strings.TrimSpace(status))
	}
	length := int64(-1)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("fetch %s: headers: %w", rawURL, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			if length, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
				return nil, fmt.Errorf("fetch %s: Content-Length %q: %w", rawURL, v, err)
			}
		}
	}
	h := sha256.New()
	head := &limitedBuffer{max: 4096}
	n, err := io.Copy(io.MultiWriter(h, head), br)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: body after %d bytes: %w", rawURL, n, err)
	}
	if length >= 0 && n != length {
		return nil, fmt.Errorf("fetch %s: body has %d bytes, Content-Length says %d", rawURL, n, length)
	}
	if limit > 0 && n != limit {
		return nil, fmt.Errorf("fetch %s: range body has %d bytes, want %d", rawURL, n, limit)
	}
	r.total = time.Since(r.start)
	r.body = n
	r.sum = hex.EncodeToString(h.Sum(nil))
	r.small = head.b
	return r, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// socksReplyError is a SOCKS5 failure reply.
type socksReplyError struct{ code byte }

func (e *socksReplyError) Error() string {
	names := map[byte]string{
		0x01: "general failure", 0x02: "not allowed", 0x03: "network unreachable",
		0x04: "host unreachable", 0x05: "connection refused", 0x06: "TTL expired",
		0x07: "command not supported", 0x08: "address type not supported",
		0xF0: "onion descriptor not found", 0xF2: "onion intro failed",
		0xF3: "onion rendezvous failed", 0xF6: "onion bad address", 0xF7: "onion intro timed out",
	}
	if n, ok := names[e.code]; ok {
		return fmt.Sprintf("SOCKS5 reply 0x%02x (%s)", e.code, n)
	}
	return fmt.Sprintf("SOCKS5 reply 0x%02x", e.code)
}

// socks5Connect runs a SOCKS5 CONNECT on conn (replies read from br).
// With a non-empty user it uses RFC 1929 username/password authentication
// with the password "x".
func socks5Connect(conn net.Conn, br *bufio.Reader, host string, port uint16, user string) error {
	if len(host) > 255 || len(user) > 255 {
		return errors.New("SOCKS5: host or username longer than 255 bytes")
	}
	method := byte(0x00)
	if user != "" {
		method = 0x02
	}
	if _, err := conn.Write([]byte{5, 1, method}); err != nil {
		return fmt.Errorf("SOCKS5 greeting: %w", err)
	}
	var rep [2]byte
	if _, err := io.ReadFull(br, rep[:]); err != nil {
		return fmt.Errorf("SOCKS5 method reply: %w", err)
	}
	if rep[0] != 5 || rep[1] != method {
		return fmt.Errorf("SOCKS5 method reply %x, want method %d", rep, method)
	}
	if user != "" {
		msg := append([]byte{1, byte(len(user))}, user...)
		msg = append(msg, 1, 'x')
		if _, err := conn.Write(msg); err != nil {
			return fmt.Errorf("SOCKS5 authentication: %w", err)
		}
		if _, err := io.ReadFull(br, rep[:]); err != nil {
			return fmt.Errorf("SOCKS5 authentication reply: %w", err)
		}
		if rep[1] != 0 {
			return fmt.Errorf("SOCKS5 authentication refused (status %d)", rep[1])
		}
	}
	req := []byte{5, 1, 0}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		b := a.As4()
		req = append(req, 1)
		req = append(req, b[:]...)
	} else {
		req = append(req, 3, byte(len(host)))
		req = append(req, host...)
	}
	req = append(req, byte(port>>8), byte(port))
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("SOCKS5 CONNECT: %w", err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fmt.Errorf("SOCKS5 CONNECT reply: %w", err)
	}
	if hdr[1] != 0 {
		return &socksReplyError{code: hdr[1]}
	}
	var skip int
	switch hdr[3] {
	case 1:
		skip = 4 + 2
	case 4:
		skip = 16 + 2
	case 3:
		l, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("SOCKS5 CONNECT reply: %w", err)
		}
		skip = int(l) + 2
	default:
		return fmt.Errorf("SOCKS5 CONNECT reply: address type %d", hdr[3])
	}
	if _, err := br.Discard(skip); err != nil {
		return fmt.Errorf("SOCKS5 CONNECT reply: %w", err)
	}
	return nil
}
