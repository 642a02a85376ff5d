package circmgr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/guard"
	"tinytor/tor/path"
	"tinytor/tor/rng"
	"tinytor/tor/vanguards"
)

var _ Layer2 = (*vanguards.Manager)(nil)

// onionTestDir makes n relays on 127.0.0.1 (as the test network), all
// with every flag, valid around now, with the given parameters.
func onionTestDir(now time.Time, n int, params map[string]int32) *path.Dir {
	c := &dir.Consensus{ValidAfter: now.Add(-time.Minute), FreshUntil: now.Add(time.Hour),
		ValidUntil: now.Add(3 * time.Hour), Params: params}
	mds := map[[32]byte]*dir.Microdesc{}
	for i := range n {
		r := dir.Relay{Bandwidth: 1000, ORPort: uint16(9000 + i), Nickname: fmt.Sprintf("relay%d", i+1),
			Flags: guard.DefaultGuardFlags | dir.FlagHSDir}
		r.Identity[0] = byte(i + 1)
		r.Microdesc[0] = byte(i + 1)
		r.Addr = [4]byte{127, 0, 0, 1}
		c.Relays = append(c.Relays, r)
		mds[r.Microdesc] = &dir.Microdesc{Digest: r.Microdesc, HasNtorKey: true}
	}
	return path.NewDir(c, mds)
}

func newOnionManager(t *testing.T, d *path.Dir, now func() time.Time, cfg *config.Config) *Manager {
	t.Helper()
	gm := guard.New(guard.Options{Now: now, Rand: rand.New(rand.NewPCG(1, 1))})
	gm.SetConsensus(d)
	src, err := rng.New()
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Torrc: func() *config.Config { return cfg }, Now: now, Guards: gm, Rand: src})
}

var onionPurposes = []string{"HS_CLIENT_HSDIR", "HS_CLIENT_INTRO", "HS_CLIENT_REND",
	"HS_SERVICE_HSDIR", "HS_SERVICE_INTRO", "HS_SERVICE_REND"}

// TestOnionPathsUseLayer2Guards: the second hop of every onion-service
// circuit, on both sides, is one of the layer-2 guards, never the guard
// or the target; 4-hop circuits add a middle distinct from the guard, the
// layer-2 guard and the target.
func TestOnionPathsUseLayer2Guards(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	d := onionTestDir(now, 9, nil)
	m := newOnionManager(t, d, clock, &config.Config{})
	v := vanguards.New(vanguards.Options{Now: clock})
	v.SetConsensus(d)
	set := map[[20]byte]bool{}
	for _, g := range v.Guards() {
		set[g.ID] = true
	}
	if len(set) != vanguards.DefaultNumber {
		t.Fatalf("%d layer-2 guards", len(set))
	}
	unknown := Target{Hop: HopInfo(d.Nodes[0])} // a rendezvous point from INTRODUCE2 not in the consensus
	unknown.Hop.RSAID = [20]byte{0xEE}
	unknown.Hop.Addrs = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}
	seconds := map[[20]byte]int{}
	firsts := map[[20]byte]bool{}
	guardIsTarget := 0
	for _, purpose := range onionPurposes {
		want := 4
		if purpose == "HS_CLIENT_REND" {
			want = 3
		}
		for i := range 300 {
			tg := TargetNode(d.Nodes[i%len(d.Nodes)])
			if i%10 == 9 {
				tg = unknown
			}
			hops, h, err := m.onionPath(d, tg, Options{Purpose: purpose, Layer2: v})
			if err != nil {
				t.Fatalf("%s to %s: %v", purpose, tg.Nickname, err)
			}
			h.Close()
			if len(hops)+1 != want {
				t.Fatalf("%s: %d hops with the target, want %d", purpose, len(hops)+1, want)
			}
			g, l2 := hops[0], hops[1]
			firsts[g.Identity] = true
			if !set[l2.Identity] {
				t.Fatalf("%s: second hop %s is not a layer-2 guard", purpose, l2.Nickname)
			}
			seconds[l2.Identity]++
			if l2.Identity == g.Identity || l2.Identity == tg.Hop.RSAID {
				t.Fatalf("%s: layer-2 guard %s is the guard or the target", purpose, l2.Nickname)
			}
			if g.Identity == tg.Hop.RSAID {
				if want == 3 {
					t.Fatalf("%s: guard %s is the target of a 3-hop circuit (A-B-A)", purpose, g.Nickname)
				}
				guardIsTarget++
			}
			if want == 4 {
				mid := hops[2]
				if mid.Identity == g.Identity || mid.Identity == l2.Identity || mid.Identity == tg.Hop.RSAID {
					t.Fatalf("%s: middle %s repeats a hop", purpose, mid.Nickname)
				}
			}
		}
	}
	// Every layer-2 guard serves, but one that is also our guard (C tor
	// does not keep guards out of the set, only out of the circuit).
	for id := range set {
		if seconds[id] == 0 && !firsts[id] {
			t.Fatalf("layer-2 guard %X never used (guards %d)", id[0], len(firsts))
		}
	}
	// C tor lets the guard be the last hop of a 4-hop circuit (the target
	// learns nothing of our guard by being avoided).
	if guardIsTarget == 0 {
		t.Fatal("the guard was never allowed as the target of a 4-hop circuit")
	}
}

// TestOnionPathWithoutLayer2: vanguards-lite disabled by the consensus (or
// no Layer2): the second hop is any middle.
func TestOnionPathWithoutLayer2(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	d := onionTestDir(now, 9, map[string]int32{"vanguards-lite-enabled": 0})
	m := newOnionManager(t, d, clock, &config.Config{})
	v := vanguards.New(vanguards.Options{Now: clock})
	for _, l := range []Layer2{v, nil} {
		seconds := map[[20]byte]bool{}
		for i := range 300 {
			hops, h, err := m.onionPath(d, TargetNode(d.Nodes[i%9]), Options{Purpose: "HS_CLIENT_INTRO", Layer2: l})
			if err != nil {
				t.Fatal(err)
			}
			h.Close()
			seconds[hops[1].Identity] = true
		}
		if len(seconds) <= vanguards.DefaultNumber {
			t.Fatalf("Layer2 %v: second hops among only %d relays", l, len(seconds))
		}
	}
}

// TestOnionPathExcludes: ExcludeNodes keeps a relay out of the layer-2
// guards and of the middles; no usable layer-2 guard is an error.
func TestOnionPathExcludes(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	d := onionTestDir(now, 9, map[string]int32{"guard-hs-l2-number": 1})
	excluded := d.Nodes[4].Identity
	cfg := &config.Config{ExcludeNodes: config.NodeList{{Kind: config.NodeFingerprint, Fingerprint: excluded}}}
	m := newOnionManager(t, d, clock, cfg)
	v := vanguards.New(vanguards.Options{Now: clock, Exclude: ExcludedNode(func() *config.Config { return cfg })})
	v.SetConsensus(d)
	// The only layer-2 guard must not be our guard for this test.
	primary, h, err := m.cfg.Guards.Pick(guard.ForCircuit, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	for try := 0; v.Guards()[0].ID == primary.Identity; try++ {
		if try == 100 {
			t.Fatal("the layer-2 guard is always our guard")
		}
		v.Purge()
	}
	only := v.Guards()[0].ID
	if only == excluded {
		t.Fatal("excluded relay chosen as a layer-2 guard")
	}
	for i := range 200 {
		hops, h, err := m.onionPath(d, TargetNode(d.Nodes[i%9]), Options{Purpose: "HS_SERVICE_REND", Layer2: v})
		if d.Nodes[i%9].Identity == only {
			// The only layer-2 guard is the target: no path.
			if !errors.Is(err, vanguards.ErrNoLayer2Guard) {
				t.Fatalf("target is the only layer-2 guard: err = %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		for _, n := range hops[1:] {
			if n.Identity == excluded {
				t.Fatalf("excluded relay used as hop")
			}
		}
		if hops[1].Identity != only {
			t.Fatalf("second hop %s is not the layer-2 guard", hops[1].Nickname)
		}
	}
}
