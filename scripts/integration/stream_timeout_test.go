package integration

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// streamTimeoutFirst is C tor's stream timeout for a first attempt
// (compute_retry_timeout with CircuitStreamTimeout 0).
const streamTimeoutFirst = 10 * time.Second

// streamRetryMargin is what a retry may take beyond the stream timeout:
// building a new circuit (or a new rendezvous) on a network where one
// relay is silent, so that a path through it is given up at the
// circuit build timeout set below.
const streamRetryMargin = 15 * time.Second

// rendRetryMargin is what a new rendezvous may take beyond the stream
// timeout: a rendezvous circuit and an introduction circuit, each of
// which may first be given up (at the 5 s build timeout) because it went
// through the stopped relay.
const rendRetryMargin = 15 * time.Second

// startPinnedOnionService starts a C tor onion service on the network,
// serving the network's HTTP server on port 80, whose circuits go only
// through the relays it is given for each position: guards (two: C tor
// refuses one EntryNodes with a service), layer 2 and layer 3
// (EntryNodes, HSLayer2Nodes, HSLayer3Nodes), so that a test can stop a
// relay without touching the service's own circuits. An empty list leaves
// that position free.
func startPinnedOnionService(t *testing.T, n *Network, guards, layer2, layer3 string) *onionService {
	t.Helper()
	var pins []string
	for _, pin := range [][2]string{{"EntryNodes", guards}, {"HSLayer2Nodes", layer2}, {"HSLayer3Nodes", layer3}} {
		if pin[1] != "" {
			pins = append(pins, pin[0]+" "+pin[1])
		}
	}
	return startOnionService(t, n, nil, pins...)
}

// TestTinytorStreamTimeout stops (SIGSTOP) relays, so it runs on a
// network of its own. (a) The exit of a user's circuit is stopped: the
// user's next stream gets no CONNECTED on that circuit, is retried on
// another after C tor's 10 s, and succeeds. (b) The rendezvous point of a
// user's rendezvous circuit to the network's onion service is stopped:
// the user's next onion request gets no answer on that circuit, which
// is dropped from the per-user cache, and succeeds on a new rendezvous.
// The onion service is one of the test's whose circuits are pinned to
// other relays (a service whose guard or vanguards went silent would
// lose introductions whatever the client does).
func TestTinytorStreamTimeout(t *testing.T) {
	RequireNetwork(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// 12 relays: a stopped one is less often on the paths that should
	// carry the retry (the onion service's among them).
	n, p, guard := startStopNetwork(t, ctx, 12)

	// stopped relays are continued at the end, so that the network stops.
	var stopped []int
	defer func() {
		for _, pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	stop := func(nick string) int {
		pid := pidOf(t, n, nick)
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped = append(stopped, pid)
		return pid
	}
	cont := func(pid int) {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	get := func(user, rawURL string, limit time.Duration) ([]byte, time.Duration, error) {
		rctx, c := context.WithTimeout(ctx, limit)
		defer c()
		start := time.Now()
		resp, err := getAs(rctx, p.socks, user, rawURL)
		if err != nil {
			return nil, time.Since(start), err
		}
		return resp.Body, time.Since(start), nil
	}

	t.Run("exit", func(t *testing.T) {
		// A user whose exit is not the guard.
		user, exit := "", ""
		for i := 0; i < 10 && user == ""; i++ {
			u := fmt.Sprintf("e%d", i)
			body, _, err := get(u, n.URLEcho, time.Minute)
			if err != nil {
				t.Fatalf("echo as %s: %v", u, err)
			}
			if nick := exitNickname(t, n, strings.TrimSpace(string(body))); nick != guard {
				user, exit = u, nick
			}
		}
		if user == "" {
			t.Fatalf("every circuit exited at the guard %s", guard)
		}
		pid := stop(exit)
		defer cont(pid)
		mark := len(p.log())
		body, took, err := get(user, n.URLEcho, 2*time.Minute)
		if err != nil {
			t.Fatalf("request as %s after its exit %s was stopped: %v (after %s)", user, exit, err, took.Round(time.Millisecond))
		}
		now := exitNickname(t, n, strings.TrimSpace(string(body)))
		t.Logf("guard %s; user %s's exit %s stopped; the request succeeded through %s after %s", guard, user, exit, now, took.Round(time.Millisecond))
		if now == exit {
			t.Fatalf("the request went through the stopped exit %s", exit)
		}
		if took < streamTimeoutFirst || took > streamTimeoutFirst+streamRetryMargin {
			t.Errorf("the request took %s, want the stream timeout (%s) plus at most %s", took, streamTimeoutFirst, streamRetryMargin)
		}
		if !containsLine(p.log()[mark:], "We tried for 10 seconds to connect to") {
			t.Error("tinytor did not log the stream timeout")
		}
	})

	t.Run("rendezvous", func(t *testing.T) {
		// A service whose circuits avoid the relay to be stopped: pinned
		// to four relays that are not tinytor's guard.
		var others []string
		for _, r := range n.Relays {
			if r.Nickname != guard {
				others = append(others, r.Nickname)
			}
		}
		// Two relays per layer: with one, C tor found no usable
		// _HSLayer3Nodes node in one run and never uploaded. A service
		// that still cannot build its circuits (seen: "Could not find a
		// node that matches the configured _HSLayer3Nodes set" on a young
		// network) is started again on the other relays.
		var svc *onionService
		var pins []string
		for _, set := range [][]string{others[:6], others[len(others)-6:]} {
			pins = set
			svc = startPinnedOnionService(t, n, pins[0]+","+pins[1], pins[2]+","+pins[3], pins[4]+","+pins[5])
			if svc.uploaded(3 * time.Minute) {
				break
			}
			t.Logf("the pinned C tor service on %v did not upload within 3 minutes; trying other relays", pins)
			svc.stop()
			svc = nil
		}
		if svc == nil {
			// The test's setup failed twice, not tinytor.
			t.Skip("the test's pinned C tor onion service did not upload its descriptor on either set of relays")
		}
		url := "http://" + svc.addr.String() + ":80/"
		// A user whose rendezvous point is on none of the paths a new
		// rendezvous needs: not tinytor's guard or layer-2 guards
		// (vanguards-lite), not on the service's circuits.
		avoid := map[string]bool{guard: true}
		for _, nick := range pins {
			avoid[nick] = true
		}
		for _, l := range p.log() {
			if i := strings.Index(l, "Adding Layer2 guard $"); i >= 0 {
				hop := l[i+len("Adding Layer2 guard $"):]
				avoid[strings.Fields(hop[strings.Index(hop, "~")+1:])[0]] = true
			}
		}
		t.Logf("rendezvous points to avoid: %v", avoid)
		user, rp := "", ""
		for i := 0; i < 20 && user == ""; i++ {
			u := fmt.Sprintf("r%d", i)
			mark := len(p.log())
			body, took, err := get(u, url, 2*time.Minute)
			if err != nil && i == 0 {
				// The descriptor may take a moment to be fetchable.
				body, took, err = get(u, url, 2*time.Minute)
			}
			if err != nil {
				t.Fatalf("onion request as %s: %v", u, err)
			}
			if !bytes.Contains(body, []byte(n.Marker)) {
				t.Fatalf("onion request as %s: no marker in %q", u, body)
			}
			for _, l := range p.log()[mark:] {
				if i := strings.Index(l, " at rendezvous point "); i >= 0 {
					nick := strings.Fields(l[i+len(" at rendezvous point "):])[0]
					t.Logf("user %s joined the service at %s in %s", u, nick, took.Round(time.Millisecond))
					if !avoid[nick] {
						user, rp = u, nick
					}
				}
			}
		}
		if user == "" {
			t.Fatal("every rendezvous point was one to avoid")
		}
		// The rendezvous circuit is kept for the user: a second request
		// uses it without a new rendezvous.
		mark := len(p.log())
		if _, _, err := get(user, url, time.Minute); err != nil {
			t.Fatalf("second onion request as %s: %v", user, err)
		}
		if containsLine(p.log()[mark:], " at rendezvous point ") {
			t.Fatalf("the second request of %s made a new rendezvous", user)
		}

		pid := stop(rp)
		defer cont(pid)
		mark = len(p.log())
		body, took, err := get(user, url, 2*time.Minute)
		if err != nil {
			t.Fatalf("onion request as %s after its rendezvous point %s was stopped: %v (after %s)", user, rp, err, took.Round(time.Millisecond))
		}
		if !bytes.Contains(body, []byte(n.Marker)) {
			t.Fatalf("no marker in %q", body)
		}
		after := p.log()[mark:]
		t.Logf("user %s's rendezvous point %s stopped; the request succeeded after %s", user, rp, took.Round(time.Millisecond))
		if !containsLine(after, "Retrying on a new rendezvous circuit") {
			t.Error("tinytor did not log the rendezvous stream timeout")
		}
		if !containsLine(after, " at rendezvous point ") {
			t.Error("no new rendezvous was made")
		}
		if took < streamTimeoutFirst || took > streamTimeoutFirst+rendRetryMargin {
			t.Errorf("the request took %s, want the stream timeout (%s) plus at most %s", took, streamTimeoutFirst, rendRetryMargin)
		}
		// Later requests of the user use the new circuit at once.
		if _, took, err := get(user, url, time.Minute); err != nil || took > 5*time.Second {
			t.Errorf("request after the retry: %v after %s", err, took)
		}
	})
}

// uploaded waits until the service logged a finished descriptor upload,
// reporting false after timeout or if it exited first.
func (s *onionService) uploaded(timeout time.Duration) bool {
	const want = "Uploading hidden service descriptor: finished with status 200"
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	l := s.out
	for {
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		if l.contains(want) {
			return true
		}
		select {
		case <-ch:
		case <-l.eof:
			return l.contains(want)
		case <-deadline.C:
			return false
		}
	}
}

// startStopNetwork starts a network of its own with the given number of
// relays (stopped when the test ends), for a test that SIGSTOPs relays,
// and a tinytor on it with a fixed, short circuit build timeout (a path
// through a stopped relay is given up quickly). It returns the network,
// tinytor and tinytor's guard (the first hop of its first circuit).
func startStopNetwork(t *testing.T, ctx context.Context, relays int) (*Network, *tinytorProc, string) {
	t.Helper()
	dir := t.TempDir()
	n, err := testSuite.launcher.Start(ctx, dir, "--relays", strconv.Itoa(relays))
	if err != nil {
		t.Fatalf("starting a network: %v", err)
	}
	t.Cleanup(func() {
		stopCtx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		testSuite.launcher.Stop(stopCtx, dir)
	})
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil, "LearnCircuitBuildTimeout 0", "CircuitBuildTimeout 5")
	first := p.waitFor("Bootstrapped 100% (done): Done", 3*time.Minute)
	guard := ""
	for _, l := range p.log()[:first+1] {
		if g := firstHop(l); g != "" {
			guard = g
		}
	}
	if guard == "" {
		t.Fatal("no circuit line before 100%")
	}
	return n, p, guard
}
