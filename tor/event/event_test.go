package event

import "testing"

func TestBus(t *testing.T) {
	var b Bus
	var got []Event
	cancel := b.Subscribe(func(e Event) { got = append(got, e) })
	b.Publish(NewNym{})
	b.Publish(&Circuit{ID: b.NewID(), Status: "BUILT"})
	cancel()
	b.Publish(NewNym{})
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2 (none after cancel)", len(got))
	}
	if c, ok := got[1].(*Circuit); !ok || c.ID != 1 {
		t.Fatalf("second event = %#v", got[1])
	}
	var nilBus *Bus
	nilBus.Publish(NewNym{}) // must not panic
	if r := (RelayRef{ID: [20]byte{0xAB}, Nickname: "n"}).LongName(); r != "$AB00000000000000000000000000000000000000~n" {
		t.Fatalf("LongName = %s", r)
	}
	if s := (Bootstrap{Phase: PhaseLoadingStatus}).String(); s != "30% (loading_status): Loading networkstatus consensus" {
		t.Fatalf("Bootstrap.String = %s", s)
	}
}
