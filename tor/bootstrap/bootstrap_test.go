package bootstrap

import (
	"bytes"
	"strings"
	"testing"

	"tinytor/tor/event"
	"tinytor/tor/torlog"
)

func TestReporterLogsForwardOnly(t *testing.T) {
	var buf bytes.Buffer
	bus := &event.Bus{}
	var seen []int
	bus.Subscribe(func(e event.Event) {
		if s, ok := e.(event.Bootstrap); ok {
			seen = append(seen, s.Phase.Percent)
		}
	})
	r := New(torlog.New(torlog.Sink{Min: torlog.Notice, Max: torlog.Err, W: &buf}), bus)
	r.Reach(event.PhaseConn)
	r.Reach(event.PhaseHandshakeDone)
	r.Reach(event.PhaseConn) // a second connection: not progress
	r.Problem("connection refused")
	r.Reach(event.PhaseDone)
	r.Problem("late failure") // after 100% nothing is stuck
	out := buf.String()
	for _, want := range []string{
		"[notice] Bootstrapped 5% (conn): Connecting to a relay\n",
		"[notice] Bootstrapped 15% (handshake_done): Handshake with a relay done\n",
		"[warn] Problem bootstrapping. Stuck at 15% (handshake_done): Handshake with a relay done. (connection refused)\n",
		"[notice] Bootstrapped 100% (done): Done\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q; got:\n%s", want, out)
		}
	}
	if strings.Count(out, "Bootstrapped 5%") != 1 || strings.Contains(out, "late failure") {
		t.Errorf("unexpected repeated or late lines:\n%s", out)
	}
	if got := r.Current(); got.Phase != event.PhaseDone || got.Problem != "" {
		t.Errorf("current = %+v", got)
	}
	if len(seen) != 4 {
		t.Errorf("subscribers saw %v, want 4 events", seen)
	}
}

func TestConnectVia(t *testing.T) {
	var bus event.Bus
	var got []string
	stop := bus.Subscribe(func(ev event.Event) {
		if b, ok := ev.(event.Bootstrap); ok {
			got = append(got, b.Phase.Tag)
		}
	})
	defer stop()
	r := New(nil, &bus)
	r.ConnectVia(event.PhaseConnProxy)
	r.Reach(event.PhaseConn)
	r.Reach(event.PhaseConnDoneProxy)
	r.Reach(event.PhaseConnDone)
	if want := "conn_proxy conn_done_proxy conn_done"; strings.Join(got, " ") != want {
		t.Errorf("phases %q, want %q", got, want)
	}
}
