package dirmgr

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"tinytor/tor/dir"
	"tinytor/tor/torlog"
)

// TestFetchMicrodescsSkipsBadOnes checks that a response with a malformed
// and an unrequested microdescriptor keeps the good requested ones: the
// malformed one is logged at warn and counted, the unrequested one
// dropped with an info line.
func TestFetchMicrodescsSkipsBadOnes(t *testing.T) {
	mk := func(key string) string { return "ntor-onion-key " + key + "\nid ed25519 " + key + "\n" }
	good := []string{
		mk("AppBt6CSeb1kKid/36ototmFA24ddfW5JpjWPLuoJgs"),
		mk("ncfiHJjSgdDEW/gc6q6/7idac7j+x7ejQrRm6i75pGA"),
		mk("MWBoEkl+RlBiGX44XKIvTSqbznTNZStOmUYtcYRQQyY"),
	}
	bad := "ntor-onion-key AAAA\n"
	unrequested := mk("2/nMJ+L4dd/2GpMyTYjz3zC59MvQy4MIzJZhdzKHekg")
	body := good[0] + bad + good[1] + unrequested + good[2]

	cons := &dir.Consensus{ValidAfter: time.Unix(1e9, 0), FreshUntil: time.Unix(1e9+3600, 0), ValidUntil: time.Unix(1e9+3*3600, 0)}
	for i, md := range append(good, bad) {
		r := dir.Relay{Flags: dir.FlagRunning | dir.FlagValid, Microdesc: sha256.Sum256([]byte(md))}
		r.Identity[0] = byte(i)
		cons.Relays = append(cons.Relays, r)
	}
	var logs bytes.Buffer
	m := New(Config{
		Log:      torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logs}),
		Cache:    &dir.Cache{Store: dir.DirStore{Dir: t.TempDir()}},
		Progress: noProgress{},
	})
	d := &NetDir{Consensus: cons, Microdescs: map[[32]byte]*dir.Microdesc{}}
	get := func(p string, max int64) ([]byte, error) { return []byte(body), nil }
	m.fetchMicrodescs(get, d) // not enough for circuits: its error does not matter here

	nd := m.Current()
	if nd == nil || len(nd.Microdescs) != 3 {
		t.Fatalf("installed %v", nd)
	}
	for _, g := range good {
		if nd.Microdescs[sha256.Sum256([]byte(g))] == nil {
			t.Errorf("good microdescriptor %q not installed", g)
		}
	}
	if s := m.Stats(); s.MicrodescsRejected != 1 || s.MicrodescFetches != 3 {
		t.Errorf("stats %+v, want 1 rejected, 3 fetched", s)
	}
	out := logs.String()
	for _, want := range []string{
		"[warn] Unparseable microdescriptor " + dir.DigestString(sha256.Sum256([]byte(bad))) + " found in download (entry at line 3): microdescriptor: line 3: \"ntor-onion-key\": base64 value \"AAAA\"",
		"[info] Dropped 1 unrequested microdescriptors.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	// The cache holds the three good ones only.
	l := m.cfg.Cache.Load(nil, time.Unix(1e9, 0), 0)
	if len(l.Microdescs) != 3 || len(l.Problems) != 0 {
		t.Errorf("cache: %d microdescriptors, problems %v", len(l.Microdescs), l.Problems)
	}
}

// TestRejectMicrodescsLogLimit checks that a response full of bad
// microdescriptors logs a few of them one by one, then one summary line,
// and counts them all.
func TestRejectMicrodescsLogLimit(t *testing.T) {
	var logs bytes.Buffer
	m := New(Config{Log: torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logs})})
	skipped := make([]*dir.MicrodescError, 12)
	for i := range skipped {
		skipped[i] = &dir.MicrodescError{Line: i + 1, Err: dir.ErrUnrequestedMicrodesc}
	}
	m.rejectMicrodescs(skipped)
	if n := strings.Count(logs.String(), "[warn] Unparseable microdescriptor"); n != maxRejectLogs {
		t.Errorf("%d lines logged one by one, want %d", n, maxRejectLogs)
	}
	if !strings.Contains(logs.String(), "[warn] Skipped 7 more unparseable microdescriptors") {
		t.Errorf("no summary line:\n%s", logs.String())
	}
	if m.Stats().MicrodescsRejected != 12 {
		t.Errorf("counted %d", m.Stats().MicrodescsRejected)
	}
}
