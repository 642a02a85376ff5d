package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"tinytor/socks"
	"tinytor/socks/sockstest"
	"tinytor/tor/config"
	"tinytor/tor/metrics"
	"tinytor/tor/torlog"
)

// refusingDialer refuses every stream as an exit policy would.
type refusingDialer struct{ sockstest.NoLookups }

func (refusingDialer) DialStream(context.Context, *socks.Request, socks.IsolationKey) (net.Conn, error) {
	return nil, socks.Errorf(socks.ReplyNotAllowed, "exit policy")
}

// freeAddr returns a loopback address:port nothing listens on.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestGateway opens the torrc's TransPort and HTTPTunnelPort, serves a
// CONNECT, follows a reload that closes them, and counts on the
// MetricsPort registry.
func TestGateway(t *testing.T) {
	transAddr, httpAddr := freeAddr(t), freeAddr(t)
	cfg, err := config.Parse([]byte("SocksPort 0\nTransPort "+transAddr+"\nHTTPTunnelPort "+httpAddr+"\n"), "torrc", config.Env{Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var logs sockstest.Buffer
	log := torlog.New(torlog.Sink{Min: torlog.Info, Max: torlog.Err, W: &logs})
	g := newGateway(refusingDialer{}, log)
	defer g.close()
	if err := g.apply(t.Context(), cfg, log); err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	if err := g.metrics(reg); err != nil {
		t.Fatal(err)
	}

	c, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "CONNECT example.com:25 HTTP/1.1\r\n\r\n")
	status, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if status != "HTTP/1.0 403 Forbidden (exit policy)\r\n" {
		t.Fatalf("HTTPTunnelPort answered %q, %v", status, err)
	}
	c, err = net.Dial("tcp", transAddr) // not redirected: closed
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.ReadAll(c)
	c.Close()

	var page strings.Builder
	reg.WriteTo(&page)
	for _, want := range []string{"tinytor_httptunnel_streams_failed_total 1\n", "tinytor_httptunnel_connections_total 1\n",
		"tinytor_transport_connections_total 1\n", "tinytor_transport_connections_refused_total 1\n"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, page.String())
		}
	}

	cfg, _ = config.Parse([]byte("SocksPort 0\n"), "torrc", config.Env{Home: t.TempDir()})
	if err := g.apply(t.Context(), cfg, log); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", httpAddr); err == nil {
		t.Error("the HTTPTunnelPort is still open after a reload without it")
	}
	for _, want := range []string{"Closing no-longer-configured Trans listener on " + transAddr, "Closing no-longer-configured HTTPTunnel listener on " + httpAddr} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}
