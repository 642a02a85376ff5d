package service

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"tinytor/onion/addr"
	"tinytor/onion/keys"
)

func TestEphemeral(t *testing.T) {
	k, err := keys.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("")
	s, err := New(noNet{}, Options{Config: cfg, Key: k, ClientKeys: [][32]byte{{1}, {2}, {1}}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := addr.FromKey(k.Public())
	if s.Address() != want {
		t.Fatalf("address %s, want %s", s.Address(), want)
	}
	if len(s.clients) != 2 {
		t.Errorf("%d authorized clients, want 2 (duplicates dropped)", len(s.clients))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// A directory and an in-memory key exclude each other, and the
	// directory is left alone.
	d := filepath.Join(t.TempDir(), "hs")
	if _, err := New(noNet{}, Options{Config: testConfig(d), Key: k}); err == nil {
		t.Fatal("Key with a HiddenServiceDir was accepted")
	}
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Fatalf("the directory was created: %v", err)
	}
}
