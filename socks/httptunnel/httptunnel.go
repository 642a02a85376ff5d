// Package httptunnel is C tor's HTTPTunnelPort: a front end for
// applications that speak only HTTP proxies. A client sends one
// "CONNECT host:port HTTP/1.x" request; the stream's outcome is answered
// with C tor's status lines (connection_ap_process_http_connect,
// end_reason_to_http_connect_response_line) and the connection then
// carries the stream's bytes. Any other method gets C tor's 405 page: the
// port is a tunnel, not an HTTP proxy. The parser is this package's own
// (no net/http), bounded by MaxHeader.
//
// Protocol plugs into package socks: a socks.Server with Config.Protocol
// set to Protocol{} serves an HTTPTunnelPort with everything a SocksPort
// has (SocksPolicy, isolation flags, the Dialer, counters, relaying).
package httptunnel

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"

	"tinytor/socks"
	"tinytor/tor/torlog"
)

// respOK answers a request whose stream opened.
const respOK = "HTTP/1.0 200 OK\r\n\r\n"

// Protocol is the HTTP CONNECT handshake for socks.Config.Protocol. It
// has no state and is comparable.
type Protocol struct{}

var _ socks.Protocol = Protocol{}

// Listener names the listener kind as C tor's logs do.
func (Protocol) Listener() string { return "HTTP tunnel" }

// Option is the torrc option of the port.
func (Protocol) Option() string { return "HTTPTunnelPort" }

// ReadRequest reads the client's CONNECT request. Its
// Proxy-Authorization and X-Tor-Stream-Isolation headers become the
// request's username and password, which IsolateSOCKSAuth (on by
// default) isolates by, as in C tor.
func (Protocol) ReadRequest(c net.Conn, br *bufio.Reader, log *torlog.Logger) (*socks.Request, error) {
	hr, err := ReadRequest(br)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			log.Infof("HTTP tunnel error: saying %q (%v)", re.Status(), re.Err)
		} else {
			log.Infof("HTTP tunnel request from %v ended early: %v", c.RemoteAddr(), err)
		}
		return nil, err
	}
	req := &socks.Request{Version: socks.ProtocolHTTPConnect, Command: socks.Connect, Host: hr.Host, Port: hr.Port,
		AddrType: socks.AddrDomain, Auth: hr.HasAuth, Username: hr.ProxyAuthorization, Password: hr.Isolation}
	if a, err := netip.ParseAddr(hr.Host); err == nil {
		req.AddrType = socks.AddrIPv4
		if a.Is6() {
			req.AddrType = socks.AddrIPv6
		}
	}
	return req, nil
}

// Reply answers the client: 200 when the stream opened, the refusal of a
// bad request, or the status C tor gives the stream's failure (see
// Response).
func (Protocol) Reply(w io.Writer, req *socks.Request, err error) {
	var re *RequestError
	switch {
	case err == nil:
		io.WriteString(w, respOK)
	case errors.As(err, &re):
		io.WriteString(w, re.Response)
	case req == nil:
		// The client went away or was too slow: nothing to answer.
	default:
		io.WriteString(w, Response(err))
	}
}

// endLines are C tor's status lines for the END reasons of an exit
// (end_reason_to_http_connect_response_line).
var endLines = map[string]string{
	"MISC":           "HTTP/1.0 500 Internal Server Error\r\n\r\n",
	"RESOLVEFAILED":  "HTTP/1.0 404 Not Found (resolve failed)\r\n\r\n",
	"NOROUTE":        "HTTP/1.0 404 Not Found (no route)\r\n\r\n",
	"CONNECTREFUSED": "HTTP/1.0 403 Forbidden (connection refused)\r\n\r\n",
	"EXITPOLICY":     "HTTP/1.0 403 Forbidden (exit policy)\r\n\r\n",
	"DESTROY":        "HTTP/1.0 502 Bad Gateway (destroy cell received)\r\n\r\n",
	"DONE":           "HTTP/1.0 502 Bad Gateway (unexpected close)\r\n\r\n",
	"TIMEOUT":        "HTTP/1.0 504 Gateway Timeout\r\n\r\n",
	"HIBERNATING":    "HTTP/1.0 502 Bad Gateway (hibernating server)\r\n\r\n",
	"INTERNAL":       "HTTP/1.0 502 Bad Gateway (internal error)\r\n\r\n",
	"RESOURCELIMIT":  "HTTP/1.0 502 Bad Gateway (resource limit)\r\n\r\n",
	"CONNRESET":      "HTTP/1.0 403 Forbidden (connection reset)\r\n\r\n",
	"TORPROTOCOL":    "HTTP/1.0 502 Bad Gateway (tor protocol violation)\r\n\r\n",
}

// Response is the status C tor sends for a stream that failed with err.
// An exit's END reason in err (an error with an EndReason method, as
// tor.StreamError) picks C tor's line for it. Otherwise the SOCKS reply
// the Dialer chose (socks.ReplyFor) stands for the reason C tor would
// have closed the stream with: onion-service descriptor and
// client-authorization failures as a failed resolve, an introduction
// timeout as a timeout, a malformed address as a protocol violation.
func Response(err error) string {
	var end interface{ EndReason() string }
	if errors.As(err, &end) {
		if line, ok := endLines[end.EndReason()]; ok {
			return line
		}
	}
	switch socks.ReplyFor(err, socks.ReplyGeneralFailure, true) {
	case socks.ReplySucceeded:
		return respOK
	case socks.ReplyHostUnreachable, socks.ReplyOnionDescNotFound, socks.ReplyOnionDescInvalid,
		socks.ReplyOnionMissingClientAuth, socks.ReplyOnionWrongClientAuth,
		socks.ReplyOnionIntroFailed, socks.ReplyOnionRendFailed:
		return "HTTP/1.0 404 Not Found (resolve failed)\r\n\r\n"
	case socks.ReplyNetworkUnreachable:
		return "HTTP/1.0 404 Not Found (no route)\r\n\r\n"
	case socks.ReplyConnectionRefused:
		return "HTTP/1.0 403 Forbidden (connection refused)\r\n\r\n"
	case socks.ReplyNotAllowed:
		return "HTTP/1.0 403 Forbidden (exit policy)\r\n\r\n"
	case socks.ReplyTTLExpired, socks.ReplyOnionIntroTimedOut:
		return "HTTP/1.0 504 Gateway Timeout\r\n\r\n"
	case socks.ReplyOnionBadAddress:
		return "HTTP/1.0 502 Bad Gateway (tor protocol violation)\r\n\r\n"
	}
	return "HTTP/1.0 500 Internal Server Error\r\n\r\n"
}
