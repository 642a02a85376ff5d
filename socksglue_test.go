package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	onionclient "tinytor/onion/client"
	"tinytor/socks"
	"tinytor/tor"
	"tinytor/tor/cell"
	"tinytor/tor/config"
)

func TestSocksErrors(t *testing.T) {
	reply := func(err error) socks.ReplyCode {
		var se *socks.Error
		if !errors.As(err, &se) {
			return 0
		}
		return se.Reply
	}
	for reason, want := range map[cell.EndReason]socks.ReplyCode{
		cell.EndResolveFailed: socks.ReplyHostUnreachable, cell.EndConnectRefused: socks.ReplyConnectionRefused,
		cell.EndExitPolicy: socks.ReplyNotAllowed, cell.EndNoRoute: socks.ReplyNetworkUnreachable,
		cell.EndTimeout: socks.ReplyTTLExpired, cell.EndResourceLimit: socks.ReplyGeneralFailure, cell.EndMisc: 0,
	} {
		err := fmt.Errorf("dial: %w", &tor.StreamError{Reason: reason, Err: errors.New("end")})
		if got := reply(socksError(err)); got != want {
			t.Errorf("END reason %v: reply %v, want %v", reason, got, want)
		}
		if !errors.Is(socksError(err), err) {
			t.Errorf("END reason %v: the cause is lost", reason)
		}
	}
	if got := reply(socksError(context.DeadlineExceeded)); got != socks.ReplyTTLExpired {
		t.Errorf("deadline: reply %v", got)
	}
	for kind, want := range map[onionclient.Kind]socks.ReplyCode{
		onionclient.DescNotFound: socks.ReplyOnionDescNotFound, onionclient.DescInvalid: socks.ReplyOnionDescInvalid,
		onionclient.IntroFailed: socks.ReplyOnionIntroFailed, onionclient.RendFailed: socks.ReplyOnionRendFailed,
		onionclient.MissingClientAuth: socks.ReplyOnionMissingClientAuth, onionclient.BadClientAuth: socks.ReplyOnionWrongClientAuth,
		onionclient.BadAddress: socks.ReplyOnionBadAddress, onionclient.IntroTimeout: socks.ReplyOnionIntroTimedOut,
	} {
		if got := reply(onionSocksError(&onionclient.Error{Kind: kind, Err: errors.New("x")})); got != want {
			t.Errorf("onion %v: reply %v, want %v", kind, got, want)
		}
	}
	// Not an onion error: the stream rules apply.
	if got := reply(onionSocksError(&tor.StreamError{Reason: cell.EndTimeout})); got != socks.ReplyTTLExpired {
		t.Errorf("stream error through onionSocksError: reply %v", got)
	}
}

func TestSocksPorts(t *testing.T) {
	cfg, err := config.Parse([]byte("SocksPort 127.0.0.1:9150 IsolateDestAddr\nSocksPort unix:/run/tinytor/socks\nSocksPolicy accept 192.168.1.0/24\nSafeSocks 1\n"), "torrc", config.Env{Home: "/h"})
	if err != nil {
		t.Fatal(err)
	}
	ports := socksPorts(cfg, nil)
	if len(ports) != 2 {
		t.Fatalf("%d ports", len(ports))
	}
	tcp, unix := ports[0], ports[1]
	if tcp.Network != "tcp" || tcp.Address != "127.0.0.1:9150" || tcp.Config.ID != "127.0.0.1:9150" || !tcp.Config.Flags.IsolateDestAddr {
		t.Errorf("TCP port %+v", tcp)
	}
	if unix.Network != "unix" || unix.Address != "/run/tinytor/socks" || unix.Config.ID != "unix:/run/tinytor/socks" {
		t.Errorf("Unix port %+v", unix)
	}
	for _, p := range ports {
		if !p.Config.SafeSocks || len(p.Config.Policy) != 1 || !p.Config.Policy.Allows(netip.MustParseAddr("192.168.1.7"), true) {
			t.Errorf("%s: SafeSocks %v, policy %v", p.Config.ID, p.Config.SafeSocks, p.Config.Policy)
		}
	}
}
