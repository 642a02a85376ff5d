package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"

	onionclient "tinytor/onion/client"
	"tinytor/socks"
	"tinytor/tor"
	"tinytor/tor/addrmap"
	"tinytor/tor/cell"
	"tinytor/tor/circuit"
	"tinytor/tor/config"
	"tinytor/tor/torlog"
)

// socksPorts are the torrc's SocksPorts as package socks opens them.
func socksPorts(cfg *config.Config, log *torlog.Logger) []socks.Port {
	return clientPorts(cfg.SocksPorts, cfg, log)
}

// clientPorts are SocksPort, TransPort or HTTPTunnelPort lines as package
// socks opens them (the latter two with a socks.Protocol set by their
// Listeners).
func clientPorts(lines []config.ClientPort, cfg *config.Config, log *torlog.Logger) []socks.Port {
	ports := make([]socks.Port, 0, len(lines))
	for _, sp := range lines {
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
// hosts with the onion service client. The address map rewrites
// destinations first (MAPADDRESS, and virtual addresses back to the names
// they were handed out for) and answers lookups of automapped names.
type socksDialer struct {
	c     *tor.Client
	onion *onionclient.Client
	amap  *addrmap.Map
	log   *torlog.Logger
}

func (d socksDialer) DialStream(ctx context.Context, req *socks.Request, iso socks.IsolationKey) (net.Conn, error) {
	host, err := d.mapHost(req.Host)
	if err != nil {
		return nil, err
	}
	ctx = tor.WithSource(ctx, req.ClientAddr) // SOURCE_ADDR of the STREAM events
	if socks.IsOnion(host) {
		conn, err := d.onion.Dial(ctx, host, req.Port, iso)
		if err != nil {
			return nil, onionSocksError(err)
		}
		return conn, nil
	}
	conn, err := d.c.Dial(ctx, host, req.Port, iso)
	if err != nil {
		return nil, socksError(err)
	}
	return conn, nil
}

// mapHost applies the address map to a destination, as C tor's
// connection_ap_handshake_rewrite: a virtual address nothing maps is
// refused (it would fail at an exit and may leak), and so is a .exit
// name (C tor disables that notation).
func (d socksDialer) mapHost(host string) (string, error) {
	mapped, _ := d.amap.Rewrite(host)
	if d.amap.InVirtualRange(mapped) {
		d.log.Warnf("Missing mapping for virtual address '%s'. Refusing.", d.safe(mapped))
		return "", socks.Errorf(socks.ReplyGeneralFailure, "no mapping for virtual address")
	}
	if h := strings.ToLower(strings.TrimSuffix(mapped, ".")); strings.HasSuffix(h, ".exit") {
		d.log.Warnf("The  \".exit\" notation is disabled in Tor due to security risks.")
		return "", socks.Errorf(socks.ReplyNotAllowed, ".exit addresses are refused")
	}
	return mapped, nil
}

// safe scrubs an address for the log unless SafeLogging is 0.
func (d socksDialer) safe(s string) string {
	if d.c != nil && d.c.Config().SafeLogging == config.SafeLoggingOff {
		return s
	}
	return "[scrubbed]"
}

// Resolve answers a SOCKS RESOLVE: an automapped name gets its virtual
// address (IPv4, as C tor gives SOCKS clients), other names are mapped
// and asked of an exit; onion names are refused otherwise.
func (d socksDialer) Resolve(ctx context.Context, host string, iso socks.IsolationKey) ([]netip.Addr, error) {
	addrs, _, err := d.resolve(ctx, host, false, iso)
	if err != nil {
		return nil, socksError(err)
	}
	return addrs, nil
}

// resolve is the lookup of the SOCKS and DNS ports: MAPADDRESS first,
// then automapping (ipv6 asks for an IPv6 virtual address), then an exit.
// ttl is 0 for answers that do not come from an exit.
func (d socksDialer) resolve(ctx context.Context, host string, ipv6 bool, iso socks.IsolationKey) ([]netip.Addr, uint32, error) {
	mapped, _ := d.amap.Rewrite(host)
	if a, err := netip.ParseAddr(mapped); err == nil {
		return []netip.Addr{a}, 0, nil
	}
	if d.amap.ShouldAutomap(mapped) {
		a, err := d.amap.Virtual(mapped, ipv6, addrmap.FromAutomap)
		if err != nil {
			d.log.Warnf("Unable to automap address %s: %v", d.safe(mapped), err)
			return nil, 0, err
		}
		d.log.Infof("Automapping %s to %s", d.safe(mapped), d.safe(a.String()))
		return []netip.Addr{a}, 0, nil
	}
	if socks.IsOnion(mapped) {
		d.log.Warnf("Resolve requests to hidden services not allowed. Failing.")
		return nil, 0, &circuit.ResolveError{Host: mapped}
	}
	return d.c.ResolveTTL(ctx, mapped, iso)
}

func (d socksDialer) ResolvePTR(ctx context.Context, addr netip.Addr, iso socks.IsolationKey) (string, error) {
	name, _, err := d.resolvePTR(ctx, addr, iso)
	if err != nil {
		return "", socksError(err)
	}
	return name, nil
}

// resolvePTR answers a reverse lookup: a virtual address with the name
// it stands for, an internal address with an error (C tor's
// ClientDNSRejectInternalAddresses), others through an exit.
func (d socksDialer) resolvePTR(ctx context.Context, addr netip.Addr, iso socks.IsolationKey) (string, uint32, error) {
	if name, ok := d.amap.Name(addr); ok {
		return name, 0, nil
	}
	if a := addr.Unmap(); a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() {
		return "", 0, &circuit.ResolveError{Host: addr.String()}
	}
	return d.c.ResolvePTRTTL(ctx, addr, iso)
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
