package service

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tinytor/onion/desc"
	"tinytor/onion/pow"
	"tinytor/tor/dir"
	"tinytor/tor/path"
	"tinytor/tor/torlog"
)

// TestPoWDescriptorParams: a service with HiddenServicePoWDefensesEnabled
// puts its seed and suggested effort in its descriptors, and reports its
// counters for the MetricsPort.
func TestPoWDescriptorParams(t *testing.T) {
	hc := testConfig(filepath.Join(t.TempDir(), "hs"))
	hc.PoWDefensesEnabled, hc.PoWQueueRate, hc.PoWQueueBurst = true, 1, 1
	var logBuf strings.Builder
	var got []pow.Stats
	s, err := New(noNet{}, Options{Config: hc, Log: torlog.New(torlog.Sink{Min: torlog.Info, Max: torlog.Err, W: &logBuf}),
		PoWStats: func(onion string, st pow.Stats) { got = append(got, st) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.pow == nil {
		t.Fatal("no proof-of-work defense for a section that enables it")
	}
	s.powTick()
	if s.powParams == nil || s.powParams.SuggestedEffort != 0 || !s.powParams.Expires.After(time.Now().Add(time.Hour)) {
		t.Fatalf("pow-params %+v", s.powParams)
	}
	if len(got) != 1 || !strings.Contains(logBuf.String(), "proof-of-work defenses enabled (queue rate 1, burst 1)") {
		t.Fatalf("stats %v, log %q", got, logBuf.String())
	}
	ip, err := newIntroPoint(&path.Node{Relay: &dir.Relay{Nickname: "ip"}, MD: &dir.Microdesc{}}, time.Now(), testRand(t))
	if err != nil {
		t.Fatal(err)
	}
	bk := s.id.Blind(100, 1440)
	now := time.Now()
	doc, err := s.buildDescriptor(bk, 1, now, []*introPoint{ip})
	if err != nil {
		t.Fatal(err)
	}
	d, err := desc.Decode(doc, s.id.Public(), bk.Public(), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Inner.PoW == nil || d.Inner.PoW.Seed != s.powParams.Seed || !d.Inner.PoW.Expires.Equal(s.powParams.Expires) {
		t.Fatalf("descriptor pow-params %+v, want %+v", d.Inner.PoW, s.powParams)
	}

	// Without the option: no defense, no pow-params.
	plain, err := New(noNet{}, Options{Config: testConfig(filepath.Join(t.TempDir(), "plain"))})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if plain.pow != nil {
		t.Fatal("proof-of-work defense without the option")
	}
}
