// Package netproxy dials TCP connections through an upstream proxy: SOCKS 4,
// SOCKS 5 (with RFC 1929 username/password authentication) or HTTP CONNECT.
// It serves C tor's Socks4Proxy, Socks5Proxy and HTTPSProxy options and the
// local SOCKS listeners of pluggable transports.
//
// Targets are IP:port only: tinytor never resolves names locally, and a
// proxy is never asked to resolve one either.
package netproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"tinytor/tor/errfmt"
)

// Dialer opens a TCP connection to target.
type Dialer interface {
	Dial(ctx context.Context, target netip.AddrPort) (net.Conn, error)
}

// DialFunc adapts a function to the Dialer interface.
type DialFunc func(ctx context.Context, target netip.AddrPort) (net.Conn, error)

// Dial calls f.
func (f DialFunc) Dial(ctx context.Context, target netip.AddrPort) (net.Conn, error) {
	return f(ctx, target)
}

// Direct returns a Dialer that connects without a proxy.
func Direct() Dialer {
	return DialFunc(func(ctx context.Context, target netip.AddrPort) (net.Conn, error) {
		var d net.Dialer
		return d.DialTCP(ctx, "tcp", netip.AddrPort{}, target) // no resolver: see tor/netlisten
	})
}

// ReplyError reports that the proxy answered but refused the connection.
type ReplyError struct {
	// Proto is "SOCKS4", "SOCKS5" or "HTTP".
	Proto string
	// Code is the SOCKS reply code or the HTTP status code.
	Code int
	// Msg describes Code; for HTTP it is the status line as received.
	Msg string
}

// Error formats the refusal as "proxy refused: connection refused (SOCKS5
// reply 5)" or "proxy refused: HTTP/1.1 403 Forbidden".
func (e *ReplyError) Error() string {
	if e.Proto == "HTTP" {
		return "proxy refused: " + e.Msg
	}
	return fmt.Sprintf("proxy refused: %s (%s reply %d)", e.Msg, e.Proto, e.Code)
}

// Errors for failures other than a refusal. They are wrapped with context;
// test with errors.Is.
var (
	// ErrAuthFailed: the proxy rejected the username and password (or
	// offered no acceptable authentication method).
	ErrAuthFailed = errors.New("proxy authentication failed")
	// ErrBadReply: the proxy's answer does not follow the protocol.
	ErrBadReply = errors.New("malformed proxy reply")
	// ErrUnsupported: the request cannot be expressed in the protocol
	// (an IPv6 target over SOCKS 4, a field too long or with a NUL).
	ErrUnsupported = errors.New("request not supported by proxy protocol")
)

// handshake dials proxy and runs fn on the connection with ctx's deadline,
// aborting it when ctx ends. On success the connection is returned with no
// deadline set.
func handshake(ctx context.Context, proto string, proxy netip.AddrPort, target netip.AddrPort,
	fn func(net.Conn) (net.Conn, error)) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialTCP(ctx, "tcp", netip.AddrPort{}, proxy) // no resolver: see tor/netlisten
	if err != nil {
		return nil, errfmt.Errorf("%s proxy %s: %w", proto, proxy, err)
	}
	dl, hasDeadline := ctx.Deadline()
	if hasDeadline {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	c, err := fn(conn)
	if !stop() || ctx.Err() != nil {
		// ctx ended during the handshake: report that rather than the
		// i/o timeout it caused.
		if err == nil {
			err = ctx.Err()
		} else {
			err = errfmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	} else if hasDeadline && errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection's deadline, which is ctx's, passed just
		// before ctx noticed.
		err = errfmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	if err != nil {
		conn.Close()
		return nil, errfmt.Errorf("%s proxy %s to %s: %w", proto, proxy, target, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}
