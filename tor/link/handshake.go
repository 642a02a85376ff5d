package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/errfmt"
	"tinytor/tor/torlog"
)

// The link protocol versions we offer (tor-spec 4). Both use 4-byte
// circuit IDs; 5 adds link padding negotiation, which we never initiate.
var ourVersions = []uint16{4, 5}

// netinfoNoticeSkew is the clock skew above which C tor logs the NETINFO
// time of a relay (NETINFO_NOTICE_SKEW).
const netinfoNoticeSkew = time.Hour

// Dial opens a channel to the relay at addr (an address literal and port,
// "192.0.2.1:9001" or "[2001:db8::1]:9001": relays are never looked up by
// name, and a typed dial keeps Go's resolver out of the binary) that must
// prove the identity want: TCP, TLS, then the link handshake (see
// [Client]).
func Dial(ctx context.Context, addr string, want Identity, cfg Config) (*Channel, error) {
	ctx, cancel := handshakeContext(ctx, cfg)
	defer cancel()
	d := cfg.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, &HandshakeError{Addr: addr, Reason: "connecting", Err: err}
	}
	conn, err := d.DialTCP(ctx, "tcp", netip.AddrPort{}, ap)
	if err != nil {
		cfg.Log.Infof("Could not connect to relay %s at %s: %v", want, addr, err)
		return nil, &HandshakeError{Addr: addr, Reason: "connecting", Err: err}
	}
	return Client(ctx, conn, want, cfg)
}

func handshakeContext(ctx context.Context, cfg Config) (context.Context, context.CancelFunc) {
	t := cfg.HandshakeTimeout
	if t <= 0 {
		t = 30 * time.Second
	}
	return context.WithTimeout(ctx, t)
}

// Client runs TLS and the link handshake as the initiator over conn, an
// open connection to a relay, and returns the channel. On failure conn is
// closed, the reason is logged, and the error is a *HandshakeError.
func Client(ctx context.Context, conn net.Conn, want Identity, cfg Config) (*Channel, error) {
	ctx, cancel := handshakeContext(ctx, cfg)
	defer cancel()
	addr := conn.RemoteAddr().String()
	h := &handshake{cfg: &cfg, log: cfg.Log, addr: addr, want: want}
	ch, err := h.run(ctx, conn)
	if err != nil {
		conn.Close()
		var he *HandshakeError
		if !errors.As(err, &he) {
			he = &HandshakeError{Addr: addr, Reason: "I/O error", Err: err}
		}
		switch {
		case errors.Is(he.Err, context.Canceled), errors.Is(he.Err, context.DeadlineExceeded):
		case ctx.Err() != nil:
			he.Err = errfmt.Errorf("%w (%w)", he.Err, ctx.Err())
		case errors.Is(he.Err, os.ErrDeadlineExceeded):
			// The only deadlines set on conn are ctx's.
			he.Err = errfmt.Errorf("%w (%w)", he.Err, context.DeadlineExceeded)
		}
		if errors.Is(err, ErrWrongIdentity) {
			h.log.Warnf("Tried connecting to relay at %s, but its identity was not as expected: %v", addr, he)
		} else {
			h.log.Infof("Closing connection to relay %s at %s: %v", want, addr, he)
		}
		return nil, he
	}
	return ch, nil
}

// handshake holds the state of one link handshake as initiator.
type handshake struct {
	cfg  *Config
	log  *torlog.Logger
	addr string
	want Identity
}

func (h *handshake) fail(reason string, err error) error {
	return &HandshakeError{Addr: h.addr, Reason: reason, Err: err}
}

func (h *handshake) run(ctx context.Context, raw net.Conn) (*Channel, error) {
	// Abort blocking reads and writes when ctx ends.
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	// tor-spec 2: TLS. Relays present self-signed certificates; they are
	// authenticated by the CERTS cell below, not by a PKI.
	conn := tls.Client(raw, &tls.Config{
		InsecureSkipVerify: true, // verified in VerifyResponder
		MinVersion:         tls.VersionTLS12,
	})
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, h.fail("TLS handshake", err)
	}
	state := conn.ConnectionState()
	if len(state.PeerCertificates) == 0 {
		return nil, h.fail("TLS handshake", errfmt.Errorf("relay sent no certificate: %w", ErrProtocol))
	}
	tlsCert := state.PeerCertificates[0].Raw

	r := cell.NewReader(conn, h.cfg.Pool)
	r.SetContext(ctx) // a full cell pool waits no longer than the handshake
	w := cell.NewWriter(conn)

	// tor-spec 4.1: send our VERSIONS cell (2-byte circuit ID), read
	// theirs, and take the highest version in common.
	if err := w.WriteVarCell(&cell.VarCell{Command: cell.Versions, Payload: cell.EncodeVersions(ourVersions...)}); err != nil {
		return nil, h.fail("sending VERSIONS", err)
	}
	if err := w.Flush(); err != nil {
		return nil, h.fail("sending VERSIONS", err)
	}
	fixed, v, err := r.ReadCell()
	if err != nil {
		return nil, h.fail("reading VERSIONS", err)
	}
	if fixed != nil || v.Command != cell.Versions {
		var got fmt.Stringer = v
		if fixed != nil {
			got = fixed
			h.cfg.Pool.Put(fixed)
		}
		return nil, h.fail("reading VERSIONS", errfmt.Errorf("got %s first: %w", got, ErrProtocol))
	}
	theirs, err := cell.ParseVersions(v.Payload)
	if err != nil {
		return nil, h.fail("reading VERSIONS", errfmt.Errorf("%w: %w", ErrProtocol, err))
	}
	version := 0
	for _, t := range theirs {
		for _, o := range ourVersions {
			if t == o && int(t) > version {
				version = int(t)
			}
		}
	}
	if version == 0 {
		return nil, h.fail(fmt.Sprintf("relay offers link versions %v, we %v", theirs, ourVersions), ErrNoCommonVersion)
	}
	r.SetLinkVersion(version)
	w.SetLinkVersion(version)

	// tor-spec 4: the responder sends CERTS, AUTH_CHALLENGE and NETINFO.
	// VPADDING may come at any time. We don't authenticate, so
	// AUTH_CHALLENGE is read and ignored.
	var (
		id      Identity
		gotCert bool
		netinfo cell.NetinfoMsg
	)
	for {
		fixed, v, err := r.ReadCell()
		if err != nil {
			return nil, h.fail("reading handshake cells", err)
		}
		if v != nil {
			switch v.Command {
			case cell.VPadding:
				continue
			case cell.Certs:
				if gotCert {
					return nil, h.fail("reading CERTS", errfmt.Errorf("second CERTS cell: %w", ErrProtocol))
				}
				gotCert = true
				if id, err = h.checkCerts(v.Payload, tlsCert); err != nil {
					return nil, err
				}
				continue
			case cell.AuthChallenge:
				if !gotCert {
					return nil, h.fail("reading AUTH_CHALLENGE", errfmt.Errorf("AUTH_CHALLENGE before CERTS: %w", ErrProtocol))
				}
				continue
			}
			return nil, h.fail("reading handshake cells", errfmt.Errorf("unexpected %s: %w", v, ErrProtocol))
		}
		cmd := fixed.Command
		if cmd == cell.Padding {
			h.cfg.Pool.Put(fixed)
			continue
		}
		if cmd != cell.Netinfo {
			h.cfg.Pool.Put(fixed)
			return nil, h.fail("reading handshake cells", errfmt.Errorf("unexpected %s before NETINFO: %w", cmd, ErrProtocol))
		}
		if !gotCert {
			h.cfg.Pool.Put(fixed)
			return nil, h.fail("reading NETINFO", errfmt.Errorf("NETINFO before CERTS: %w", ErrProtocol))
		}
		netinfo, err = cell.ParseNetinfo(fixed.Payload[:])
		h.cfg.Pool.Put(fixed)
		if err != nil {
			return nil, h.fail("reading NETINFO", errfmt.Errorf("%w: %w", ErrProtocol, err))
		}
		break
	}
	now := h.cfg.now()

	// tor-spec 4.5: send our NETINFO: time 0 as clients do, the relay's
	// address as we see it, and none of our own.
	var ni cell.NetinfoMsg
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		ni.OtherAddr = ap.Addr().Unmap()
	}
	out := new(cell.Cell)
	out.Command = cell.Netinfo
	if err := ni.MarshalTo(&out.Payload); err != nil {
		return nil, h.fail("sending NETINFO", err)
	}
	if err := w.WriteCell(out); err != nil {
		return nil, h.fail("sending NETINFO", err)
	}
	if err := w.Flush(); err != nil {
		return nil, h.fail("sending NETINFO", err)
	}

	skew := time.Duration(0)
	if netinfo.Time != 0 {
		skew = time.Unix(int64(netinfo.Time), 0).Sub(now.Truncate(time.Second))
		h.logSkew(skew)
	}

	if !stop() {
		return nil, h.fail("handshake", ctx.Err())
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, h.fail("clearing deadline", err)
	}
	h.log.Debugf("Link handshake with %s at %s done: link version %d, clock skew %s", id, h.addr, version, skew)
	return newChannel(conn, r, w, id, version, skew, netinfo.OtherAddr, *h.cfg, h.addr), nil
}

// checkCerts validates the CERTS cell and compares the proven identity
// with the one we want. A wanted RSA identity of all zeros accepts any
// identity the relay proves (a bridge configured without a fingerprint):
// the caller reads it from Channel.Identity.
func (h *handshake) checkCerts(p []byte, tlsCert []byte) (Identity, error) {
	m, err := ParseCerts(p)
	if err != nil {
		return Identity{}, h.fail("parsing CERTS", err)
	}
	id, err := VerifyResponder(m, tlsCert, h.cfg.now())
	if err != nil {
		return Identity{}, h.fail("validating CERTS", err)
	}
	if h.want.RSA != ([20]byte{}) && id.RSA != h.want.RSA {
		return id, h.fail(fmt.Sprintf("wanted RSA identity %s but the relay proved %s", Identity{RSA: h.want.RSA}, Identity{RSA: id.RSA}), ErrWrongIdentity)
	}
	if h.want.HasEd25519() && id.Ed25519 != h.want.Ed25519 {
		return id, h.fail(fmt.Sprintf("wanted Ed25519 identity %s but the relay proved %s", h.want, id), ErrWrongIdentity)
	}
	return id, nil
}

// logSkew logs a large clock skew as C tor does (connection_or.c,
// NETINFO_NOTICE_SKEW). skew is their time minus ours.
func (h *handshake) logSkew(skew time.Duration) {
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	if abs <= netinfoNoticeSkew {
		return
	}
	sev := torlog.Info
	if h.cfg.TrustedDir {
		sev = torlog.Warn
	}
	ours, theirs := "behind", "ahead"
	if skew < 0 {
		ours, theirs = "ahead", "behind"
	}
	h.log.Logf(sev, "Received NETINFO cell with skewed time from server at %s.  It seems that our clock is %s by %s, or that theirs is %s. Tor requires an accurate clock to work: please check your time and date settings.",
		h.addr, ours, formatInterval(abs), theirs)
}

// formatInterval formats d as C tor's format_time_interval does:
// "2 days, 3 hours, 4 minutes", "3 hours, 4 minutes", "4 minutes, 5
// seconds" or "5 seconds".
func formatInterval(d time.Duration) string {
	s := int64(d / time.Second)
	days, hours, mins, secs := s/86400, s%86400/3600, s%3600/60, s%60
	switch {
	case days > 0:
		return fmt.Sprintf("%d days, %d hours, %d minutes", days, hours, mins)
	case hours > 0:
		return fmt.Sprintf("%d hours, %d minutes", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%d minutes, %d seconds", mins, secs)
	}
	return fmt.Sprintf("%d seconds", secs)
}
