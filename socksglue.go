package main

import (
	"context"
	"errors"
	"net"
	"net/netip"

	onionclient "tinytor/onion/client"
	"tinytor/socks"
	"tinytor/tor"
	"tinytor/tor/cell"
	"tinytor/tor/config"
	"tinytor/tor/torlog"
)

// socksPorts are the torrc's SocksPorts as package socks opens them.
func socksPorts(cfg *config.Config, log *torlog.Logger) []socks.Port {
	ports := make([]socks.Port, 0, len(cfg.SocksPorts))
	for _, sp := range cfg.SocksPorts {
		p := socks.Port{Network: "tcp", Address: sp.Addr.String(), Config: socks.Config{
			ID:              sp.Listener.String(),
			Flags:           socksFlags(sp),
			Policy:          cfg.SocksPolicy,
			SafeSocks:       cfg.SafeSocks,
			WarnUnsafeSocks: cfg.WarnUnsafeSocks,
			Log:             log,
		}}
		if sp.Unix != "" {
			p.Network, p.Address = "unix", sp.Unix
		}
		ports = append(ports, p)
	}
	return ports
}

// socksFlags converts a SocksPort line's flags.
func socksFlags(sp config.SocksPort) socks.Flags {
	return socks.Flags{
		IsolateDestAddr:       sp.Isolation&config.IsolateDestAddr != 0,
		IsolateDestPort:       sp.Isolation&config.IsolateDestPort != 0,
		IsolateSOCKSAuth:      sp.Isolation&config.IsolateSOCKSAuth != 0,
		IsolateClientAddr:     sp.Isolation&config.IsolateClientAddr != 0,
		IsolateClientProtocol: sp.Isolation&config.IsolateClientProtocol != 0,
		NoIPv4Traffic:         !sp.IPv4Traffic,
		IPv6Traffic:           sp.IPv6Traffic,
		PreferIPv6:            sp.PreferIPv6,
		ExtendedErrors:        sp.ExtendedErrors,
		OnionTrafficOnly:      !sp.IPv4Traffic && !sp.IPv6Traffic && sp.OnionTraffic,
		NoOnionTraffic:        !sp.OnionTraffic,
		SessionGroup:          sp.SessionGroup,
		SessionGroupSet:       sp.SessionGroup >= 0,
	}
}

// socksDialer serves SOCKS requests with the Tor client, and .onion
// hosts with the onion service client.
type socksDialer struct {
	c     *tor.Client
	onion *onionclient.Client
}

func (d socksDialer) DialStream(ctx context.Context, req *socks.Request, iso socks.IsolationKey) (net.Conn, error) {
	if socks.IsOnion(req.Host) {
		conn, err := d.onion.Dial(ctx, req.Host, req.Port, iso)
		if err != nil {
			return nil, onionSocksError(err)
		}
		return conn, nil
	}
	conn, err := d.c.Dial(ctx, req.Host, req.Port, iso)
	if err != nil {
		return nil, socksError(err)
	}
	return conn, nil
}

func (d socksDialer) Resolve(ctx context.Context, host string, iso socks.IsolationKey) ([]netip.Addr, error) {
	addrs, err := d.c.Resolve(ctx, host, iso)
	if err != nil {
		return nil, socksError(err)
	}
	return addrs, nil
}

func (d socksDialer) ResolvePTR(ctx context.Context, addr netip.Addr, iso socks.IsolationKey) (string, error) {
	name, err := d.c.ResolvePTR(ctx, addr, iso)
	if err != nil {
		return "", socksError(err)
	}
	return name, nil
}

// onionSocksError chooses the SOCKS reply for a failed onion connection:
// proposal 304's codes (the socks package turns them into general
// failure without ExtendedErrors).
func onionSocksError(err error) error {
	replies := map[onionclient.Kind]socks.ReplyCode{
		onionclient.DescNotFound:      socks.ReplyOnionDescNotFound,
		onionclient.DescInvalid:       socks.ReplyOnionDescInvalid,
		onionclient.IntroFailed:       socks.ReplyOnionIntroFailed,
		onionclient.RendFailed:        socks.ReplyOnionRendFailed,
		onionclient.MissingClientAuth: socks.ReplyOnionMissingClientAuth,
		onionclient.BadClientAuth:     socks.ReplyOnionWrongClientAuth,
		onionclient.BadAddress:        socks.ReplyOnionBadAddress,
		onionclient.IntroTimeout:      socks.ReplyOnionIntroTimedOut,
	}
	var oe *onionclient.Error
	if errors.As(err, &oe) {
		if r, ok := replies[oe.Kind]; ok {
			return &socks.Error{Reply: r, Err: err}
		}
	}
	return socksError(err)
}

// socksError chooses the SOCKS reply for a stream failure as C tor does
// (connection_ap_handshake_socks_reply / END reason mapping).
func socksError(err error) error {
	replies := map[cell.EndReason]socks.ReplyCode{
		cell.EndResolveFailed:  socks.ReplyHostUnreachable,
		cell.EndConnectRefused: socks.ReplyConnectionRefused,
		cell.EndExitPolicy:     socks.ReplyNotAllowed,
		cell.EndNoRoute:        socks.ReplyNetworkUnreachable,
		cell.EndTimeout:        socks.ReplyTTLExpired,
		cell.EndResourceLimit:  socks.ReplyGeneralFailure, // also tor.ErrOverloaded: memory pressure
	}
	var se *tor.StreamError
	if errors.As(err, &se) {
		if r, ok := replies[se.Reason]; ok {
			return &socks.Error{Reply: r, Err: err}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &socks.Error{Reply: socks.ReplyTTLExpired, Err: err}
	}
	return err
}
