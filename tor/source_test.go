package tor

import (
	"context"
	"net/netip"
	"testing"
)

func TestWithSource(t *testing.T) {
	if a := sourceOf(context.Background()); a.IsValid() {
		t.Errorf("source of a bare context: %v", a)
	}
	app := netip.MustParseAddrPort("192.168.1.20:51000")
	if a := sourceOf(WithSource(t.Context(), app)); a != app {
		t.Errorf("source %v, want %v", a, app)
	}
}
