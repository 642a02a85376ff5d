// Package transparent is C tor's TransPort: a front end for connections
// that the kernel's packet filter redirected to tinytor (nftables
// "redirect", iptables "REDIRECT" on Linux). The client speaks no proxy
// protocol: the destination it wanted is read from the socket (netfilter's
// SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST for IPv6) and a Tor stream is
// opened to it, as connection_ap_process_transparent does.
//
// Protocol plugs into package socks: a socks.Server with Config.Protocol
// set to Protocol{} serves a TransPort with everything a SocksPort has
// (SocksPolicy, isolation flags, the Dialer, counters, relaying), and
// socks.NewProtocolListeners keeps TransPorts open across reloads.
package transparent

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"

	"tinytor/socks"
	"tinytor/tor/torlog"
)

// ErrNotRedirected is returned for a connection whose original destination
// is the TransPort itself: it came to the port directly, not through a
// redirect rule. Serving it would connect the port to itself (or, through
// an exit, to nothing useful), so it is closed.
var ErrNotRedirected = errors.New("connection was not redirected to the TransPort (its original destination is the port itself)")

// Protocol is the TransPort handshake for socks.Config.Protocol. It has no
// state and is comparable.
type Protocol struct{}

var _ socks.Protocol = Protocol{}

// Listener names the listener kind as C tor's logs do.
func (Protocol) Listener() string { return "Transparent pf/netfilter" }

// Option is the torrc option of the port.
func (Protocol) Option() string { return "TransPort" }

// ReadRequest reads c's original destination from the socket. A
// connection that was not redirected, or whose destination the kernel
// does not know (no connection tracking), fails with a log line.
func (Protocol) ReadRequest(c net.Conn, _ *bufio.Reader, log *torlog.Logger) (*socks.Request, error) {
	dst, err := OriginalDst(c)
	if err != nil {
		log.Warnf("Fetching original destination failed. Closing. (%v)", err)
		return nil, err
	}
	if local := addrPort(c.LocalAddr()); dst == local {
		log.Warnf("TransPort connection from %v to %v was not redirected by the packet filter; closing it rather than looping back to the TransPort.",
			addrPort(c.RemoteAddr()), local)
		return nil, ErrNotRedirected
	}
	return RequestFor(dst), nil
}

// RequestFor is the CONNECT request a redirected connection to dst makes.
func RequestFor(dst netip.AddrPort) *socks.Request {
	a := dst.Addr().Unmap()
	req := &socks.Request{Version: socks.ProtocolTrans, Command: socks.Connect, Host: a.String(), Port: dst.Port(), AddrType: socks.AddrIPv4}
	if a.Is6() {
		req.AddrType = socks.AddrIPv6
	}
	return req
}

// Reply writes nothing: a transparent client learns of a failure from its
// connection closing, as with C tor.
func (Protocol) Reply(io.Writer, *socks.Request, error) {}

// addrPort is a's address and port, with IPv4-mapped addresses unmapped
// (zero if a is not TCP).
func addrPort(a net.Addr) netip.AddrPort {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := t.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
