// Package sockstest runs front ends of package socks on loopback for
// tests.
package sockstest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"tinytor/socks"
	"tinytor/tor/lock"
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

// Buffer is a bytes.Buffer safe for concurrent writes, for logs a server
// writes from its goroutines.
type Buffer struct {
	mu lock.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// NoLookups implements the lookup half of socks.Dialer by refusing every
// lookup; embed it in a test Dialer that only opens streams.
type NoLookups struct{}

// Resolve fails.
func (NoLookups) Resolve(context.Context, string, socks.IsolationKey) ([]netip.Addr, error) {
	return nil, errors.New("sockstest: no lookups in this test")
}

// ResolvePTR fails.
func (NoLookups) ResolvePTR(context.Context, netip.Addr, socks.IsolationKey) (string, error) {
	return "", errors.New("sockstest: no lookups in this test")
}
