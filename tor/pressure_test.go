package tor

import (
	"errors"
	"testing"

	"tinytor/tor/cell"
	"tinytor/tor/config"
)

func TestAdmitStream(t *testing.T) {
	cfg, err := config.Parse([]byte("DataDirectory "+t.TempDir()+"\n"), "torrc", config.Env{})
	if err != nil {
		t.Fatal(err)
	}
	allow := true
	c, err := New(Config{Torrc: cfg, AllowNewStream: func() bool { return allow }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.admitStream("example.com", 80); err != nil {
		t.Fatalf("allowed stream refused: %v", err)
	}
	allow = false
	err = c.admitStream("example.com", 80)
	var se *StreamError
	if !errors.As(err, &se) || se.Reason != cell.EndResourceLimit || !errors.Is(err, ErrOverloaded) || se.Target != "example.com:80" {
		t.Fatalf("refused stream: got %#v, want a StreamError with RESOURCELIMIT wrapping ErrOverloaded", err)
	}
	// Ping returns on an idle client (it would hang on a held lock).
	c.Ping()
	if n := c.ShedIdleCircuits(); n != 0 {
		t.Fatalf("ShedIdleCircuits on an empty pool closed %d", n)
	}
}
