package tor

import (
	"context"
	"net/netip"
	"testing"

	"tinytor/tor/cell"
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

func TestStreamErrorEndReason(t *testing.T) {
	if r := (&StreamError{Reason: cell.EndDestroy}).EndReason(); r != "DESTROY" {
		t.Errorf("EndReason of an END DESTROY: %q", r)
	}
	if r := (&StreamError{Err: ErrNotBootstrapped}).EndReason(); r != "" {
		t.Errorf("EndReason without an END: %q", r)
	}
}
