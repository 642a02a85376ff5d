package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOnionIntroFailureMemory (issue 14, client memory of failure): two of
// the three introduction points of a C tor service are made silent
// (their relays SIGSTOPped). Once tinytor has seen each of them fail, a
// new connection (a new SOCKS user: a new rendezvous) introduces through
// the live one first and does not come back to the failed ones (C tor
// leaves an unreachable point out after 5 failures, and tinytor orders
// the others fewest failures first); the test counts the introductions
// per point in each attempt from tinytor's log. It runs on a network of
// its own.
func TestOnionIntroFailureMemory(t *testing.T) {
	RequireNetwork(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := t.TempDir()
	n, err := testSuite.launcher.Start(ctx, dir, "--relays", "12")
	if err != nil {
		t.Fatalf("starting a network: %v", err)
	}
	defer func() {
		stopCtx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		testSuite.launcher.Stop(stopCtx, dir)
	}()
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil, "LearnCircuitBuildTimeout 0", "CircuitBuildTimeout 5")
	first := p.waitFor("Bootstrapped 100% (done): Done", 3*time.Minute)
	guard := ""
	for _, l := range p.log()[:first+1] {
		if g := firstHop(l); g != "" {
			guard = g
		}
	}
	// The service's own circuits avoid the relays that may be stopped:
	// it is pinned to six relays (not tinytor's guard).
	var others []string
	for _, r := range n.Relays {
		if r.Nickname != guard {
			others = append(others, r.Nickname)
		}
	}
	pins := others[:6]
	svc := startPinnedOnionService(t, n, pins[0]+","+pins[1], pins[2]+","+pins[3], pins[4]+","+pins[5])
	if !svc.uploaded(3 * time.Minute) {
		t.Skip("the test's pinned C tor onion service did not upload its descriptor within 3 minutes")
	}
	url := "http://" + svc.addr.String() + ":80/"
	short := svc.addr.String()[:8]

	// attempt fetches the page as a new user and returns the log lines of
	// the attempt.
	attempt := func(user string) []string {
		t.Helper()
		mark := len(p.log())
		actx, acancel := context.WithTimeout(ctx, 3*time.Minute)
		defer acancel()
		r, err := getAs(actx, p.socks, user, url)
		if err != nil {
			t.Fatalf("onion request as %s: %v", user, err)
		}
		if !bytes.Contains(r.Body, []byte(n.Marker)) {
			t.Fatalf("onion request as %s: no marker", user)
		}
		return p.log()[mark:]
	}
	lines := attempt("intro-0")
	var points []string
	for _, l := range grepLines(lines, "Introduction points of "+short+": ") {
		points = strings.Fields(strings.TrimSuffix(l[strings.Index(l, ": ")+2:], "."))
	}
	if len(points) != 3 {
		t.Fatalf("want 3 introduction points, the log says %q", points)
	}
	// Intro points are named by the first 4 bytes of their RSA identity.
	nick := map[string]string{}
	for _, r := range n.Relays {
		nick["$"+strings.ToUpper(hex.EncodeToString(r.Fingerprint[:4]))] = r.Nickname
	}
	var silent []string
	live := ""
	for _, pt := range points {
		nk := nick[pt]
		switch {
		case nk == "" || nk == guard || len(silent) == 2 || contains(pins, nk):
			if live == "" {
				live = pt
			}
		default:
			silent = append(silent, pt)
		}
	}
	if len(silent) < 2 || live == "" {
		t.Skipf("introduction points %v (relays %s %s %s): not two that can be stopped apart from tinytor's guard %s and the service's pins",
			points, nick[points[0]], nick[points[1]], nick[points[2]], guard)
	}
	for _, pt := range silent {
		pid := pidOf(t, n, nick[pt])
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(pid, syscall.SIGCONT)
	}
	t.Logf("introduction points %v; stopped %v (%s, %s); live %s (%s)", points, silent, nick[silent[0]], nick[silent[1]], live, nick[live])

	// Until both silent points have failed once, new users may try them.
	failed := map[string]int{}
	for i := 1; len(failed) < 2; i++ {
		if i > 6 {
			t.Fatalf("after %d attempts the silent points failed %v times", i-1, failed)
		}
		lines := attempt(fmt.Sprintf("intro-%d", i))
		tried := introductions(lines, short)
		for _, pt := range silent {
			if k := len(grepLines(lines, "Introduction to "+short+" through "+pt+" failed")); k > 0 {
				failed[pt] += k
			}
		}
		t.Logf("attempt %d: introductions %v; failures so far %v", i, tried, failed)
	}
	// Now every new connection goes to the live point first, and only
	// to it.
	for i := range 3 {
		lines := attempt(fmt.Sprintf("intro-after-%d", i))
		tried := introductions(lines, short)
		t.Logf("after the failures, attempt %d: introductions %v", i, tried)
		if len(tried) == 0 || tried[0] != live {
			t.Errorf("attempt %d introduced through %v first, want the live point %s", i, tried, live)
		}
		for _, pt := range silent {
			if contains(tried, pt) {
				t.Errorf("attempt %d tried the failed point %s again", i, pt)
			}
		}
		if left := grepLines(lines, "Leaving out "); len(left) > 0 {
			t.Logf("attempt %d: %s", i, left[0])
		}
	}
}

// introductions lists, in order, the introduction points tinytor
// introduced through in lines.
func introductions(lines []string, short string) []string {
	var out []string
	prefix := "Introducing to " + short + " through "
	for _, l := range grepLines(lines, prefix) {
		out = append(out, strings.TrimSuffix(l[strings.Index(l, prefix)+len(prefix):], "."))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
