package dirmgr

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/event"
	"tinytor/tor/torlog"
)

// diffFixture is a Manager whose consensus in use (and cache file) is the
// base consensus captured in tor/dir/testdata, at a time when the next one
// (and the diff C tor served from base to next) is current.
type diffFixture struct {
	m                       *Manager
	store                   *memStore
	logs                    *bytes.Buffer
	base, next, diff, certs []byte
	// requests records the X-Or-Diff-From-Consensus header of each
	// consensus request ("" if absent).
	requests []string
}

// readDirTestdata reads a document of package dir's testdata.
func readDirTestdata(t *testing.T, name string) []byte {
	t.Helper()
	return readTestdata(t, "../../dir/testdata/"+name)
}

func newDiffFixture(t *testing.T) *diffFixture {
	t.Helper()
	f := &diffFixture{
		store: &memStore{files: map[string][]byte{}},
		logs:  &bytes.Buffer{},
		base:  readDirTestdata(t, "testnet-diff-base"),
		next:  readDirTestdata(t, "testnet-diff-next"),
		diff:  readDirTestdata(t, "testnet-diff-base-next"),
		certs: readDirTestdata(t, "testnet-diff-certs"),
	}
	next, err := dir.ParseConsensus(f.next)
	if err != nil {
		t.Fatal(err)
	}
	now := next.ValidAfter.Add(5 * time.Second)
	torrc, err := config.Parse(readTestdata(t, "diff-torrc"), "diff-torrc", config.Env{Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f.m = New(Config{
		Torrc:    func() *config.Config { return torrc },
		Log:      torlog.New(torlog.Sink{Min: torlog.Info, Max: torlog.Err, W: f.logs}),
		Now:      func() time.Time { return now },
		Cache:    &dir.Cache{Store: f.store},
		Progress: noProgress{},
		Events:   &event.Bus{},
	})
	d, err := f.m.fetchConsensusDiff(f.serve(f.base, nil), nil)
	if err != nil {
		t.Fatalf("base consensus: %v", err)
	}
	f.m.install(d, false)
	f.requests = nil
	return f
}

// serve answers a consensus request with diff if it carries an
// X-Or-Diff-From-Consensus header and diff is not nil, else with full;
// certificate requests with the captured certificates.
func (f *diffFixture) serve(full, diff []byte) docGetter {
	return func(p string, hdrs []dir.Header, _ int64) ([]byte, error) {
		switch {
		case strings.Contains(p, "consensus"):
			from := ""
			for _, h := range hdrs {
				if h.Name == dir.DiffFromHeader {
					from = h.Value
				}
			}
			f.requests = append(f.requests, from)
			if from != "" && diff != nil {
				return diff, nil
			}
			return full, nil
		case strings.HasPrefix(p, "/tor/keys/"):
			return f.certs, nil
		}
		return nil, errors.New("unexpected path " + p)
	}
}

func TestConsensusDiffApplied(t *testing.T) {
	f := newDiffFixture(t)
	d, err := f.m.fetchConsensusDiff(f.serve(nil, f.diff), f.m.Current())
	if err != nil {
		t.Fatalf("%v\n%s", err, f.logs)
	}
	if want := fmt.Sprintf("%X", dir.DigestAsSigned(f.base)); len(f.requests) != 1 || f.requests[0] != want {
		t.Fatalf("requests %q, want one with the base's digest %s", f.requests, want)
	}
	if got, _ := f.store.ReadFile(dir.ConsensusFile); !bytes.Equal(got, f.next) {
		t.Error("the cache does not hold the consensus the diff produced")
	}
	if !d.Consensus.MatchesDocument(f.next) {
		t.Error("the directory view is not the next consensus")
	}
	if s := f.m.Stats(); s.ConsensusDiffs != 1 || s.ConsensusDiffFallbacks != 0 {
		t.Errorf("stats %+v, want 1 diff and no fallback", s)
	}
	want := fmt.Sprintf("[notice] Downloaded a consensus diff (%d bytes) and applied it, resulting in a new consensus document (%d bytes, valid after 2026-12-03 13:28:40).", len(f.diff), len(f.next))
	if !strings.Contains(f.logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, f.logs)
	}
}

func TestConsensusDiffFallbacks(t *testing.T) {
	// A diff that produces a consensus with the right digest in its hash
	// line but a changed relay: it applies, but its signatures fail.
	forged := bytes.Replace(readDirTestdata(t, "testnet-diff-next"), []byte("w Bandwidth=20"), []byte("w Bandwidth=99"), 1)
	forgedDiff := fmt.Appendf(nil, "network-status-diff-version 1\nhash %X %X\n1,$d\n0a\n%s.\n",
		dir.DigestAsSigned(readDirTestdata(t, "testnet-diff-base")), dir.DocumentDigest(forged), forged)
	for _, tc := range []struct {
		name string
		diff func(f *diffFixture) []byte
		warn string
	}{
		{"wrong result digest", func(f *diffFixture) []byte {
			return bytes.Replace(f.diff, []byte("Unmeasured=1"), []byte("Unmeasured=0"), 1)
		}, "consensus diff result has the wrong digest"},
		{"from another consensus", func(f *diffFixture) []byte {
			return bytes.Replace(f.diff, []byte("hash A8CE01C8"), []byte("hash A8CE01C9"), 1)
		}, "consensus diff is from another consensus"},
		{"out of order", func(f *diffFixture) []byte {
			return bytes.Replace(f.diff, []byte("\n72c\n"), []byte("\n81c\n"), 1)
		}, "consensus diff line 34: ed command \"81c\" refers to line 81, but only lines 1-79"},
		{"result not signed", func(*diffFixture) []byte { return forgedDiff }, "the consensus it produced: consensus has valid signatures from 0 of 3"},
	} {
		f := newDiffFixture(t)
		d, err := f.m.fetchConsensusDiff(f.serve(f.next, tc.diff(f)), f.m.Current())
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, f.logs)
		}
		if len(f.requests) != 2 || f.requests[0] == "" || f.requests[1] != "" {
			t.Errorf("%s: requests %q, want one with a diff header, then one without", tc.name, f.requests)
		}
		if !d.Consensus.MatchesDocument(f.next) {
			t.Errorf("%s: the directory view is not the full consensus", tc.name)
		}
		if s := f.m.Stats(); s.ConsensusDiffs != 0 || s.ConsensusDiffFallbacks != 1 {
			t.Errorf("%s: stats %+v, want no diff and one fallback", tc.name, s)
		}
		logs := f.logs.String()
		if !strings.Contains(logs, "[warn] Could not apply the consensus diff") || !strings.Contains(logs, tc.warn) ||
			!strings.Contains(logs, "Fetching the full consensus instead.") {
			t.Errorf("%s: log lacks the fallback warning with %q:\n%s", tc.name, tc.warn, logs)
		}
	}
}

func TestNoDiffRequested(t *testing.T) {
	// The cache file holds another consensus than the one in use.
	f := newDiffFixture(t)
	f.store.files[dir.ConsensusFile] = f.next
	if _, err := f.m.fetchConsensusDiff(f.serve(f.next, f.diff), f.m.Current()); err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 1 || f.requests[0] != "" {
		t.Errorf("requests %q, want one without a diff header", f.requests)
	}
	if !strings.Contains(f.logs.String(), "Not asking for a consensus diff: the cached cached-microdesc-consensus is not the consensus in use") {
		t.Errorf("no log line:\n%s", f.logs)
	}
	// A cache that sends a diff we did not ask for is refused.
	f = newDiffFixture(t)
	if _, err := f.m.fetchConsensusDiff(f.serve(f.diff, nil), nil); err == nil || !strings.Contains(err.Error(), "did not ask for") {
		t.Errorf("unrequested diff: %v", err)
	}
}
