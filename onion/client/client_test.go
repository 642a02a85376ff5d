package client

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"tinytor/onion/addr"
	"tinytor/onion/desc"
	"tinytor/onion/keys"
	"tinytor/onion/ring"
	"tinytor/tor"
	"tinytor/tor/cell"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/path"
)

// netFunc is a Network for tests.
type netFunc struct {
	view  func() *path.Dir
	build func(ctx context.Context, t circmgr.Target, o circmgr.Options) (*circuit.Circuit, error)
}

func (n netFunc) NetworkView() *path.Dir { return n.view() }
func (n netFunc) BuildCircuitTo(ctx context.Context, t circmgr.Target, o circmgr.Options) (*circuit.Circuit, error) {
	return n.build(ctx, t, o)
}

// noNetwork fails the test if the client touches the network.
func noNetwork(t *testing.T) Network {
	return netFunc{
		view: func() *path.Dir { t.Error("NetworkView called"); return nil },
		build: func(context.Context, circmgr.Target, circmgr.Options) (*circuit.Circuit, error) {
			t.Error("BuildCircuitTo called")
			return nil, errors.New("no network")
		},
	}
}

func newKey(t *testing.T) addr.Address {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := addr.FromKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBadAddressWithoutNetwork(t *testing.T) {
	c, err := New(Config{Net: noNetwork(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := newKey(t).String()
	bad := []byte(good)
	bad[5] ^= 'a' ^ 'b'
	if bad[5] == good[5] {
		t.Fatal("mistyping failed")
	}
	for _, h := range []string{string(bad), "short.onion", good[:55] + "1.onion", "x" + good} {
		_, err := c.Dial(context.Background(), h, 80, nil)
		var oe *Error
		if !errors.As(err, &oe) || oe.Kind != BadAddress {
			t.Errorf("Dial(%q): %v, want a BadAddress error", h, err)
			continue
		}
		if !errors.Is(err, addr.ErrChecksum) && !errors.Is(err, addr.ErrLength) && !errors.Is(err, addr.ErrBase32) && !errors.Is(err, addr.ErrVersion) && !errors.Is(err, addr.ErrKey) {
			t.Errorf("Dial(%q): %v does not wrap an addr error", h, err)
		}
	}
}

func TestNotBootstrapped(t *testing.T) {
	c, err := New(Config{Net: netFunc{
		view: func() *path.Dir { return nil },
		build: func(context.Context, circmgr.Target, circmgr.Options) (*circuit.Circuit, error) {
			t.Error("BuildCircuitTo called")
			return nil, errors.New("no")
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Dial(context.Background(), newKey(t).String(), 80, "iso")
	if !errors.Is(err, tor.ErrNotBootstrapped) {
		t.Fatalf("Dial before bootstrap: %v", err)
	}
	// The failed rendezvous entry is gone: no slot leaks.
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rends) != 0 {
		t.Fatalf("%d rendezvous entries left after a failure", len(c.rends))
	}
}

func TestErrorKinds(t *testing.T) {
	for k := DescNotFound; k <= IntroTimeout; k++ {
		if k.String() == "" || k.String() == Kind(0).String() {
			t.Errorf("kind %d has no name", k)
		}
	}
	cause := errors.New("cause")
	var err error = &Error{Kind: IntroFailed, Addr: "x.onion", Err: cause}
	if !errors.Is(err, cause) || err.Error() != "onion service: introduction failed: cause" {
		t.Errorf("Error: %q", err)
	}
}

func TestFindAuthKey(t *testing.T) {
	d := t.TempDir()
	a, other := newKey(t), newKey(t)
	ka, _ := ecdh.X25519().GenerateKey(rand.Reader)
	ko, _ := ecdh.X25519().GenerateKey(rand.Reader)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(d, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if k, err := findAuthKey(d, a); k != nil || err != nil {
		t.Fatalf("empty dir: %v %v", k, err)
	}
	write("other.auth_private", keys.ClientAuthPrivateFile(other, ko))
	write("ignored.txt", []byte("garbage"))
	write("broken.auth_private", []byte("not a key file"))
	k, err := findAuthKey(d, a)
	if k != nil || err == nil {
		t.Fatalf("no key for a, one broken file: key %v, err %v", k, err)
	}
	write("mine.auth_private", keys.ClientAuthPrivateFile(a, ka))
	k, err = findAuthKey(d, a)
	if err != nil || k == nil || !k.Equal(ka) {
		t.Fatalf("key for a: %v %v", k, err)
	}
	if _, err := findAuthKey(filepath.Join(d, "missing"), a); err == nil {
		t.Fatal("missing directory: no error")
	}
}

func TestCacheRevisionCounter(t *testing.T) {
	c, err := New(Config{Net: noNetwork(t)})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(rev uint64) *desc.Descriptor {
		return &desc.Descriptor{Outer: &desc.Outer{RevisionCounter: rev, Lifetime: time.Hour, BlindedKey: make(ed25519.PublicKey, 32)}}
	}
	var bk [32]byte
	now := time.Unix(1_700_000_000, 0)
	d5 := mk(5)
	if got := c.store(bk, addr.Address{}, d5, now); got != d5 {
		t.Fatal("first store")
	}
	if got := c.store(bk, addr.Address{}, mk(4), now.Add(time.Minute)); got != d5 {
		t.Fatal("an older revision replaced a newer one")
	}
	d6 := mk(6)
	if got := c.store(bk, addr.Address{}, d6, now.Add(time.Minute)); got != d6 {
		t.Fatal("a newer revision was refused")
	}
	d1 := mk(1)
	if got := c.store(bk, addr.Address{}, d1, now.Add(2*time.Hour)); got != d1 {
		t.Fatal("an expired entry blocked a new descriptor")
	}
	c.forget(d6) // not the cached one: no effect
	if c.descs[bk].d != d1 {
		t.Fatal("forget dropped another descriptor")
	}
	c.forget(d1)
	if len(c.descs) != 0 {
		t.Fatal("forget kept the descriptor")
	}
}

func TestTargetFromLinkSpecs(t *testing.T) {
	var rsa [20]byte
	var ed [32]byte
	rsa[0], ed[0] = 1, 2
	ap := netip.MustParseAddrPort("127.0.0.1:5000")
	var key [32]byte
	key[0] = 9
	tg, err := targetFromLinkSpecs([]cell.LinkSpec{cell.LinkSpecAddr(ap), cell.LinkSpecRSAID(rsa), cell.LinkSpecEdID(ed), {Type: 77, Data: []byte{1}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Hop.RSAID != rsa || tg.Hop.Ed25519ID != ed || tg.Hop.NtorKey != key || len(tg.Hop.Addrs) != 1 || tg.Hop.Addrs[0] != ap {
		t.Fatalf("target %+v", tg)
	}
	for name, specs := range map[string][]cell.LinkSpec{
		"no identity": {cell.LinkSpecAddr(ap)},
		"no address":  {cell.LinkSpecRSAID(rsa)},
		"short rsa":   {cell.LinkSpecAddr(ap), {Type: cell.LinkSpecLegacyID, Data: rsa[:19]}},
		"short ed":    {cell.LinkSpecAddr(ap), cell.LinkSpecRSAID(rsa), {Type: cell.LinkSpecEd25519, Data: ed[:3]}},
		"bad ipv4":    {{Type: cell.LinkSpecIPv4, Data: []byte{1, 2}}, cell.LinkSpecRSAID(rsa)},
	} {
		if _, err := targetFromLinkSpecs(specs, key); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzTargetFromLinkSpecs(f *testing.F) {
	f.Add([]byte{2, 0, 6, 127, 0, 0, 1, 0x13, 0x88, 2, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add([]byte{1, 3, 32})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Link specifiers as they come out of a descriptor: type, then
		// a length-prefixed body.
		var specs []cell.LinkSpec
		if len(b) == 0 {
			return
		}
		n := int(b[0])
		b = b[1:]
		for i := 0; i < n && len(b) >= 2; i++ {
			l := int(b[1])
			if l > len(b)-2 {
				l = len(b) - 2
			}
			specs = append(specs, cell.LinkSpec{Type: cell.LinkSpecType(b[0]), Data: b[2 : 2+l]})
			b = b[2+l:]
		}
		tg, err := targetFromLinkSpecs(specs, [32]byte{})
		if err == nil && len(tg.Hop.Addrs) == 0 {
			t.Fatal("accepted a target without an address")
		}
	})
}

// testView builds a network view of n relays, all HSDirs except the
// first, which lacks the flag, and the second, which lacks HSDir=2.
func testView(t *testing.T, n int) *path.Dir {
	t.Helper()
	va := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	cons := &dir.Consensus{ValidAfter: va, FreshUntil: va.Add(20 * time.Second), ValidUntil: va.Add(time.Minute)}
	good, err := dir.ParseProtocols("HSDir=1-2 HSRend=1-2")
	if err != nil {
		t.Fatal(err)
	}
	old, _ := dir.ParseProtocols("HSDir=1 HSRend=1-2")
	mds := map[[32]byte]*dir.Microdesc{}
	for i := 0; i < n; i++ {
		r := dir.Relay{Nickname: "r" + string(rune('a'+i)), Addr: [4]byte{127, 0, 0, 1}, ORPort: uint16(5000 + i),
			Flags: dir.FlagRunning | dir.FlagValid | dir.FlagFast | dir.FlagStable | dir.FlagHSDir, Protocols: &good, Bandwidth: 1000}
		r.Identity[0], r.Microdesc[0] = byte(i+1), byte(i+1)
		if i == 0 {
			r.Flags &^= dir.FlagHSDir
		}
		if i == 1 {
			r.Protocols = &old
		}
		md := &dir.Microdesc{Digest: r.Microdesc, HasNtorKey: true, HasEd25519: true}
		md.Ed25519ID[0], md.Ed25519ID[1] = byte(i+1), 0xEE
		mds[r.Microdesc] = md
		cons.Relays = append(cons.Relays, r)
	}
	return path.NewDir(cons, mds)
}

func TestPlan(t *testing.T) {
	view := testView(t, 9)
	c, err := New(Config{Net: netFunc{view: func() *path.Dir { return view }}, Testing: true})
	if err != nil {
		t.Fatal(err)
	}
	a := newKey(t)
	pl, err := c.plan(a)
	if err != nil {
		t.Fatal(err)
	}
	// The test network's periods: 24 voting intervals of 20 s.
	p, _ := keys.PeriodsFor(20*time.Second, true, 0)
	u := ring.Fetch(p, view.Consensus.ValidAfter, ring.SRVs{})
	if pl.period != u.Period || u.SRV != ring.DisasterSRV(u.Period, p.LengthMinutes) {
		t.Fatalf("period %d, want %d with the disaster SRV", pl.period, u.Period)
	}
	wantBlinded, _ := keys.BlindPublic(a.PublicKey(), u.Period, p.LengthMinutes)
	if !pl.blinded.Equal(wantBlinded) {
		t.Fatal("blinded key differs")
	}
	if len(pl.hsdirs) != 6 {
		t.Fatalf("%d responsible HSDirs, want 2 replicas x 3", len(pl.hsdirs))
	}
	for _, n := range pl.hsdirs {
		if n.Identity[0] == 1 || n.Identity[0] == 2 {
			t.Errorf("relay %s cannot serve v3 descriptors but was chosen", n.Nickname)
		}
	}
	// Not testing: 1440-minute periods give another blinded key.
	c.cfg.Testing = false
	pl2, err := c.plan(a)
	if err != nil {
		t.Fatal(err)
	}
	if pl2.blinded.Equal(pl.blinded) {
		t.Fatal("TestingTorNetwork does not change the period length")
	}
}

func TestRendezvousPointChoice(t *testing.T) {
	view := testView(t, 9)
	var got []circmgr.Target
	c, err := New(Config{Net: netFunc{view: func() *path.Dir { return view },
		build: func(_ context.Context, tg circmgr.Target, o circmgr.Options) (*circuit.Circuit, error) {
			if o.Purpose != "HS_CLIENT_REND" || o.Control == nil {
				t.Errorf("rendezvous circuit options %+v", o)
			}
			got = append(got, tg)
			return nil, errors.New("refused by test")
		}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := c.buildRend(context.Background()); err == nil {
			t.Fatal("buildRend succeeded without a circuit")
		}
	}
	if len(got) != 20 {
		t.Fatalf("%d circuits asked for, want 20", len(got))
	}
	for _, tg := range got {
		if view.ByID(tg.Hop.RSAID) == nil || tg.Hop.NtorKey != view.ByID(tg.Hop.RSAID).MD.NtorOnionKey {
			t.Fatalf("rendezvous target %+v is not a relay of the view", tg)
		}
	}
}

func TestSetAuthDir(t *testing.T) {
	c, err := New(Config{Net: noNetwork(t)})
	if err != nil {
		t.Fatal(err)
	}
	a := newKey(t)
	if k, err := c.authKey(a); k != nil || err != nil {
		t.Fatalf("no auth dir: %v %v", k, err)
	}
	d := t.TempDir()
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if err := os.WriteFile(filepath.Join(d, "a.auth_private"), keys.ClientAuthPrivateFile(a, k), 0o600); err != nil {
		t.Fatal(err)
	}
	c.SetAuthDir(d)
	if got, err := c.authKey(a); err != nil || got == nil || !got.Equal(k) {
		t.Fatalf("after SetAuthDir: %v %v", got, err)
	}
}

func TestRendezvousGivesUp(t *testing.T) {
	view := testView(t, 9)
	builds := 0
	c, err := New(Config{Net: netFunc{view: func() *path.Dir { return view },
		build: func(context.Context, circmgr.Target, circmgr.Options) (*circuit.Circuit, error) {
			builds++ // calls are sequential: one build in flight at a time
			return nil, errors.New("refused by test")
		}}})
	if err != nil {
		t.Fatal(err)
	}
	m := c.newRendezvous(context.Background(), newKey(t))
	_, err = m.get()
	m.close(nil)
	var oe *Error
	if !errors.As(err, &oe) || oe.Kind != RendFailed {
		t.Fatalf("get: %v, want RendFailed", err)
	}
	if builds != maxRendAttempts {
		t.Fatalf("%d rendezvous circuits tried, want %d", builds, maxRendAttempts)
	}
}

func TestPurge(t *testing.T) {
	c, err := New(Config{Net: noNetwork(t)})
	if err != nil {
		t.Fatal(err)
	}
	var bk [32]byte
	c.store(bk, addr.Address{}, &desc.Descriptor{Outer: &desc.Outer{Lifetime: time.Hour}}, time.Now())
	// An entry still being built: retired, so it is closed as soon as
	// it is ready and never reused.
	e, owner, err := c.rendFor(rendKey{iso: "a"})
	if err != nil || !owner {
		t.Fatalf("rendFor: %v %v", owner, err)
	}
	c.Purge()
	if len(c.descs) != 0 || len(c.rends) != 0 {
		t.Fatalf("after Purge: %d descriptors, %d rendezvous entries", len(c.descs), len(c.rends))
	}
	if !e.retired {
		t.Fatal("Purge did not retire the rendezvous entry")
	}
	if e2, owner, _ := c.rendFor(rendKey{iso: "a"}); !owner || e2 == e {
		t.Fatal("a purged rendezvous entry was reused")
	}
}
