package socks

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"time"

	"tinytor/tor/torlog"
)

// Protocol is the handshake of a front end other than SOCKS that a Server
// can serve: C tor's TransPort (socks/transparent) and HTTPTunnelPort
// (socks/httptunnel). The Server keeps everything else: SocksPolicy, the
// connection limit, the port's flags, isolation keys, the Dialer, the
// counters and the byte relay. A Protocol must be comparable (a reload
// reopens a port whose Config changed).
type Protocol interface {
	// Listener names the listener kind in logs, as C tor does
	// ("Transparent pf/netfilter", "HTTP tunnel").
	Listener() string
	// Option is the torrc option of the port ("TransPort").
	Option() string
	// ReadRequest learns where the client c wants to go, reading from br
	// (which buffers c) if the protocol has a request. It logs why it
	// failed, in C tor's words; the Server then answers the client with
	// Reply(c, nil, err). A returned Request has Command Connect and
	// Version set to the protocol's value (ProtocolTrans, ...).
	ReadRequest(c net.Conn, br *bufio.Reader, log *torlog.Logger) (*Request, error)
	// Reply tells the client how its request ended: err is nil when the
	// stream is open. req is nil when ReadRequest failed. A protocol
	// with nothing to say (TransPort) writes nothing.
	Reply(w io.Writer, req *Request, err error)
}

// Request.Version values of the front ends other than SOCKS, for
// IsolateClientProtocol (C tor isolates by listener type and SOCKS
// version).
const (
	ProtocolTrans       = 100 // TransPort
	ProtocolHTTPConnect = 101 // HTTPTunnelPort
)

// handleProtocol serves a client of a Config.Protocol port after the
// policy check: the protocol's request, the port's flags, then a stream
// relayed both ways.
func (s *Server) handleProtocol(ctx context.Context, c net.Conn, client netip.AddrPort) {
	p := s.cfg.Protocol
	c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(c, 512)
	req, err := p.ReadRequest(c, br, s.log)
	if err != nil {
		s.badHandshake.Add(1)
		p.Reply(c, nil, err)
		return
	}
	if err := s.admit(req, client); err != nil {
		p.Reply(c, req, err)
		return
	}
	c.SetDeadline(time.Time{})

	dctx, dcancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	stream, err := s.dialer.DialStream(dctx, req, isolationKey(s.cfg.ID, s.cfg.Flags, req))
	dcancel()
	if err != nil {
		s.failed.Add(1)
		s.log.Infof("%s connection to %s:%d failed: %v", p.Listener(), s.safe(req.Host), req.Port, err)
		p.Reply(c, req, err)
		return
	}
	defer stream.Close()
	s.succeeded.Add(1) // before the reply, which a client may act on at once
	p.Reply(c, req, nil)
	s.relay(ctx, c, br, stream)
}
