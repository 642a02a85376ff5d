// Package link implements a client's channel to a Tor relay (tor-spec 2-4):
// TLS, the in-protocol link handshake (VERSIONS, CERTS, AUTH_CHALLENGE,
// NETINFO) with full validation of the relay's certificates, and then the
// read and write loops that carry fixed-size cells between the relay and
// the circuits registered on the channel.
//
// The handshake is plain sequential code in handshake.go, each step
// commented with the tor-spec section it implements.
package link

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/torlog"
)

// Identity names a relay by its keys.
type Identity struct {
	// RSA is the SHA-1 fingerprint of the relay's RSA identity key.
	RSA [20]byte
	// Ed25519 is the relay's Ed25519 identity key; all zero when unknown.
	Ed25519 [32]byte
}

// HasEd25519 reports whether the Ed25519 identity is known (non-zero).
func (id Identity) HasEd25519() bool { return id.Ed25519 != [32]byte{} }

// String formats id as C tor names relays: "$" and the upper-case hex RSA
// fingerprint, followed by "~" and the unpadded base64 Ed25519 key when
// known.
func (id Identity) String() string {
	s := "$" + strings.ToUpper(hex.EncodeToString(id.RSA[:]))
	if id.HasEd25519() {
		s += "~" + base64.RawStdEncoding.EncodeToString(id.Ed25519[:])
	}
	return s
}

// Config holds the options of a channel. The zero value works.
type Config struct {
	// Log receives the channel's messages; nil discards them.
	Log *torlog.Logger
	// Now is the clock used for certificate expiry and clock skew;
	// nil means time.Now.
	Now func() time.Time
	// Pool supplies the fixed-size cells the read loop hands to circuits
	// and takes back the cells the write loop has sent; nil allocates.
	Pool *cell.Pool
	// Dialer connects the TCP socket in Dial; nil means a zero net.Dialer.
	Dialer *net.Dialer
	// HandshakeTimeout bounds TLS and the link handshake when the context
	// given to Dial has no earlier deadline; 0 means 30 seconds.
	HandshakeTimeout time.Duration
	// SendQueue is the number of cells Send may queue before it blocks;
	// 0 means 64.
	SendQueue int
	// TrustedDir marks the relay as a directory authority: as in C tor, a
	// clock skew of more than an hour is then logged as a warning rather
	// than at info level.
	TrustedDir bool
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Errors that callers decide on. Handshake failures are *HandshakeError
// values wrapping one of these, or a tor/cert error, or an I/O error.
var (
	// ErrWrongIdentity means the relay proved an identity other than the
	// one asked for.
	ErrWrongIdentity = errors.New("relay identity is not the one expected")
	// ErrNoCommonVersion means the relay offered no link protocol version
	// we support (4 or 5).
	ErrNoCommonVersion = errors.New("no link protocol version in common")
	// ErrProtocol means the relay broke the link protocol.
	ErrProtocol = errors.New("link protocol violation")
	// ErrBadCerts means the relay's CERTS cell does not prove an identity.
	ErrBadCerts = errors.New("invalid CERTS cell")
	// ErrClosed is returned by operations on a closed channel, and is the
	// channel's error after Close.
	ErrClosed = errors.New("channel closed")
)

// HandshakeError reports why a channel could not be opened.
type HandshakeError struct {
	// Addr is the relay's address.
	Addr string
	// Reason says what went wrong, for logs.
	Reason string
	// Err is the underlying error, for errors.Is.
	Err error
}

func (e *HandshakeError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("link handshake with %s: %s", e.Addr, e.Reason)
	}
	return fmt.Sprintf("link handshake with %s: %s: %v", e.Addr, e.Reason, e.Err)
}

// Unwrap returns the underlying error.
func (e *HandshakeError) Unwrap() error { return e.Err }
