// Package sockstest runs front ends of package socks on loopback for
// tests.
package sockstest

import (
	"context"
	"net"
	"testing"

	"tinytor/socks"
)

// Serve runs a socks.Server made of cfg and d on a loopback port until the
// test ends, and returns it with its address.
func Serve(t testing.TB, cfg socks.Config, d socks.Dialer) (*socks.Server, string) {
	t.Helper()
	srv, err := socks.New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, ln.Addr().String()
}
