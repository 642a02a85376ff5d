package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"tinytor/board/state"
)

// TestTinytorLearnedTimeout: a circuit build time history in the state
// (C tor's lines, as a previous run wrote them) gives tinytor a learned
// timeout at start; streams work with it (builds slower than the timeout
// are retried while the slow ones go on as measurement circuits), and at
// exit the history, grown by the new builds, is written back.
func TestTinytorLearnedTimeout(t *testing.T) {
	n := RequireNetwork(t)
	data := t.TempDir()
	// 100 builds of 10-100 ms, like loopback circuits.
	seed := "TotalBuildTimes 100\nCircuitBuildAbandonedCount 0\n" +
		"CircuitBuildTimeBin 15 20\nCircuitBuildTimeBin 25 40\nCircuitBuildTimeBin 35 25\n" +
		"CircuitBuildTimeBin 45 10\nCircuitBuildTimeBin 95 5\n"
	st, err := state.Open(data, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteNow("cbt", []byte(seed)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	p := startTinytor(t, n, tinytorBinary(t, ""), data, nil)
	i := p.waitFor("Based on 100 circuit times", time.Minute)
	t.Logf("at start: %s", p.log()[i])
	bootstrapped(t, p)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for k := range 12 {
		// A new SOCKS user each time: a new circuit each time.
		resp, err := getAs(ctx, p.socks, fmt.Sprintf("cbt%d", k), n.URLMarker)
		if err != nil || !strings.Contains(string(resp.Body), n.Marker) {
			t.Fatalf("fetch %d: %v", k, err)
		}
	}
	timeouts := 0
	for _, l := range p.log() {
		if strings.Contains(l, "keeping it as a measurement circuit") {
			timeouts++
		}
	}
	t.Logf("%d builds passed the learned timeout and became measurement circuits", timeouts)
	p.stop()

	st, err = state.Open(data, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := st.Read("cbt")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("state after the run:\n%s", b)
	lines := strings.Split(string(b), "\n")
	total, err := strconv.Atoi(strings.TrimPrefix(lines[0], "TotalBuildTimes "))
	if err != nil || total <= 100 || !strings.HasPrefix(lines[1], "CircuitBuildAbandonedCount ") || !strings.HasPrefix(lines[2], "CircuitBuildTimeBin ") {
		t.Fatalf("state not grown by this run's builds (total %d, %v)", total, err)
	}
}
