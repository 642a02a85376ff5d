package ring

import (
	"bytes"
	"crypto/rand"
	"crypto/sha3"
	"math/big"
	"sort"
	"testing"
	"time"

	"tinytor/onion/keys"
)

// C tor test_hs_common.c test_disaster_srv builds the input by hand.
func TestDisasterSRV(t *testing.T) {
	want := sha3.Sum256([]byte("shared-random-disaster\x00\x00\x00\x00\x00\x00\x05\xA0\x00\x00\x00\x00\x00\x00\x00\x01"))
	if DisasterSRV(1, 1440) != want {
		t.Fatal("disaster SRV differs from C tor's construction")
	}
	if DisasterSRV(2, 1440) == want {
		t.Fatal("disaster SRV ignores the period")
	}
}

func TestIndexLayouts(t *testing.T) {
	var id, srv [32]byte
	id[0], srv[0] = 1, 2
	b := append([]byte("node-idx"), id[:]...)
	b = append(b, srv[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0, 0x42, 0x07, 0, 0, 0, 0, 0, 0, 0x05, 0xA0)
	if HSDirIndex(id, srv, 16903, 1440) != sha3.Sum256(b) {
		t.Error("hsdir index layout")
	}
	bl := bytes.Repeat([]byte{3}, 32)
	b = append([]byte("store-at-idx"), bl...)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x05, 0xA0, 0, 0, 0, 0, 0, 0, 0x42, 0x07)
	if HSIndex(2, bl, 16903, 1440) != sha3.Sum256(b) {
		t.Error("hs index layout")
	}
}

func TestFetchStore(t *testing.T) {
	p := keys.LivePeriods()
	cur, prev := [32]byte{1}, [32]byte{2}
	srvs := SRVs{Current: &cur, Previous: &prev}
	// 13:00, after TP#1 began at 12:00: rend-spec 2.2.4 examples.
	at13 := time.Date(2016, 4, 13, 13, 0, 0, 0, time.UTC)
	tp := p.Num(at13)
	if u := Fetch(p, at13, srvs); u != (Use{tp, cur}) {
		t.Errorf("fetch at 13:00 = %+v", u)
	}
	f, s := Store(p, at13, srvs)
	if f != (Use{tp - 1, prev}) || s != (Use{tp, cur}) {
		t.Errorf("store at 13:00 = %+v %+v", f, s)
	}
	// 01:00, after SRV#2: client uses TP#1 and SRV#1 (now the previous).
	at01 := time.Date(2016, 4, 14, 1, 0, 0, 0, time.UTC)
	if p.Num(at01) != tp {
		t.Fatal("01:00 next day should still be in the same period")
	}
	if u := Fetch(p, at01, srvs); u != (Use{tp, prev}) {
		t.Errorf("fetch at 01:00 = %+v", u)
	}
	f, s = Store(p, at01, srvs)
	if f != (Use{tp, prev}) || s != (Use{tp + 1, cur}) {
		t.Errorf("store at 01:00 = %+v %+v", f, s)
	}
	// Disaster SRVs for the period each use is for.
	f, s = Store(p, at13, SRVs{})
	if f.SRV != DisasterSRV(tp-1, 1440) || s.SRV != DisasterSRV(tp, 1440) {
		t.Error("disaster SRVs in Store")
	}
	if u := Fetch(p, at01, SRVs{Current: &cur}); u.SRV != DisasterSRV(tp, 1440) {
		t.Error("missing previous SRV must give the disaster SRV")
	}
}

func randomNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		rand.Read(nodes[i].Ed25519ID[:])
		rand.Read(nodes[i].RSAID[:])
	}
	return nodes
}

// reference is a direct reading of rend-spec-v3 2.2.3: walk the ring
// clockwise from each hs_index by distance.
func reference(nodes []Node, blinded []byte, u Use, m uint64, replicas, spread int) []Node {
	mod := new(big.Int).Lsh(big.NewInt(1), 256)
	var out []Node
	chosen := map[[32]byte]bool{}
	for r := 1; r <= replicas; r++ {
		hs := HSIndex(uint64(r), blinded, u.Period, m)
		h := new(big.Int).SetBytes(hs[:])
		type d struct {
			dist *big.Int
			n    Node
		}
		var ds []d
		for _, n := range nodes {
			idx := HSDirIndex(n.Ed25519ID, u.SRV, u.Period, m)
			x := new(big.Int).Sub(new(big.Int).SetBytes(idx[:]), h)
			x.Mod(x, mod)
			ds = append(ds, d{x, n})
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].dist.Cmp(ds[j].dist) < 0 })
		added := 0
		for _, e := range ds {
			if added == spread {
				break
			}
			if !chosen[e.n.Ed25519ID] {
				chosen[e.n.Ed25519ID] = true
				out = append(out, e.n)
				added++
			}
		}
	}
	return out
}

func TestResponsibleMatchesReference(t *testing.T) {
	for _, n := range []int{1, 3, 8, 9, 50, 500} {
		nodes := randomNodes(n)
		id, _ := keys.GenerateKey()
		bl := id.Blind(20000, 1440).Public()
		u := Use{20000, [32]byte{9}}
		for _, spread := range []int{3, 4} {
			got := Responsible(nodes, bl, u, 1440, 2, spread)
			want := reference(nodes, bl, u, 1440, 2, spread)
			if len(got) != len(want) {
				t.Fatalf("n=%d spread=%d: %d nodes, want %d", n, spread, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("n=%d spread=%d: node %d differs", n, spread, i)
				}
			}
			if max := 2 * spread; n >= max && len(got) != max {
				t.Errorf("n=%d: %d nodes, want %d", n, len(got), max)
			}
		}
	}
	if Responsible(nil, make([]byte, 32), Use{}, 1440, 2, 3) != nil {
		t.Error("empty ring")
	}
}

// On one consensus, the HSDirs a client fetches from are among those the
// service uploaded the matching descriptor to.
func TestClientFindsService(t *testing.T) {
	p, _ := keys.PeriodsFor(20*time.Second, true, 0)
	nodes := randomNodes(9)
	id, _ := keys.GenerateKey()
	cur, prev := [32]byte{5}, [32]byte{6}
	srvs := SRVs{Current: &cur, Previous: &prev}
	start := time.Unix(1700000000, 0).Truncate(20 * time.Second)
	for i := 0; i < 48; i++ {
		va := start.Add(time.Duration(i) * 20 * time.Second)
		fu := Fetch(p, va, srvs)
		first, second := Store(p, va, srvs)
		var su Use
		switch fu {
		case first:
			su = first
		case second:
			su = second
		default:
			t.Fatalf("at %v fetch %+v matches neither upload %+v %+v", va, fu, first, second)
		}
		bl := id.Blind(fu.Period, p.LengthMinutes).Public()
		fetch := Responsible(nodes, bl, fu, p.LengthMinutes, 2, 3)
		store := map[[32]byte]bool{}
		for _, n := range Responsible(nodes, id.Blind(su.Period, p.LengthMinutes).Public(), su, p.LengthMinutes, 2, 4) {
			store[n.Ed25519ID] = true
		}
		if len(store) != 8 {
			t.Errorf("store set of %d nodes on a 9-node ring", len(store))
		}
		for _, n := range fetch {
			if !store[n.Ed25519ID] {
				t.Fatalf("at %v a fetch HSDir is not a store HSDir", va)
			}
		}
	}
}

func TestParamsFrom(t *testing.T) {
	got := ParamsFrom(func(name string, def, min, max int32) int32 {
		if name == "hsdir_spread_store" {
			return 5
		}
		return def
	})
	if got != (Params{2, 3, 5}) || DefaultParams() != (Params{2, 3, 4}) {
		t.Errorf("params %+v", got)
	}
}
