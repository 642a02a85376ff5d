package circuit

import (
	"io"
	"testing"

	"tinytor/tor/cell"
)

func TestParseBegin(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want BeginRequest
		bad  bool
	}{
		{in: ":80\x00", want: BeginRequest{Port: 80}},
		{in: ":443\x00\x00\x00\x00\x05", want: BeginRequest{Port: 443, Flags: 5}},
		{in: "example.com:8080\x00", want: BeginRequest{Host: "example.com", Port: 8080}},
		{in: "[::1]:22\x00", want: BeginRequest{Host: "::1", Port: 22}},
		{in: ":80", bad: true},
		{in: "nocolon\x00", bad: true},
		{in: ":0\x00", bad: true},
		{in: ":65536\x00", bad: true},
		{in: "::1:22\x00", bad: true},
		{in: "[::1:22\x00", bad: true},
	} {
		got, err := ParseBegin([]byte(tc.in))
		if tc.bad {
			if err == nil {
				t.Errorf("ParseBegin(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseBegin(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseBegin(f *testing.F) {
	f.Add([]byte(":80\x00"))
	f.Add([]byte("[::1]:22\x00\x00\x00\x00\x01"))
	f.Add([]byte("x:\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseBegin(b)
		if err == nil && r.Port == 0 {
			t.Fatalf("accepted port 0 from %q", b)
		}
	})
}

type accepted struct {
	s   *Stream
	req BeginRequest
}

// TestAcceptStreams plays the client of an onion service at the last hop:
// it opens streams with BEGIN, and the circuit accepts, rejects and
// refuses them.
func TestAcceptStreams(t *testing.T) {
	c, f := build3(t, false)
	got := make(chan accepted, 4)
	c.AcceptStreams(func(s *Stream, req BeginRequest) {
		if req.Port == 81 {
			if err := s.Reject(cell.EndExitPolicy); err != nil {
				t.Errorf("Reject: %v", err)
			}
			return
		}
		got <- accepted{s, req}
	})
	f.runOnRelay(func() {
		f.streams[5] = &fakeStream{hop: 2, packageWindow: StreamWindowStart, deliverWindow: StreamWindowStart}
		f.relayToClient(2, cell.RelayBegin, 5, []byte(":80\x00\x00\x00\x00\x00"))
	})
	a := <-got
	if a.req.Port != 80 || a.s.ID() != 5 {
		t.Fatalf("accepted %+v on stream %d", a.req, a.s.ID())
	}
	if err := a.s.Accept(); err != nil {
		t.Fatal(err)
	}
	if sid := <-f.connecteds; sid != 5 {
		t.Fatalf("CONNECTED on stream %d, want 5", sid)
	}
	// The fake echoes what the stream writes.
	msg := []byte("hello through the virtual hop")
	if _, err := a.s.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(a.s, buf); err != nil || string(buf) != string(msg) {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	if err := a.s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-f.ends; r != cell.EndDone {
		t.Fatalf("END reason %s after Close of an incoming stream, want DONE", r)
	}
	if err := a.s.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}

	// Rejected from the callback, and malformed.
	f.relayToClient2(t, c, 2, cell.RelayBegin, 6, []byte(":81\x00"))
	if r := <-f.ends; r != cell.EndExitPolicy {
		t.Fatalf("END reason %s for a rejected stream, want EXITPOLICY", r)
	}
	f.relayToClient2(t, c, 2, cell.RelayBegin, 7, []byte("garbage"))
	if r := <-f.ends; r != cell.EndTorProtocol {
		t.Fatalf("END reason %s for a malformed BEGIN, want TORPROTOCOL", r)
	}
	// A BEGIN_DIR on a circuit that accepts streams gets END (NOTDIRECTORY),
	// as from C tor, instead of silence.
	f.relayToClient2(t, c, 2, cell.RelayBeginDir, 8, nil)
	if r := <-f.ends; r != cell.EndNotDirectory {
		t.Fatalf("END reason %s for a BEGIN_DIR, want NOTDIRECTORY", r)
	}
	select {
	case a := <-got:
		t.Fatalf("callback called for %+v", a.req)
	default:
	}
	noViolations(t, f)
	if c.Err() != nil {
		t.Fatalf("circuit died: %v", c.Err())
	}
}

// relayToClient2 has the fake's goroutine originate a cell, once the
// cells in flight are handled.
func (f *fakeNet) relayToClient2(t *testing.T, c *Circuit, i int, cmd cell.RelayCommand, sid uint16, data []byte) {
	t.Helper()
	f.runOnRelay(func() { f.relayToClient(i, cmd, sid, data) })
}

// runOnRelay runs fn on the fake relays' goroutine.
func (f *fakeNet) runOnRelay(fn func()) {
	done := make(chan struct{})
	f.do <- func() { fn(); close(done) }
	<-done
}

func TestBeginWithoutAcceptGoesToControl(t *testing.T) {
	r1, r2 := newFakeRelayKeys(t, 1), newFakeRelayKeys(t, 2)
	ctrl := make(chan cell.RelayCommand, 1)
	f := newFakeNet(t, r1, r2)
	ctx := testCtx(t)
	c, err := Create(ctx, f, r1.hopInfo(), Config{Control: func(hop int, cmd cell.RelayCommand, sid uint16, data []byte) { ctrl <- cmd }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.relayToClient2(t, c, 0, cell.RelayBegin, 9, []byte(":80\x00"))
	if cmd := <-ctrl; cmd != cell.RelayBegin {
		t.Fatalf("Control got %s", cmd)
	}
}

func TestKH(t *testing.T) {
	c, _ := build3(t, false)
	seen := map[[20]byte]bool{}
	for i := range 3 {
		kh, err := c.KH(i)
		if err != nil {
			t.Fatal(err)
		}
		if seen[kh] {
			t.Fatalf("hop %d repeats a KH", i)
		}
		seen[kh] = true
	}
	last, _ := c.KH(-1)
	if k2, _ := c.KH(2); last != k2 {
		t.Error("KH(-1) is not the last hop's")
	}
	if _, err := c.KH(3); err == nil {
		t.Error("KH of a missing hop succeeded")
	}
}
