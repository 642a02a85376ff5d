package tor

import (
	"errors"
	"net/netip"
	"testing"

	"tinytor/tor/cell"
	"tinytor/tor/circmgr"
	"tinytor/tor/config"
	"tinytor/tor/event"
)

func TestReverseName(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":   "1.2.0.192.in-addr.arpa",
		"2001:db8::1": "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
	} {
		if got := reverseName(netip.MustParseAddr(in)); got != want {
			t.Errorf("reverseName(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestRetryableEnd(t *testing.T) {
	for r, want := range map[cell.EndReason]bool{
		cell.EndExitPolicy:     true,
		cell.EndResolveFailed:  true,
		cell.EndTimeout:        true,
		cell.EndConnectRefused: false,
		cell.EndDone:           false,
		cell.EndNoRoute:        false,
	} {
		if got := retryableEnd(r); got != want {
			t.Errorf("retryableEnd(%s) = %v, want %v", r, got, want)
		}
	}
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	torrc, err := config.Parse([]byte("DataDirectory "+t.TempDir()+"\n"), "torrc", config.Env{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Torrc = torrc
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStatusFollowsEvents(t *testing.T) {
	bus := &event.Bus{}
	c := newTestClient(t, Config{Events: bus})
	var got []event.Event
	unsub := bus.Subscribe(func(e event.Event) { got = append(got, e) })
	id := bus.NewID()
	bus.Publish(&event.Circuit{ID: id, Status: "LAUNCHED"})
	bus.Publish(&event.Circuit{ID: id, Status: "BUILT"})
	if cs := c.Circuits(); len(cs) != 1 || cs[0].Status != "BUILT" {
		t.Fatalf("Circuits() = %+v", cs)
	}
	bus.Publish(&event.Stream{ID: bus.NewID(), Status: "SUCCEEDED", CircID: id})
	bus.Publish(&event.Circuit{ID: id, Status: "CLOSED"})
	if cs := c.Circuits(); len(cs) != 0 {
		t.Fatalf("closed circuit still listed: %+v", cs)
	}
	if ss := c.Streams(); len(ss) != 1 {
		t.Fatalf("Streams() = %+v", ss)
	}
	unsub()
	bus.Publish(&event.Channel{ID: bus.NewID(), Status: "CONNECTED"})
	if len(got) != 4 {
		t.Fatalf("subscriber saw %d events, want 4 (none after unsubscribe)", len(got))
	}
	if ce, ok := got[1].(*event.Circuit); !ok || ce.Status != "BUILT" {
		t.Fatalf("second event = %#v", got[1])
	}
	if chs := c.Channels(); len(chs) != 1 {
		t.Fatalf("Channels() = %+v", chs)
	}
}

func TestAdmitStream(t *testing.T) {
	allow := true
	c := newTestClient(t, Config{AllowNewStream: func() bool { return allow }})
	if err := c.admitStream("example.com", 80); err != nil {
		t.Fatalf("allowed stream refused: %v", err)
	}
	allow = false
	err := c.admitStream("example.com", 80)
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

func TestControlAccessorsUnstarted(t *testing.T) {
	c := newTestClient(t, Config{})
	if d := c.Directory(); d != nil {
		t.Error("Directory without a fetch")
	}
	if err := c.CloseCircuit(1, false); !errors.Is(err, circmgr.ErrUnknownCircuit) {
		t.Errorf("CloseCircuit of an unknown circuit: %v", err)
	}
	if err := c.CloseStream(1); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("CloseStream of an unknown stream: %v", err)
	}
	if c.Config() == nil {
		t.Error("Config is nil")
	}
	if _, err := c.Dial(t.Context(), "example.com", 80, nil); !errors.Is(err, ErrNotBootstrapped) {
		t.Errorf("Dial before bootstrap: %v", err)
	}
}

func TestNewNymPublishes(t *testing.T) {
	c := newTestClient(t, Config{})
	n := 0
	c.Events().Subscribe(func(e event.Event) {
		if _, ok := e.(event.NewNym); ok {
			n++
		}
	})
	c.NewNym()
	if n != 1 {
		t.Fatalf("NewNym published %d NewNym events, want 1", n)
	}
}
