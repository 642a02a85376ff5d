package service

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"tinytor/tor/dir"
	"tinytor/tor/path"
)

// TestIntroReplacement: a dead introduction point and one that served its
// share are replaced by new ones on other relays, and the intro set
// version moves (so that the descriptor is republished).
func TestIntroReplacement(t *testing.T) {
	va := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	now := va.Add(time.Minute)
	rn := &recNet{view: testView(va), asks: map[[20]byte]int{}, ask: make(chan struct{}, 100), intro: make(chan [20]byte, 100)}
	s, err := New(rn, Options{Config: testConfig(filepath.Join(t.TempDir(), "hs")), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); s.wg.Wait() }()

	var ips []*introPoint
	for i := range 3 {
		ip, err := newIntroPoint(rn.view.Nodes[i], now, s.rng)
		if err != nil {
			t.Fatal(err)
		}
		ip.established = true
		ips = append(ips, ip)
	}
	ips[1].dead = true
	ips[2].introduced = ips[2].maxIntro
	s.intros = append(s.intros, ips...)
	v := s.version
	s.maintainIntros(ctx)
	s.mu.Lock()
	if s.version == v {
		t.Error("intro set version unchanged after two points were retired")
	}
	if len(s.intros) != 3 || s.intros[0] != ips[0] || s.intros[1] == ips[1] || s.intros[2] == ips[2] {
		t.Errorf("intro points after replacement: %d, want the healthy one and two new ones", len(s.intros))
	}
	s.mu.Unlock()
	used := map[[20]byte]bool{ips[0].node.Identity: true}
	for range 2 {
		select {
		case id := <-rn.intro:
			if used[id] {
				t.Errorf("introduction circuit to %x, a relay already in use", id[:2])
			}
			used[id] = true
		case <-time.After(10 * time.Second):
			t.Fatal("no introduction circuit was asked for")
		}
	}
	// An introduction point past its lifetime is replaced too.
	now = now.Add(introMaxLifetime + time.Minute)
	s.maintainIntros(ctx)
	s.mu.Lock()
	for _, ip := range s.intros {
		if ip == ips[0] {
			t.Error("an introduction point past its lifetime was kept")
		}
	}
	s.mu.Unlock()
}

func TestPickIntroNodePrefersStable(t *testing.T) {
	view := testView(time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC))
	view.Nodes[4].Flags |= dir.FlagStable
	view.Nodes[7].Flags |= dir.FlagStable
	r := testRand(t)
	for range 20 {
		n := pickIntroNode(view, []*path.Node{view.Nodes[7]}, r)
		if n != view.Nodes[4] {
			t.Fatalf("picked %x, want the only unused Stable relay", n.Identity[:1])
		}
	}
	if n := pickIntroNode(view, []*path.Node{view.Nodes[4], view.Nodes[7]}, r); n == nil || n.Flags.Has(dir.FlagStable) {
		t.Fatal("no fallback to non-Stable relays")
	}
	if n := pickIntroNode(view, view.Nodes, r); n != nil {
		t.Fatal("picked a relay already in use")
	}
}
