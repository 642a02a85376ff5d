package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestTinytorSoak (issue 14's soak): four workers send requests through
// tinytor for TINYTOR_SOAK (a Go duration, default 10m), each under a
// fresh SOCKS username (a new circuit, and for onion requests a new
// rendezvous), every fifth one to the test network's onion service, while
// tinytor gets a SIGHUP every 30 s. No request may fail. It runs only with
// TINYTOR_SOAK set (it takes as long as it says).
func TestTinytorSoak(t *testing.T) {
	d := os.Getenv("TINYTOR_SOAK")
	if d == "" || testing.Short() {
		t.Skip("a long soak: run with TINYTOR_SOAK=10m")
	}
	length, err := time.ParseDuration(d)
	if err != nil {
		t.Fatalf("TINYTOR_SOAK: %v", err)
	}
	n := RequireNetwork(t)
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil)
	bootstrapped(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), length)
	defer cancel()

	hups := 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Errorf("SIGHUP: %v", err)
					return
				}
				hups++
			}
		}
	}()

	type result struct {
		onion bool
		took  time.Duration
		err   error
		user  string
	}
	results := make(chan result, 1024)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				user := fmt.Sprintf("soak-%d-%d", w, k)
				onion := k%5 == 4
				url := n.URLMarker
				if onion {
					url = "http://" + n.Onion + ":80/"
				}
				// Each request gets a minute of its own: a request still
				// running when the soak ends is finished, not cut.
				rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
				start := time.Now()
				r, err := getAs(rctx, p.socks, user, url)
				rcancel()
				if err == nil && !bytes.Contains(r.Body, []byte(n.Marker)) {
					err = fmt.Errorf("no marker in %d bytes", len(r.Body))
				}
				results <- result{onion, time.Since(start), err, user}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	var exitTimes, onionTimes []time.Duration
	var failed []result
	for r := range results {
		switch {
		case r.err != nil:
			failed = append(failed, r)
		case r.onion:
			onionTimes = append(onionTimes, r.took)
		default:
			exitTimes = append(exitTimes, r.took)
		}
	}
	quantiles := func(d []time.Duration) string {
		if len(d) == 0 {
			return "none"
		}
		slices.Sort(d)
		q := func(f float64) time.Duration { return d[int(f*float64(len(d)-1))].Round(time.Millisecond) }
		return fmt.Sprintf("%d, median %v, p95 %v, max %v", len(d), q(0.5), q(0.95), q(1))
	}
	t.Logf("soak of %v with %d SIGHUPs: exit requests %s; onion requests %s; %d failed",
		length, hups, quantiles(exitTimes), quantiles(onionTimes), len(failed))
	for _, f := range failed {
		t.Errorf("request as %s (onion %v) failed after %v: %v", f.user, f.onion, f.took.Round(time.Millisecond), f.err)
	}
	if len(exitTimes) == 0 || len(onionTimes) == 0 {
		t.Fatal("the soak made no successful exit or onion request")
	}
}
