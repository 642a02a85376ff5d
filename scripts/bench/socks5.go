package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// ReplyError is a SOCKS5 failure reply from the proxy.
type ReplyError struct{ Code byte }

var replyNames = map[byte]string{
	0x01: "general failure", 0x02: "not allowed", 0x03: "network unreachable",
	0x04: "host unreachable", 0x05: "connection refused", 0x06: "TTL expired",
	0x07: "command not supported", 0x08: "address type not supported",
	0xF0: "onion descriptor not found", 0xF1: "onion descriptor invalid",
	0xF2: "onion intro failed", 0xF3: "onion rendezvous failed",
	0xF4: "onion missing client auth", 0xF5: "onion wrong client auth",
	0xF6: "onion bad address", 0xF7: "onion intro timed out",
}

// Error names the reply code.
func (e *ReplyError) Error() string {
	if n, ok := replyNames[e.Code]; ok {
		return fmt.Sprintf("socks reply 0x%02x (%s)", e.Code, n)
	}
	return fmt.Sprintf("socks reply 0x%02x", e.Code)
}

// dialSOCKS5 connects through the SOCKS5 proxy at proxy to host:port,
// always naming the destination by hostname (so the proxy resolves it).
// With a non-empty user it authenticates with RFC 1929 username/password
// (Tor isolates streams by these), else it offers "no authentication".
func dialSOCKS5(ctx context.Context, proxy, host string, port uint16, user, pass string) (net.Conn, error) {
	if len(host) == 0 || len(host) > 255 || len(user) > 255 || len(pass) > 255 {
		return nil, errors.New("host, username or password longer than 255 bytes (or empty host)")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, fmt.Errorf("dialing proxy %s: %w", proxy, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := socks5Handshake(c, host, port, user, pass); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func socks5Handshake(c net.Conn, host string, port uint16, user, pass string) error {
	method := byte(0x00)
	if user != "" {
		method = 0x02
	}
	// One message at a time, each answer read before the next message is
	// sent: C tor, given several handshake messages in one write, answers
	// only the last of them.
	var buf [4]byte
	if _, err := c.Write([]byte{5, 1, method}); err != nil {
		return fmt.Errorf("writing socks greeting: %w", err)
	}
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return fmt.Errorf("reading method selection: %w", err)
	}
	if buf[0] != 5 || buf[1] != method {
		return fmt.Errorf("proxy chose method %d/0x%02x, want %d/0x%02x", buf[0], buf[1], 5, method)
	}
	msg := make([]byte, 0, 3+len(user)+len(pass)+7+len(host))
	if user != "" {
		msg = append(msg, 1, byte(len(user)))
		msg = append(msg, user...)
		msg = append(msg, byte(len(pass)))
		msg = append(msg, pass...)
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("writing username/password: %w", err)
		}
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return fmt.Errorf("reading auth reply: %w", err)
		}
		if buf[0] != 1 || buf[1] != 0 {
			return fmt.Errorf("proxy refused username/password (status %d)", buf[1])
		}
		msg = msg[:0]
	}
	msg = append(msg, 5, 1, 0, 3, byte(len(host)))
	msg = append(msg, host...)
	msg = append(msg, byte(port>>8), byte(port))
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("writing socks request: %w", err)
	}
	if _, err := io.ReadFull(c, buf[:4]); err != nil {
		return fmt.Errorf("reading socks reply: %w", err)
	}
	if buf[0] != 5 {
		return fmt.Errorf("socks reply has version %d", buf[0])
	}
	if buf[1] != 0 {
		return &ReplyError{Code: buf[1]}
	}
	var skip int
	switch buf[3] {
	case 1:
		skip = 4 + 2
	case 4:
		skip = 16 + 2
	case 3:
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			return fmt.Errorf("reading socks reply: %w", err)
		}
		skip = int(buf[0]) + 2
	default:
		return fmt.Errorf("socks reply has address type %d", buf[3])
	}
	if _, err := io.CopyN(io.Discard, c, int64(skip)); err != nil {
		return fmt.Errorf("reading socks reply address: %w", err)
	}
	return nil
}

// splitPort parses a decimal port.
func splitPort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}
