package netlisten

import (
	"net"
	"path/filepath"
	"testing"
)

func TestListen(t *testing.T) {
	for _, c := range []struct{ network, address string }{
		{"tcp", "127.0.0.1:0"},
		{"unix", filepath.Join(t.TempDir(), "s")},
	} {
		l, err := Listen(c.network, c.address)
		if err != nil {
			t.Fatalf("Listen(%s, %s): %v", c.network, c.address, err)
		}
		conn, err := net.Dial(c.network, l.Addr().String())
		if err != nil {
			t.Fatalf("dialing %v: %v", l.Addr(), err)
		}
		conn.Close()
		l.Close()
	}
	for _, c := range []struct{ network, address string }{{"tcp", "localhost:9050"}, {"udp", "127.0.0.1:53"}, {"tcp", "127.0.0.1"}} {
		if l, err := Listen(c.network, c.address); err == nil {
			l.Close()
			t.Errorf("Listen(%s, %s) accepted", c.network, c.address)
		}
	}
}
