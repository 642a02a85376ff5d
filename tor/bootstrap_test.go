package tor

import (
	"bytes"
	"strings"
	"testing"

	"tinytor/tor/torlog"
)

func TestBootstrapReporterLogsForwardOnly(t *testing.T) {
	var buf bytes.Buffer
	r := newBootstrapReporter(torlog.New(torlog.Sink{Min: torlog.Notice, Max: torlog.Err, W: &buf}))
	var seen []int
	r.subscribe(func(s BootstrapStatus) { seen = append(seen, s.Phase.Percent) })
	r.reach(PhaseConn)
	r.reach(PhaseHandshakeDone)
	r.reach(PhaseConn) // a second connection: not progress
	r.problem("connection refused")
	r.reach(PhaseDone)
	r.problem("late failure") // after 100% nothing is stuck
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
	if got := r.current(); got.Phase != PhaseDone || got.Problem != "" {
		t.Errorf("current = %+v", got)
	}
	if len(seen) != 4 {
		t.Errorf("listeners saw %v, want 4 events", seen)
	}
	if s := (BootstrapStatus{Phase: PhaseLoadingStatus}).ControlString(); s != `NOTICE BOOTSTRAP PROGRESS=30 TAG=loading_status SUMMARY="Loading networkstatus consensus"` {
		t.Errorf("ControlString = %s", s)
	}
}
