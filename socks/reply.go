package socks

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"tinytor/tor/errfmt"
)

// ReplyCode is a SOCKS5 reply code (the REP field of RFC 1928 section 6,
// plus Tor's extended codes of proposal 304). SOCKS4 replies are derived
// from it: ReplySucceeded becomes 0x5A (granted), everything else 0x5B
// (rejected or failed).
type ReplyCode byte

// The SOCKS5 reply codes.
const (
	ReplySucceeded           ReplyCode = 0x00 // succeeded
	ReplyGeneralFailure      ReplyCode = 0x01 // general SOCKS server failure
	ReplyNotAllowed          ReplyCode = 0x02 // connection not allowed by ruleset
	ReplyNetworkUnreachable  ReplyCode = 0x03 // network unreachable
	ReplyHostUnreachable     ReplyCode = 0x04 // host unreachable
	ReplyConnectionRefused   ReplyCode = 0x05 // connection refused
	ReplyTTLExpired          ReplyCode = 0x06 // TTL expired (C tor: timeouts)
	ReplyCommandUnsupported  ReplyCode = 0x07 // command not supported
	ReplyAddrTypeUnsupported ReplyCode = 0x08 // address type not supported

	// Tor's extended onion-service codes (proposal 304), sent only when the
	// listener has the ExtendedErrors flag; otherwise ReplyGeneralFailure.
	ReplyOnionDescNotFound      ReplyCode = 0xF0 // descriptor can not be found
	ReplyOnionDescInvalid       ReplyCode = 0xF1 // descriptor is invalid
	ReplyOnionIntroFailed       ReplyCode = 0xF2 // introduction failed
	ReplyOnionRendFailed        ReplyCode = 0xF3 // rendezvous failed
	ReplyOnionMissingClientAuth ReplyCode = 0xF4 // missing client authorization
	ReplyOnionWrongClientAuth   ReplyCode = 0xF5 // wrong client authorization
	ReplyOnionBadAddress        ReplyCode = 0xF6 // invalid onion address
	ReplyOnionIntroTimedOut     ReplyCode = 0xF7 // introduction timed out
)

// SOCKS4 reply codes (the CD field of a SOCKS4 reply).
const (
	socks4Granted  = 0x5A
	socks4Rejected = 0x5B
)

var replyNames = map[ReplyCode]string{
	ReplySucceeded:              "succeeded",
	ReplyGeneralFailure:         "general failure",
	ReplyNotAllowed:             "not allowed by ruleset",
	ReplyNetworkUnreachable:     "network unreachable",
	ReplyHostUnreachable:        "host unreachable",
	ReplyConnectionRefused:      "connection refused",
	ReplyTTLExpired:             "TTL expired",
	ReplyCommandUnsupported:     "command not supported",
	ReplyAddrTypeUnsupported:    "address type not supported",
	ReplyOnionDescNotFound:      "onion service descriptor not found",
	ReplyOnionDescInvalid:       "onion service descriptor invalid",
	ReplyOnionIntroFailed:       "onion service introduction failed",
	ReplyOnionRendFailed:        "onion service rendezvous failed",
	ReplyOnionMissingClientAuth: "onion service missing client authorization",
	ReplyOnionWrongClientAuth:   "onion service wrong client authorization",
	ReplyOnionBadAddress:        "invalid onion service address",
	ReplyOnionIntroTimedOut:     "onion service introduction timed out",
}

// String returns a short description of c.
func (c ReplyCode) String() string {
	if n, ok := replyNames[c]; ok {
		return n
	}
	return fmt.Sprintf("reply code 0x%02x", byte(c))
}

// Extended reports whether c is one of Tor's extended codes (0xF0 and up),
// which are sent only to listeners with the ExtendedErrors flag.
func (c ReplyCode) Extended() bool { return c >= 0xF0 }

// Replier is implemented by errors that know which SOCKS reply describes
// them. The tor and onion packages return such errors from Dialer methods.
type Replier interface {
	SOCKSReply() ReplyCode
}

// Error is an error with the SOCKS reply code that reports it to the client.
type Error struct {
	Reply ReplyCode
	Err   error
}

// Errorf returns an *Error with reply code c and a formatted cause.
func Errorf(c ReplyCode, format string, args ...any) *Error {
	return &Error{Reply: c, Err: errfmt.Errorf(format, args...)}
}

// Error describes the failure and its reply code.
func (e *Error) Error() string {
	if e.Err == nil {
		return "socks: " + e.Reply.String()
	}
	return e.Err.Error() + " (socks: " + e.Reply.String() + ")"
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// SOCKSReply returns the reply code.
func (e *Error) SOCKSReply() ReplyCode { return e.Reply }

// ReplyFor maps a Dialer error to the reply sent to the client. Errors that
// implement Replier (anywhere in their chain) give their own code; deadline
// errors give ReplyTTLExpired as in C tor; anything else def. Extended
// codes become ReplyGeneralFailure unless extended is true.
func ReplyFor(err error, def ReplyCode, extended bool) ReplyCode {
	code := def
	var r Replier
	switch {
	case err == nil:
		return ReplySucceeded
	case errors.As(err, &r):
		code = r.SOCKSReply()
	case errors.Is(err, context.DeadlineExceeded):
		code = ReplyTTLExpired
	}
	if code == ReplySucceeded {
		// An error must never be reported as success.
		code = ReplyGeneralFailure
	}
	if code.Extended() && !extended {
		code = ReplyGeneralFailure
	}
	return code
}

// appendReply appends the reply a SOCKS client of the given version expects.
// For SOCKS5 the bound address is addr if valid, else host if non-empty (a
// RESOLVE_PTR answer), else 0.0.0.0:0 as C tor sends. For SOCKS4 only an
// IPv4 addr is carried; the port is always zero.
func appendReply(dst []byte, version int, code ReplyCode, addr netip.Addr, host string) []byte {
	if version == 4 {
		cd := byte(socks4Granted)
		if code != ReplySucceeded {
			cd = socks4Rejected
		}
		dst = append(dst, 0, cd, 0, 0)
		if addr.Is4() && code == ReplySucceeded {
			a := addr.As4()
			return append(dst, a[:]...)
		}
		return append(dst, 0, 0, 0, 0)
	}
	dst = append(dst, 5, byte(code), 0)
	switch {
	case addr.Is4() || addr.Is4In6():
		a := addr.Unmap().As4()
		dst = append(dst, atypIPv4)
		dst = append(dst, a[:]...)
	case addr.Is6():
		a := addr.As16()
		dst = append(dst, atypIPv6)
		dst = append(dst, a[:]...)
	case host != "" && len(host) <= 255:
		dst = append(dst, atypDomain, byte(len(host)))
		dst = append(dst, host...)
	default:
		dst = append(dst, atypIPv4, 0, 0, 0, 0)
	}
	return append(dst, 0, 0)
}

// httpErrorPage is what C tor answers to an HTTP request on a SOCKS port.
const httpErrorPage = "HTTP/1.0 501 Tor is not an HTTP Proxy\r\n" +
	"Content-Type: text/html; charset=iso-8859-1\r\n\r\n" +
	"<html>\n" +
	"<head>\n" +
	"<title>This is a SOCKS Proxy, Not An HTTP Proxy</title>\n" +
	"</head>\n" +
	"<body>\n" +
	"<h1>This is a SOCKS proxy, not an HTTP proxy.</h1>\n" +
	"<p>\n" +
	"It appears you have configured your web browser to use this Tor port as\n" +
	"an HTTP proxy.\n" +
	"</p><p>\n" +
	"This is not correct: this port is a SOCKS proxy (SOCKS4, SOCKS4a or\n" +
	"SOCKS5). Please configure your client to use it as a SOCKS proxy.\n" +
	"</p>\n" +
	"</body>\n" +
	"</html>\n"
