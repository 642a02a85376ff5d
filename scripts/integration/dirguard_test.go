package integration

import (
	"strings"
	"testing"
	"time"
)

// TestTinytorDirectoryGuards: once bootstrapped, tinytor refreshes its
// directory from its directory guards (guard-spec), not from random
// directory caches. The test network publishes a consensus every 20 s, so
// refreshes come quickly.
func TestTinytorDirectoryGuards(t *testing.T) {
	n := RequireNetwork(t)
	bin := tinytorBinary(t, "")
	p := startTinytor(t, n, bin, "", nil)
	done := p.waitFor("Bootstrapped 100% (done): Done", 3*time.Minute)
	first := p.waitFor("Fetched directory information from directory guard", 3*time.Minute)
	if first < done {
		t.Fatalf("a directory guard was used before bootstrap was done (line %d < %d)", first, done)
	}
	// Two more refreshes after the first: all from directory guards.
	p.waitForCount("Fetched directory information from", 3, 3*time.Minute, done)
	var fromGuards, others []string
	for _, l := range p.log()[done:] {
		if i := strings.Index(l, "Fetched directory information from "); i >= 0 {
			src := l[i+len("Fetched directory information from "):]
			if strings.HasPrefix(src, "directory guard ") {
				fromGuards = append(fromGuards, src)
			} else {
				others = append(others, src)
			}
		}
	}
	t.Logf("refreshes from directory guards: %q", fromGuards)
	if len(others) > 0 || len(fromGuards) < 3 {
		t.Fatalf("after bootstrap: %d fetches from directory guards, %d from elsewhere: %q", len(fromGuards), len(others), others)
	}
}

// waitForCount waits until n log lines from index from on contain s.
func (p *tinytorProc) waitForCount(s string, n int, timeout time.Duration, from int) {
	p.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		count := 0
		for _, l := range p.lines[min(from, len(p.lines)):] {
			if strings.Contains(l, s) {
				count++
			}
		}
		ch := p.changed
		p.mu.Unlock()
		if count >= n {
			return
		}
		select {
		case <-ch:
		case <-p.exited:
			p.t.Fatalf("tinytor exited before logging %q %d times", s, n)
		case <-deadline.C:
			p.t.Fatalf("tinytor logged %q %d times within %s, want %d", s, count, timeout, n)
		}
	}
}
