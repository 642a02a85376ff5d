package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tinytor/tor"
	"tinytor/tor/config"
	"tinytor/tor/policy"
	"tinytor/tor/torlog"
)

// TestStartControl opens a ControlSocket, a ControlPort and a MetricsPort
// for a client that never runs (so nothing leaves the machine), and talks
// to each.
func TestStartControl(t *testing.T) {
	dir := t.TempDir()
	ctlPort, metricsPort := freeLoopbackPort(t), freeLoopbackPort(t)
	sock := filepath.Join(dir, "ctl", "control.sock")
	torrc := filepath.Join(dir, "torrc")
	text := fmt.Sprintf("DataDirectory %s\nSocksPort 0\nControlPort %s\nControlSocket %s\nCookieAuthentication 1\nMetricsPort %s\n",
		filepath.Join(dir, "data"), ctlPort, sock, metricsPort)
	if err := os.WriteFile(torrc, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	defaults := filepath.Join(dir, "torrc-defaults")
	if err := os.WriteFile(defaults, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	src := config.Sources{Torrc: torrc, Defaults: defaults, Env: config.Env{Home: dir}}
	cfg, err := config.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.DataDirectory, 0o700); err != nil {
		t.Fatal(err)
	}
	log := torlog.Discard()
	client, err := tor.New(tor.Config{Torrc: cfg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloads, shutdowns := make(chan struct{}, 1), make(chan struct{}, 1)
	stop, err := startControl(ctx, cfg, src, client, nil, nil, nil, log,
		func(*config.Config) error { return nil },
		func() { reloads <- struct{}{} },
		func() { shutdowns <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	cookie, err := os.ReadFile(filepath.Join(cfg.DataDirectory, "control_auth_cookie"))
	if err != nil || len(cookie) != 32 {
		t.Fatalf("cookie: %d bytes, %v", len(cookie), err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode: %v", err)
	}

	for _, addr := range []struct{ network, addr string }{{"unix", sock}, {"tcp", ctlPort}} {
		nc, err := net.DialTimeout(addr.network, addr.addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(time.Minute))
		br := bufio.NewReader(nc)
		exchange := func(cmd string) string {
			t.Helper()
			fmt.Fprintf(nc, "%s\r\n", cmd)
			var out []string
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
				out = append(out, strings.TrimRight(l, "\r\n"))
				if len(l) >= 4 && l[3] == ' ' {
					return strings.Join(out, "|")
				}
			}
		}
		if got := exchange("GETINFO version"); got != "514 Authentication required." {
			t.Errorf("%s: before AUTHENTICATE: %q", addr.network, got)
		}
		nc.Close()
		nc, err = net.DialTimeout(addr.network, addr.addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(time.Minute))
		br = bufio.NewReader(nc)
		if got := exchange(fmt.Sprintf("AUTHENTICATE %x", cookie)); got != "250 OK" {
			t.Fatalf("%s: AUTHENTICATE: %q", addr.network, got)
		}
		want := fmt.Sprintf("250-version=%s|250-net/listeners/control=%q %q|250-net/listeners/metrics=%q|250-net/listeners/socks=|250 OK",
			controlVersion(), ctlPort, "unix:"+sock, metricsPort)
		if got := exchange("GETINFO version net/listeners/control net/listeners/metrics net/listeners/socks"); got != want {
			t.Errorf("%s: GETINFO:\n got %q\nwant %q", addr.network, got, want)
		}
		nc.Close()
	}

	nc, err := net.DialTimeout("tcp", ctlPort, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(nc, "AUTHENTICATE %x\r\nSIGNAL RELOAD\r\nSIGNAL SHUTDOWN\r\n", cookie)
	<-reloads
	<-shutdowns
	nc.Close()

	// The metrics page, read with a bare HTTP/1.0 request.
	mc, err := net.DialTimeout("tcp", metricsPort, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mc.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(mc, "GET /metrics HTTP/1.0\r\n\r\n")
	page, err := io.ReadAll(mc)
	mc.Close()
	if err != nil || !strings.HasPrefix(string(page), "HTTP/1.0 200") || !strings.Contains(string(page), "\ntinytor_bootstrap_percent 0\n") {
		t.Errorf("metrics page (%v):\n%s", err, page)
	}

	stop()
	stopped = true
	for _, a := range []string{ctlPort, metricsPort} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after stop", a)
		}
	}
}

func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestMetricsPolicy(t *testing.T) {
	p, err := config.Parse([]byte("MetricsPortPolicy accept 192.168.1.0/24, accept [fd00::]/8, reject *\n"), "torrc", config.Env{Home: "/h"})
	if err != nil {
		t.Fatal(err)
	}
	pol := p.MetricsPortPolicy
	for _, c := range []struct {
		ip   string
		want bool
	}{{"192.168.1.7", true}, {"192.168.2.7", false}, {"fd00::1", true}, {"2001:db8::1", false}, {"127.0.0.1", false}} {
		if got := pol.Allows(mustAddr(t, c.ip), policy.RejectUnmatched); got != c.want {
			t.Errorf("Allows(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
