package netproxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"

	"tinytor/tor/errfmt"
)

// SOCKS4 returns a Dialer that connects through the SOCKS 4 proxy at proxy,
// sending userID in the request's USERID field (pluggable transports take
// their per-connection arguments there). SOCKS 4 reaches IPv4 targets only.
func SOCKS4(proxy netip.AddrPort, userID string) Dialer {
	return DialFunc(func(ctx context.Context, target netip.AddrPort) (net.Conn, error) {
		req, err := socks4Request(target, userID)
		if err != nil {
			return nil, errfmt.Errorf("SOCKS4 proxy %s: %w", proxy, err)
		}
		return handshake(ctx, "SOCKS4", proxy, target, func(c net.Conn) (net.Conn, error) {
			if _, err := c.Write(req); err != nil {
				return nil, errfmt.Errorf("sending request: %w", err)
			}
			return c, readSOCKS4Reply(c)
		})
	})
}

func socks4Request(target netip.AddrPort, userID string) ([]byte, error) {
	a := target.Addr().Unmap()
	if !a.Is4() {
		return nil, errfmt.Errorf("target %s is not IPv4: %w", target, ErrUnsupported)
	}
	if strings.IndexByte(userID, 0) >= 0 {
		return nil, errfmt.Errorf("SOCKS4 user ID contains a NUL byte: %w", ErrUnsupported)
	}
	ip := a.As4()
	req := make([]byte, 0, 9+len(userID))
	req = append(req, 4, 1, byte(target.Port()>>8), byte(target.Port()))
	req = append(req, ip[:]...)
	req = append(req, userID...)
	return append(req, 0), nil
}

var socks4Codes = map[byte]string{
	91: "request rejected or failed",
	92: "rejected: proxy cannot reach client's identd",
	93: "rejected: identd user ID mismatch",
}

// readSOCKS4Reply reads the 8-byte SOCKS 4 reply and reports a refusal.
func readSOCKS4Reply(r io.Reader) error {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return errfmt.Errorf("reading reply: %w", noEOF(err))
	}
	if b[0] != 0 && b[0] != 4 {
		return errfmt.Errorf("reply version %d: %w", b[0], ErrBadReply)
	}
	if b[1] == 90 {
		return nil
	}
	msg, ok := socks4Codes[b[1]]
	if !ok {
		msg = "unknown reply code"
	}
	return &ReplyError{Proto: "SOCKS4", Code: int(b[1]), Msg: msg}
}

// SOCKS5 returns a Dialer that connects through the SOCKS 5 proxy at proxy.
// When user or pass is not empty it offers username/password authentication
// (RFC 1929) besides none, as C tor does; each must then be 1 to 255 bytes.
func SOCKS5(proxy netip.AddrPort, user, pass string) Dialer {
	return DialFunc(func(ctx context.Context, target netip.AddrPort) (net.Conn, error) {
		auth := user != "" || pass != ""
		if auth && (len(user) < 1 || len(user) > 255 || len(pass) < 1 || len(pass) > 255) {
			return nil, errfmt.Errorf("SOCKS5 proxy %s: username and password must be 1 to 255 bytes each (have %d and %d): %w",
				proxy, len(user), len(pass), ErrUnsupported)
		}
		return handshake(ctx, "SOCKS5", proxy, target, func(c net.Conn) (net.Conn, error) {
			return c, socks5Handshake(c, target, auth, user, pass)
		})
	})
}

func socks5Handshake(c io.ReadWriter, target netip.AddrPort, auth bool, user, pass string) error {
	greet := []byte{5, 1, 0}
	if auth {
		greet = []byte{5, 2, 0, 2}
	}
	if _, err := c.Write(greet); err != nil {
		return errfmt.Errorf("sending greeting: %w", err)
	}
	method, err := readSOCKS5Method(c)
	if err != nil {
		return err
	}
	switch {
	case method == 0:
	case method == 2 && auth:
		req := make([]byte, 0, 3+len(user)+len(pass))
		req = append(req, 1, byte(len(user)))
		req = append(req, user...)
		req = append(req, byte(len(pass)))
		req = append(req, pass...)
		if _, err := c.Write(req); err != nil {
			return errfmt.Errorf("sending username/password: %w", err)
		}
		if err := readSOCKS5AuthReply(c); err != nil {
			return err
		}
	case method == 0xff:
		return errfmt.Errorf("no acceptable authentication method: %w", ErrAuthFailed)
	default:
		return errfmt.Errorf("proxy chose authentication method %d, which was not offered: %w", method, ErrBadReply)
	}
	a := target.Addr().Unmap()
	req := []byte{5, 1, 0}
	if a.Is4() {
		ip := a.As4()
		req = append(append(req, 1), ip[:]...)
	} else {
		ip := a.As16()
		req = append(append(req, 4), ip[:]...)
	}
	req = append(req, byte(target.Port()>>8), byte(target.Port()))
	if _, err := c.Write(req); err != nil {
		return errfmt.Errorf("sending request: %w", err)
	}
	return readSOCKS5Reply(c)
}

// readSOCKS5Method reads the proxy's choice of authentication method.
func readSOCKS5Method(r io.Reader) (byte, error) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, errfmt.Errorf("reading method selection: %w", noEOF(err))
	}
	if b[0] != 5 {
		return 0, errfmt.Errorf("method selection version %d: %w", b[0], ErrBadReply)
	}
	return b[1], nil
}

// readSOCKS5AuthReply reads the RFC 1929 status.
func readSOCKS5AuthReply(r io.Reader) error {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return errfmt.Errorf("reading authentication reply: %w", noEOF(err))
	}
	if b[0] != 1 && b[0] != 5 { // some proxies answer with version 5
		return errfmt.Errorf("authentication reply version %d: %w", b[0], ErrBadReply)
	}
	if b[1] != 0 {
		return errfmt.Errorf("status %d: %w", b[1], ErrAuthFailed)
	}
	return nil
}

var socks5Codes = [...]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

// readSOCKS5Reply reads the reply to CONNECT, bound address included, so
// that nothing but relayed data follows it on r.
func readSOCKS5Reply(r io.Reader) error {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return errfmt.Errorf("reading reply: %w", noEOF(err))
	}
	if b[0] != 5 {
		return errfmt.Errorf("reply version %d: %w", b[0], ErrBadReply)
	}
	var n int
	switch b[3] {
	case 1:
		n = 4
	case 4:
		n = 16
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return errfmt.Errorf("reading reply: %w", noEOF(err))
		}
		n = int(l[0])
	default:
		if b[1] != 0 {
			// Some proxies send a short reply on failure; the
			// code is what matters.
			return socks5Refusal(b[1])
		}
		return errfmt.Errorf("reply address type %d: %w", b[3], ErrBadReply)
	}
	rest := make([]byte, n+2)
	if _, err := io.ReadFull(r, rest); err != nil {
		if b[1] != 0 {
			return socks5Refusal(b[1])
		}
		return errfmt.Errorf("reading reply address: %w", noEOF(err))
	}
	if b[1] != 0 {
		return socks5Refusal(b[1])
	}
	return nil
}

func socks5Refusal(code byte) error {
	msg := "unknown reply code"
	if int(code) < len(socks5Codes) {
		msg = socks5Codes[code]
	}
	return &ReplyError{Proto: "SOCKS5", Code: int(code), Msg: msg}
}

// noEOF turns a clean EOF in the middle of a reply into ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
