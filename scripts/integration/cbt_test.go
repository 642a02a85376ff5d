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
	// 100 builds of 400 ms to 1.5 s: slower than circuits on the test
	// network even with --latency-ms 50, so that the streams below do not
	// depend on the measurement circuits. (A history much faster than the
	// network makes nearly every build time out before its first hop,
	// which the network-change rule does not count; C tor then waits for
	// measurement circuits to move the fit, as tinytor does, but its
	// streams wait up to SocksTimeout for that while tinytor's Dial tries
	// 6 builds.)
	seed := "TotalBuildTimes 100\nCircuitBuildAbandonedCount 0\n" +
		"CircuitBuildTimeBin 405 20\nCircuitBuildTimeBin 505 40\nCircuitBuildTimeBin 605 25\n" +
		"CircuitBuildTimeBin 705 10\nCircuitBuildTimeBin 1505 5\n"
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
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("state too short")
	}
	total, err := strconv.Atoi(strings.TrimPrefix(lines[len(lines)-1], "TotalBuildTimes "))
	if err != nil || total <= 100 || !strings.HasPrefix(lines[0], "CircuitBuildTimeBin ") {
		t.Fatalf("state not grown by this run's builds (total %d, %v)", total, err)
	}
}

// TestTinytorLearnsTimeout: from an empty history, 100 circuit builds
// (one per SOCKS user) make tinytor compute a timeout; it is in the state
// at exit and in use right after a restart. With TINYTOR_TESTNET_ARGS
// "--latency-ms 25" it measures the timeout learned on a network with
// latency.
func TestTinytorLearnsTimeout(t *testing.T) {
	n := RequireNetwork(t)
	bin := tinytorBinary(t, "")
	c := startControlled(t, n)
	p, data := c.tinytorProc, c.dir
	ctl := dialControl(t, c.control)
	if r := ctl.cmd(`AUTHENTICATE "` + controlPassword + `"`); r[0] != "250 OK" {
		t.Fatalf("AUTHENTICATE: %q", r)
	}
	if r := ctl.cmd("SETEVENTS BUILDTIMEOUT_SET"); r[0] != "250 OK" {
		t.Fatalf("SETEVENTS: %q", r)
	}
	bootstrapped(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	learned := func(lines []string) string {
		for _, l := range lines {
			if strings.Contains(l, "Based on 100 circuit times") {
				return l
			}
		}
		return ""
	}
	start := time.Now()
	fetches := 0
	for ; learned(p.log()) == "" && fetches < 300; fetches++ {
		resp, err := getAs(ctx, p.socks, fmt.Sprintf("learn%d", fetches), n.URLMarker)
		if err != nil || !strings.Contains(string(resp.Body), n.Marker) {
			t.Fatalf("fetch %d: %v", fetches, err)
		}
	}
	line := learned(p.log())
	if line == "" {
		t.Fatalf("no timeout learned after %d fetches", fetches)
	}
	t.Logf("learned after %d fetches in %.1f s: %s", fetches, time.Since(start).Seconds(), line)
	// The control port saw it.
	ctl.nc.SetDeadline(time.Now().Add(time.Minute))
	for {
		l, err := ctl.br.ReadString('\n')
		if err != nil {
			t.Fatalf("no BUILDTIMEOUT_SET COMPUTED event: %v", err)
		}
		if strings.HasPrefix(l, "650 BUILDTIMEOUT_SET COMPUTED TOTAL_TIMES=100 ") {
			t.Logf("event: %s", strings.TrimSpace(l))
			break
		}
	}
	gauge := metricValue(t, scrape(t, c.metrics), "tinytor_circuit_build_timeout_seconds")
	t.Logf("tinytor_circuit_build_timeout_seconds %g", gauge)
	if gauge <= 0 || gauge >= 60 {
		t.Fatalf("tinytor_circuit_build_timeout_seconds %g", gauge)
	}
	// A few more with the learned timeout.
	for k := range 10 {
		resp, err := getAs(ctx, p.socks, fmt.Sprintf("after%d", k), n.URLMarker)
		if err != nil || !strings.Contains(string(resp.Body), n.Marker) {
			t.Fatalf("fetch %d after learning: %v", k, err)
		}
	}
	measured := 0
	for _, l := range p.log() {
		if strings.Contains(l, "keeping it as a measurement circuit") {
			measured++
		}
	}
	t.Logf("measurement circuits: %d", measured)
	p.stop()

	p2 := startTinytor(t, n, bin, data, nil)
	i := p2.waitFor("circuit times", time.Minute)
	t.Logf("after restart: %s", p2.log()[i])
	if !strings.Contains(p2.log()[i], "Based on 1") && !strings.Contains(p2.log()[i], "based on 1") {
		t.Fatalf("restart did not use the history: %s", p2.log()[i])
	}
	bootstrapped(t, p2)
	resp, err := getAs(ctx, p2.socks, "restarted", n.URLMarker)
	if err != nil || !strings.Contains(string(resp.Body), n.Marker) {
		t.Fatalf("fetch after restart: %v", err)
	}
}
