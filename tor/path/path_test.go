package path

import (
	"errors"
	"math/rand/v2"
	"testing"

	"tinytor/tor/dir"
)

func policy(t *testing.T, s string) *dir.PortPolicy {
	t.Helper()
	p, err := dir.ParsePortPolicy([][]byte{[]byte("accept"), []byte(s)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testDir makes n relays: 0..1 exits for port 80, every relay a guard, all
// in distinct /16s unless sameNet.
func testDir(t *testing.T, n int, sameNet bool) *Dir {
	c := &dir.Consensus{}
	mds := map[[32]byte]*dir.Microdesc{}
	for i := 0; i < n; i++ {
		r := dir.Relay{Bandwidth: uint32(100 * (i + 1)), ORPort: uint16(9000 + i)}
		r.Identity[0] = byte(i + 1)
		r.Microdesc[0] = byte(i + 1)
		r.Addr = [4]byte{10, byte(i), 0, 1}
		if sameNet {
			r.Addr = [4]byte{127, 0, 0, 1}
		}
		r.Flags = dir.FlagRunning | dir.FlagValid | dir.FlagGuard | dir.FlagFast
		md := &dir.Microdesc{Digest: r.Microdesc, HasNtorKey: true}
		if i < 2 {
			r.Flags |= dir.FlagExit
			md.Policy = policy(t, "80,443")
		}
		c.Relays = append(c.Relays, r)
		mds[r.Microdesc] = md
	}
	return NewDir(c, mds)
}

func TestChooseObeysRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := testDir(t, 6, false)
	opts := &Options{EnforceDistinctSubnets: true}
	for i := 0; i < 200; i++ {
		p, err := d.Choose(rng, opts, nil, 80)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 3 {
			t.Fatalf("path of %d hops", len(p))
		}
		if !CanExitTo(p[2], 80) {
			t.Fatalf("exit %x cannot reach port 80", p[2].Identity[0])
		}
		if !p[0].Flags.Has(dir.FlagGuard) {
			t.Fatalf("guard lacks the Guard flag")
		}
		for a := 0; a < 3; a++ {
			for b := a + 1; b < 3; b++ {
				if Related(p[a], p[b], true) {
					t.Fatalf("hops %d and %d related: %x %x", a, b, p[a].Identity[0], p[b].Identity[0])
				}
			}
		}
	}
	if _, err := d.Choose(rng, opts, nil, 22); !errors.Is(err, ErrNoCandidates) {
		t.Fatalf("port 22 path: err = %v, want ErrNoCandidates", err)
	}
}

func TestSubnetRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d := testDir(t, 6, true)
	if _, err := d.Choose(rng, &Options{EnforceDistinctSubnets: true}, nil, 80); !errors.Is(err, ErrNoCandidates) {
		t.Fatalf("all relays in one /16 with the rule: err = %v", err)
	}
	if _, err := d.Choose(rng, &Options{EnforceDistinctSubnets: false}, nil, 80); err != nil {
		t.Fatalf("without the rule (TestingTorNetwork): %v", err)
	}
}

func TestFamilyIsMutual(t *testing.T) {
	d := testDir(t, 3, false)
	a, b := d.Nodes[0], d.Nodes[1]
	a.MD.Family = &dir.Family{IDs: [][20]byte{b.Identity}}
	if Related(a, b, false) {
		t.Fatal("one-sided family declaration counted")
	}
	b.MD.Family = &dir.Family{IDs: [][20]byte{a.Identity}}
	if !Related(a, b, false) {
		t.Fatal("mutual family not counted")
	}
}

func TestPickWeighted(t *testing.T) {
	d := testDir(t, 4, false)
	d.Consensus.BandwidthWeights = map[string]int32{"Wmg": 10000, "Wmm": 10000, "Wme": 0, "Wmd": 0}
	rng := rand.New(rand.NewPCG(5, 6))
	counts := map[byte]int{}
	for i := 0; i < 10000; i++ {
		n, err := Pick(rng, d.Consensus, d.Nodes, Middle)
		if err != nil {
			t.Fatal(err)
		}
		counts[n.Identity[0]]++
	}
	// Exits (1, 2) have Wme=Wmd=0 in the middle; relays 3 and 4 have
	// bandwidth 300 and 400: expect about 3:4.
	if counts[1]+counts[2] != 0 {
		t.Fatalf("zero-weight exits picked: %v", counts)
	}
	ratio := float64(counts[3]) / float64(counts[4])
	if ratio < 0.65 || ratio > 0.85 {
		t.Fatalf("weights 300:400 gave %v (ratio %.2f)", counts, ratio)
	}
	// All weights zero: uniform.
	d.Consensus.BandwidthWeights = map[string]int32{"Wmg": 0, "Wmm": 0, "Wme": 0, "Wmd": 0}
	clear(counts)
	for i := 0; i < 4000; i++ {
		n, _ := Pick(rng, d.Consensus, d.Nodes, Middle)
		counts[n.Identity[0]]++
	}
	for id := byte(1); id <= 4; id++ {
		if counts[id] < 800 {
			t.Fatalf("uniform fallback uneven: %v", counts)
		}
	}
}

func TestEnoughDirInfo(t *testing.T) {
	d := testDir(t, 6, false)
	mds := map[[32]byte]*dir.Microdesc{}
	if EnoughDirInfo(d.Consensus, mds, 0.6) {
		t.Fatal("enough with no microdescriptors")
	}
	for _, n := range d.Nodes {
		mds[n.Microdesc] = n.MD
	}
	if !EnoughDirInfo(d.Consensus, mds, 0.6) {
		t.Fatal("not enough with all microdescriptors")
	}
}
