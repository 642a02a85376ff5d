package tor

import (
	"net/netip"
	"testing"

	"tinytor/tor/cell"
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

func TestEventsRegistry(t *testing.T) {
	c := &Client{events: newEvents()}
	var got []Event
	unsub := c.Subscribe(func(e Event) { got = append(got, e) })
	id := c.events.newID()
	c.events.circuit(CircuitInfo{ID: id, Status: "LAUNCHED"})
	c.events.circuit(CircuitInfo{ID: id, Status: "BUILT"})
	if cs := c.Circuits(); len(cs) != 1 || cs[0].Status != "BUILT" {
		t.Fatalf("Circuits() = %+v", cs)
	}
	c.events.stream(StreamInfo{ID: c.events.newID(), Status: "SUCCEEDED", CircID: id})
	c.events.circuit(CircuitInfo{ID: id, Status: "CLOSED"})
	if cs := c.Circuits(); len(cs) != 0 {
		t.Fatalf("closed circuit still listed: %+v", cs)
	}
	if ss := c.Streams(); len(ss) != 1 {
		t.Fatalf("Streams() = %+v", ss)
	}
	unsub()
	c.events.channel(ChannelInfo{ID: c.events.newID(), Status: "CONNECTED"})
	if len(got) != 4 {
		t.Fatalf("subscriber saw %d events, want 4 (none after unsubscribe)", len(got))
	}
	if ce, ok := got[1].(*CircuitEvent); !ok || ce.Status != "BUILT" {
		t.Fatalf("second event = %#v", got[1])
	}
	if r := (RelayRef{ID: [20]byte{0xAB}, Nickname: "n"}).LongName(); r != "$AB00000000000000000000000000000000000000~n" {
		t.Fatalf("LongName = %s", r)
	}
}
