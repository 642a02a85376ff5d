package integration

import (
	"bytes"
	"context"
	"crypto/sha3"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// diffLine is tinytor's notice when a refresh used a consensus diff.
var diffLine = regexp.MustCompile(`Downloaded a consensus diff \((\d+) bytes\) and applied it, resulting in a new consensus document \((\d+) bytes, valid after (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\)\.`)

// TestTinytorConsensusDiff: once tinytor holds a consensus, its refresh
// asks the directory cache for a diff from it (X-Or-Diff-From-Consensus,
// proposal 140), and C tor's cache answers with one. The consensus
// tinytor builds from the diff and caches is byte for byte the one the
// authorities serve (same SHA3-256), and the MetricsPort counts the diff.
// The test network publishes a consensus every 20 s, so a refresh comes
// within a minute or so of bootstrap.
func TestTinytorConsensusDiff(t *testing.T) {
	n := RequireNetwork(t)
	metricsAddr := freePort(t)
	data := t.TempDir()
	p := startTinytor(t, n, tinytorBinary(t, ""), data, nil, "MetricsPort "+metricsAddr.String())

	// Record the consensuses the first authority serves, by valid-after,
	// while tinytor runs.
	auth := n.Authorities[0]
	var mu sync.Mutex
	full := map[string][]byte{}
	fetch := func() {
		doc, err := fetchDirDoc(auth.DirAddr.String(), "/tor/status-vote/current/consensus-microdesc")
		if err != nil {
			t.Logf("fetching the consensus from %s: %v", auth.Nickname, err)
			return
		}
		mu.Lock()
		full[validAfter(doc)] = doc
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			fetch()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	defer wg.Wait()
	defer cancel()

	bootstrapped(t, p)
	// A diff result is cached before the notice; a later refresh may
	// replace the file before we read it, so try up to three diffs.
	from := 0
	for attempt := 1; ; attempt++ {
		i := p.waitForAfter("Downloaded a consensus diff (", from, 3*time.Minute)
		lines := p.log()
		m := diffLine.FindStringSubmatch(lines[i])
		if m == nil {
			t.Fatalf("diff log line in an unexpected form: %q", lines[i])
		}
		diffBytes, _ := strconv.Atoi(m[1])
		docBytes, _ := strconv.Atoi(m[2])
		va := m[3]
		cached, err := os.ReadFile(filepath.Join(data, "cached-microdesc-consensus"))
		if err != nil {
			t.Fatal(err)
		}
		if got := validAfter(cached); got != va {
			if attempt == 3 {
				t.Fatalf("the cached consensus (valid after %s) is never the one the diff produced (valid after %s)", got, va)
			}
			from = i + 1
			continue
		}
		mu.Lock()
		want, ok := full[va]
		mu.Unlock()
		if !ok {
			fetch()
			mu.Lock()
			want, ok = full[va]
			mu.Unlock()
			if !ok {
				t.Fatalf("authority %s never served the consensus valid after %s", auth.Nickname, va)
			}
		}
		if len(cached) != docBytes {
			t.Errorf("cached consensus has %d bytes, the log says %d", len(cached), docBytes)
		}
		if sha3.Sum256(cached) != sha3.Sum256(want) {
			t.Fatalf("the consensus made from the diff (valid after %s, SHA3-256 %X) is not the authority's (%X)",
				va, sha3.Sum256(cached), sha3.Sum256(want))
		}
		t.Logf("consensus valid after %s: diff %d bytes, full consensus %d bytes (%.0f%%); SHA3-256 %X",
			va, diffBytes, len(want), 100*float64(diffBytes)/float64(len(want)), sha3.Sum256(want))
		break
	}
	for _, l := range p.log() {
		if strings.Contains(l, "Could not apply the consensus diff") {
			t.Errorf("a diff was refused: %s", l)
		}
	}
	text := scrape(t, metricsAddr)
	if v := metricValue(t, text, "tinytor_dir_consensus_diffs_total"); v < 1 {
		t.Errorf("tinytor_dir_consensus_diffs_total = %v, want at least 1", v)
	}
	if v := metricValue(t, text, "tinytor_dir_diff_fallbacks_total"); v != 0 {
		t.Errorf("tinytor_dir_diff_fallbacks_total = %v, want 0", v)
	}
	t.Logf("MetricsPort: %v consensus downloads (%v bytes on the wire, HTTP headers included), %v of them diffs",
		metricValue(t, text, "tinytor_dir_consensus_fetches_total"), metricValue(t, text, "tinytor_dir_consensus_bytes_total"),
		metricValue(t, text, "tinytor_dir_consensus_diffs_total"))
}

// fetchDirDoc GETs path from a DirPort over plain HTTP.
func fetchDirDoc(addr, path string) ([]byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := httpGet(conn, &url.URL{Scheme: "http", Host: addr, Path: path})
	if err != nil {
		return nil, fmt.Errorf("GET %s from %s: %w", path, addr, err)
	}
	if resp.Status != 200 {
		return nil, fmt.Errorf("GET %s from %s: HTTP status %d", path, addr, resp.Status)
	}
	if enc := resp.Header["content-encoding"]; enc != "" && enc != "identity" {
		return nil, fmt.Errorf("GET %s from %s: Content-Encoding %q", path, addr, enc)
	}
	return resp.Body, nil
}

// validAfter returns the valid-after time of a consensus document, or "".
func validAfter(doc []byte) string {
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("valid-after ")); ok {
			return string(v)
		}
	}
	return ""
}

// indexFrom returns the index of the first line from index from on that
// contains s, or -1.
func indexFrom(lines []string, s string, from int) int {
	for i := from; i < len(lines); i++ {
		if strings.Contains(lines[i], s) {
			return i
		}
	}
	return -1
}

// waitForAfter is waitFor for a line at index from or later.
func (p *tinytorProc) waitForAfter(s string, from int, timeout time.Duration) int {
	p.t.Helper()
	p.waitForCount(s, 1, timeout, from)
	return indexFrom(p.log(), s, from)
}
