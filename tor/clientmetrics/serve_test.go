package clientmetrics

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"tinytor/tor"
	"tinytor/tor/config"
	"tinytor/tor/torlog"
)

func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().String()
	l.Close()
	cfg, err := config.Parse([]byte(fmt.Sprintf("DataDirectory %s\nMetricsPort %s\n", t.TempDir(), port)), "torrc", config.Env{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tor.New(tor.Config{Torrc: cfg})
	if err != nil {
		t.Fatal(err)
	}
	addrs, stop, err := Serve(context.Background(), c, cfg, torlog.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0] != port {
		t.Errorf("addresses %v, want [%s]", addrs, port)
	}
	mc, err := net.DialTimeout("tcp", port, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mc.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(mc, "GET /metrics HTTP/1.0\r\n\r\n")
	page, err := io.ReadAll(mc)
	mc.Close()
	if err != nil || !strings.Contains(string(page), "\ntinytor_bootstrap_percent 0\n") {
		t.Errorf("metrics page (%v):\n%s", err, page)
	}
	stop()
	if c, err := net.DialTimeout("tcp", port, time.Second); err == nil {
		c.Close()
		t.Error("the MetricsPort accepts connections after stop")
	}

	// A port that cannot be opened is named in the error.
	cfg, err = config.Parse([]byte(fmt.Sprintf("DataDirectory %s\nMetricsPort 192.0.2.1:9035\n", t.TempDir())), "torrc", config.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Serve(context.Background(), c, cfg, torlog.Discard()); err == nil || !strings.HasPrefix(err.Error(), "Failed to open MetricsPort ") {
		t.Errorf("unbindable MetricsPort: %v", err)
	}
}
