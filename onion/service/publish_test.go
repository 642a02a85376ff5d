package service

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"tinytor/onion/hsdir"
	"tinytor/onion/ring"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/path"
)

// recNet is a Network with a fixed view whose circuits all fail; it
// records which relays circuits were asked for.
type recNet struct {
	view *path.Dir
	mu   sync.Mutex
	asks map[[20]byte]int
	ask  chan struct{} // one value per HSDir circuit asked for
	// intro receives the relays introduction circuits were asked for
	// (nil: not recorded).
	intro chan [20]byte
	// rend receives the relays rendezvous circuits were asked for.
	rend chan [20]byte
}

func (r *recNet) NetworkView() *path.Dir { return r.view }
func (r *recNet) BuildCircuitTo(_ context.Context, t circmgr.Target, o circmgr.Options) (*circuit.Circuit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.Purpose == "HS_SERVICE_HSDIR" {
		r.asks[t.Hop.RSAID]++
		r.ask <- struct{}{}
	}
	if o.Purpose == "HS_SERVICE_REND" && r.rend != nil {
		r.rend <- t.Hop.RSAID
	}
	if o.Purpose == "HS_SERVICE_INTRO" && r.intro != nil {
		r.intro <- t.Hop.RSAID
	}
	return nil, errors.New("recNet builds no circuits")
}

func (r *recNet) take() map[[20]byte]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.asks
	r.asks = map[[20]byte]int{}
	return a
}

// testView is a network of 12 HSDirs with a live consensus at va.
func testView(va time.Time) *path.Dir {
	c := &dir.Consensus{ValidAfter: va, FreshUntil: va.Add(time.Hour), ValidUntil: va.Add(3 * time.Hour)}
	mds := map[[32]byte]*dir.Microdesc{}
	pr, err := dir.ParseProtocols("HSDir=1-2 HSIntro=4-5 HSRend=1-2")
	if err != nil {
		panic(err)
	}
	for i := range 12 {
		r := dir.Relay{Nickname: "hsdir", Flags: dir.FlagHSDir | dir.FlagRunning | dir.FlagValid, Protocols: &pr}
		r.Identity[0], r.Microdesc[0] = byte(i+1), byte(i+1)
		c.Relays = append(c.Relays, r)
		md := &dir.Microdesc{HasNtorKey: true, HasEd25519: true}
		md.Ed25519ID[0], md.Ed25519ID[1] = byte(i+1), 0x55
		mds[r.Microdesc] = md
	}
	return path.NewDir(c, mds)
}

// TestPublishSchedule checks when descriptors go to which HSDirs: both
// descriptors to every responsible HSDir at first, nothing more while
// nothing changes, everything again when the introduction points change
// or when the republication time comes, with growing revision counters.
func TestPublishSchedule(t *testing.T) {
	va := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	now := va.Add(10 * time.Minute)
	rn := &recNet{view: testView(va), asks: map[[20]byte]int{}, ask: make(chan struct{}, 1000)}
	s, err := New(rn, Options{Config: testConfig(filepath.Join(t.TempDir(), "hs")), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); s.wg.Wait() }()

	// Responsible HSDirs of both descriptors, as ring computes them.
	p, srvs, err := s.timeParams(rn.view)
	if err != nil {
		t.Fatal(err)
	}
	first, second := ring.Store(p, va, srvs)
	want := map[[20]byte]int{}
	for _, u := range []ring.Use{first, second} {
		bk := s.id.Blind(u.Period, p.LengthMinutes)
		for _, n := range ring.Responsible(hsdir.Ring(rn.view), bk.Public(), u, p.LengthMinutes, 2, 4) {
			want[n.RSAID]++
		}
	}

	s.maybePublish(ctx)
	s.wg.Wait()
	if got := rn.take(); len(got) != 0 {
		t.Fatalf("published without introduction points: %v", got)
	}
	for i := range s.opts.Config.NumIntroductionPoints {
		ip, err := newIntroPoint(rn.view.Nodes[i], now, s.rng)
		if err != nil {
			t.Fatal(err)
		}
		ip.established = true
		s.intros = append(s.intros, ip)
	}
	check := func(what string, wantAsks map[[20]byte]int) {
		t.Helper()
		s.maybePublish(ctx)
		total := 0
		for _, v := range wantAsks {
			total += v
		}
		timeout := time.After(10 * time.Second)
		for range total {
			select {
			case <-rn.ask:
			case <-timeout:
				t.Fatalf("%s: uploads did not start", what)
			}
		}
		got := rn.take()
		if len(got) != len(wantAsks) {
			t.Fatalf("%s: uploads to %d HSDirs, want %d", what, len(got), len(wantAsks))
		}
		for id, k := range wantAsks {
			if got[id] != k {
				t.Fatalf("%s: %d uploads to %x, want %d", what, got[id], id[:2], k)
			}
		}
	}
	check("first publication", want)
	revisions := func() map[[32]byte]uint64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		m := map[[32]byte]uint64{}
		for k, v := range s.pub.lastRev {
			m[k] = v
		}
		return m
	}
	revs := revisions()
	if len(revs) != 2 {
		t.Fatalf("%d revision counters, want 2 (one per descriptor)", len(revs))
	}
	check("nothing changed", nil)

	now = now.Add(time.Second)
	s.mu.Lock()
	s.version++
	s.mu.Unlock()
	check("introduction points changed", want)
	for k, v := range revisions() {
		if v <= revs[k] {
			t.Fatalf("revision counter did not grow: %d then %d", revs[k], v)
		}
		revs[k] = v
	}

	now = now.Add(republishMax + time.Minute)
	check("republication time", want)
	for k, v := range revisions() {
		if v <= revs[k] {
			t.Fatalf("revision counter did not grow on schedule: %d then %d", revs[k], v)
		}
	}
}
