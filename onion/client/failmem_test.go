package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"tinytor/onion/desc"
	"tinytor/tor/cell"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/event"
	"tinytor/tor/path"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)} }

func authKey(b byte) ed25519.PublicKey {
	k := make(ed25519.PublicKey, ed25519.PublicKeySize)
	k[0] = b
	return k
}

func TestIntroFailureUsable(t *testing.T) {
	clk := newClock()
	m := newFailMemory(clk.Now, false)
	var svc, other [32]byte
	svc[0], other[0] = 1, 2
	ips := []desc.IntroPoint{{AuthKey: authKey(1)}, {AuthKey: authKey(2)}, {AuthKey: authKey(3)}, {AuthKey: authKey(4)}}
	usable := func(s [32]byte) []byte {
		var out []byte
		for _, ip := range m.usableIntros(s, ips) {
			out = append(out, ip.AuthKey[0])
		}
		return out
	}

	m.noteIntro(svc, authKey(1), IntroFailedGeneric)
	m.noteIntro(svc, authKey(2), IntroFailedTimeout)
	for range maxIntroUnreachable - 1 {
		m.noteIntro(svc, authKey(3), IntroFailedUnreachable)
	}
	if got := usable(svc); string(got) != "\x03\x04" {
		t.Fatalf("usable after a NACK, a timeout and %d unreachable: %v, want [3 4]", maxIntroUnreachable-1, got)
	}
	m.noteIntro(svc, authKey(3), IntroFailedUnreachable)
	if got := usable(svc); string(got) != "\x04" {
		t.Fatalf("usable after %d unreachable: %v, want [4]", maxIntroUnreachable, got)
	}
	if got := usable(other); len(got) != 4 {
		t.Fatalf("another service's introduction points: %v usable, want all 4", got)
	}

	// The state expires 2 minutes after its first failure.
	clk.Advance(introFailureMaxAge - time.Second)
	if got := usable(svc); len(got) != 1 {
		t.Fatalf("before the state expires: %v usable, want 1", got)
	}
	clk.Advance(time.Second)
	if got := usable(svc); len(got) != 4 {
		t.Fatalf("after %s: %v usable, want all 4", introFailureMaxAge, got)
	}

	m.noteIntro(svc, authKey(1), IntroFailedGeneric)
	m.noteIntro(other, authKey(1), IntroFailedGeneric)
	m.forgetIntros(svc)
	if len(usable(svc)) != 4 || len(usable(other)) != 3 {
		t.Fatal("forgetIntros forgot the wrong service")
	}
	m.purge()
	if len(usable(other)) != 4 {
		t.Fatal("purge kept a failure")
	}
}

func TestHSDirFailureMemory(t *testing.T) {
	for _, testing_ := range []bool{false, true} {
		clk := newClock()
		m := newFailMemory(clk.Now, testing_)
		period := hsdirRequeryPeriod
		if testing_ {
			period = hsdirRequeryPeriodTesting
		}
		var nodes []*path.Node
		for i := range 4 {
			n := &path.Node{Relay: &dir.Relay{Nickname: string(rune('a' + i))}}
			n.Identity[0] = byte(i + 1)
			nodes = append(nodes, n)
		}
		b1, b2 := authKey(1), authKey(2)
		m.noteHSDirFailed(b1, nodes[0].Identity)
		m.noteHSDirFailed(b1, nodes[2].Identity)
		if got := m.askable(b1, nodes); len(got) != 2 || got[0] != nodes[1] || got[1] != nodes[3] {
			t.Fatalf("testing=%v: askable %v, want b and d", testing_, got)
		}
		if got := m.askable(b2, nodes); len(got) != 4 {
			t.Fatalf("testing=%v: another descriptor: %d askable, want 4", testing_, len(got))
		}
		clk.Advance(period - time.Millisecond)
		if got := m.askable(b1, nodes); len(got) != 2 {
			t.Fatalf("testing=%v: %d askable before the requery period ends, want 2", testing_, len(got))
		}
		clk.Advance(time.Millisecond)
		if got := m.askable(b1, nodes); len(got) != 4 {
			t.Fatalf("testing=%v: %d askable after the requery period, want 4", testing_, len(got))
		}
		m.noteHSDirFailed(b1, nodes[0].Identity)
		m.noteHSDirFailed(b2, nodes[0].Identity)
		m.hsdirsSucceeded(b1)
		if len(m.askable(b1, nodes)) != 4 || len(m.askable(b2, nodes)) != 3 {
			t.Fatalf("testing=%v: a successful fetch cleared the wrong descriptor's failures", testing_)
		}
	}
}

// countingNet is a Network whose every circuit build fails, counting the
// builds per purpose and target.
type countingNet struct {
	view *path.Dir
	mu   sync.Mutex
	n    map[string]int // "purpose target" -> builds
}

func (n *countingNet) NetworkView() *path.Dir { return n.view }

func (n *countingNet) BuildCircuitTo(_ context.Context, t circmgr.Target, o circmgr.Options) (*circuit.Circuit, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.n[o.Purpose+" "+t.Nickname]++
	return nil, errors.New("unreachable (test)")
}

func (n *countingNet) take() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.n
	n.n = map[string]int{}
	return m
}

func TestDescriptorFetchSkipsFailedHSDirs(t *testing.T) {
	clk := newClock()
	netw := &countingNet{view: testView(t, 9), n: map[string]int{}}
	bus := &event.Bus{}
	var reasons []string
	var mu sync.Mutex
	bus.Subscribe(func(e event.Event) {
		if h, ok := e.(*event.HSDesc); ok && h.Action == "FAILED" {
			mu.Lock()
			reasons = append(reasons, h.Reason)
			mu.Unlock()
		}
	})
	c, err := New(Config{Net: netw, Testing: true, Now: clk.Now, Events: bus})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := newKey(t)
	if _, err := c.descriptor(context.Background(), a); err == nil {
		t.Fatal("fetched a descriptor from failing HSDirs")
	}
	first := netw.take()
	if len(first) != 6 {
		t.Fatalf("first fetch asked %d HSDirs (%v), want the 6 responsible ones once each", len(first), first)
	}
	for k, v := range first {
		if v != 1 {
			t.Errorf("%s asked %d times", k, v)
		}
	}

	// Within the requery period, no HSDir is asked again.
	_, err = c.descriptor(context.Background(), a)
	var oe *Error
	if !errors.As(err, &oe) || oe.Kind != DescNotFound {
		t.Fatalf("second fetch: %v, want DescNotFound", err)
	}
	if got := netw.take(); len(got) != 0 {
		t.Fatalf("second fetch asked %v, want no HSDir", got)
	}
	mu.Lock()
	last := reasons[len(reasons)-1]
	mu.Unlock()
	if last != "QUERY_RATE_LIMITED" {
		t.Errorf("last HS_DESC FAILED reason %q, want QUERY_RATE_LIMITED", last)
	}

	// After it (5 s on a testing network), all are asked again.
	clk.Advance(hsdirRequeryPeriodTesting)
	if _, err := c.descriptor(context.Background(), a); err == nil {
		t.Fatal("fetched a descriptor from failing HSDirs")
	}
	if got := netw.take(); len(got) != 6 {
		t.Fatalf("after the requery period: %d HSDirs asked, want 6", len(got))
	}

	// NEWNYM forgets the failures.
	c.Purge()
	c.descriptor(context.Background(), a)
	if got := netw.take(); len(got) != 6 {
		t.Fatalf("after Purge: %d HSDirs asked, want 6", len(got))
	}
}

// introPoints returns n introduction points on distinct relays.
func introPoints(n int) []desc.IntroPoint {
	var ips []desc.IntroPoint
	for i := range n {
		var rsa [20]byte
		rsa[0] = byte(0xA0 + i)
		ap := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(6000+i))
		ips = append(ips, desc.IntroPoint{
			LinkSpecs: []cell.LinkSpec{cell.LinkSpecAddr(ap), cell.LinkSpecRSAID(rsa)},
			AuthKey:   authKey(byte(0xA0 + i)),
		})
	}
	return ips
}

func TestIntroductionSkipsFailedIntroPoints(t *testing.T) {
	clk := newClock()
	netw := &countingNet{view: testView(t, 9), n: map[string]int{}}
	c, err := New(Config{Net: netw, Testing: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := newKey(t)
	d := &desc.Descriptor{Inner: &desc.Inner{IntroPoints: introPoints(3)}}
	names := make([]string, 3)
	for i, ip := range d.Inner.IntroPoints {
		tg, err := introTarget(&ip)
		if err != nil {
			t.Fatal(err)
		}
		names[i] = "HS_CLIENT_INTRO " + tg.Nickname
	}
	m := &rendezvous{} // never reached: every introduction circuit fails

	// Two of the three introduction points refused (NACK) lately.
	c.fails.noteIntro(a.Key, d.Inner.IntroPoints[0].AuthKey, IntroFailedGeneric)
	c.fails.noteIntro(a.Key, d.Inner.IntroPoints[1].AuthKey, IntroFailedTimeout)
	if _, err := c.rendezvous(context.Background(), a, d, m, false); err == nil {
		t.Fatal("introduced through failing circuits")
	}
	got := netw.take()
	if got[names[0]] != 0 || got[names[1]] != 0 || got[names[2]] != maxIntroCircuitRetries {
		t.Fatalf("builds %v: want only the third introduction point, %d times", got, maxIntroCircuitRetries)
	}

	// The third was unreachable 3 times; 2 more make it unusable.
	c.rendezvous(context.Background(), a, d, m, false)
	if got := netw.take(); got[names[2]] != maxIntroUnreachable-maxIntroCircuitRetries {
		t.Fatalf("builds %v: want the third introduction point tried until its %dth failure", got, maxIntroUnreachable)
	}

	// None is usable: fail at once, so that the caller fetches the
	// descriptor again.
	_, err = c.rendezvous(context.Background(), a, d, m, false)
	var oe *Error
	if !errors.As(err, &oe) || oe.Kind != IntroFailed {
		t.Fatalf("with no usable introduction point: %v, want IntroFailed", err)
	}
	if got := netw.take(); len(got) != 0 {
		t.Fatalf("with no usable introduction point, built %v", got)
	}

	// With a descriptor just fetched again, the failures are forgotten
	// and every introduction point is tried.
	c.rendezvous(context.Background(), a, d, m, true)
	if got := netw.take(); len(got) != 3 {
		t.Fatalf("with a fresh descriptor, built %v, want all 3 introduction points", got)
	}
}

// cbtNet is a Network with a circuit build timeout.
type cbtNet struct {
	countingNet
	cbt time.Duration
}

func (n *cbtNet) CircuitBuildTimeout() (time.Duration, bool) { return n.cbt, true }

func TestIntroWaits(t *testing.T) {
	for _, tc := range []struct {
		cbt       time.Duration
		ack, rend time.Duration
	}{
		{1500 * time.Millisecond, 4500 * time.Millisecond, 5500 * time.Millisecond},
		{5 * time.Second, 5*time.Second*14/6 + time.Second, 16 * time.Second},
		{60 * time.Second, introAckTimeout, rendTimeout},
		{0, introAckTimeout, rendTimeout},
	} {
		c, err := New(Config{Net: &cbtNet{cbt: tc.cbt}})
		if err != nil {
			t.Fatal(err)
		}
		ack, rend := c.introWaits()
		if ack != tc.ack || rend != tc.rend {
			t.Errorf("build timeout %s: waits %s and %s, want %s and %s", tc.cbt, ack, rend, tc.ack, tc.rend)
		}
		c.Close()
	}
	c, _ := New(Config{Net: noNetwork(t)})
	defer c.Close()
	if ack, rend := c.introWaits(); ack != introAckTimeout || rend != rendTimeout {
		t.Errorf("without a build timeout: %s and %s", ack, rend)
	}
}

func TestOrderIntrosFailedLast(t *testing.T) {
	clk := newClock()
	m := newFailMemory(clk.Now, false)
	var svc [32]byte
	ips := []desc.IntroPoint{{AuthKey: authKey(1)}, {AuthKey: authKey(2)}, {AuthKey: authKey(3)}}
	m.noteIntro(svc, authKey(1), IntroFailedUnreachable)
	m.noteIntro(svc, authKey(1), IntroFailedUnreachable)
	m.noteIntro(svc, authKey(2), IntroFailedUnreachable)
	m.orderIntros(svc, ips)
	if ips[0].AuthKey[0] != 3 || ips[1].AuthKey[0] != 2 || ips[2].AuthKey[0] != 1 {
		t.Fatalf("order %d %d %d, want 3 2 1", ips[0].AuthKey[0], ips[1].AuthKey[0], ips[2].AuthKey[0])
	}
}

func TestSecondConnectionTriesFreshIntroFirst(t *testing.T) {
	// Two of three introduction points unreachable: after a first
	// connection, a second one starts with the third.
	clk := newClock()
	netw := &countingNet{view: testView(t, 9), n: map[string]int{}}
	c, err := New(Config{Net: netw, Testing: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := newKey(t)
	d := &desc.Descriptor{Inner: &desc.Inner{IntroPoints: introPoints(3)}}
	// First connection: as if the first two were found unreachable once
	// each and the third never tried.
	c.fails.noteIntro(a.Key, d.Inner.IntroPoints[0].AuthKey, IntroFailedUnreachable)
	c.fails.noteIntro(a.Key, d.Inner.IntroPoints[1].AuthKey, IntroFailedUnreachable)
	for i := 0; i < 20; i++ {
		var first string
		build := func(_ context.Context, tg circmgr.Target, o circmgr.Options) (*circuit.Circuit, error) {
			if first == "" {
				first = tg.Nickname
			}
			return nil, errors.New("stop here (test)")
		}
		c.cfg.Net = netFunc{view: func() *path.Dir { return netw.view }, build: build}
		ctx, cancel := context.WithCancel(context.Background())
		c.rendezvous(ctx, a, d, &rendezvous{}, false)
		cancel()
		want, _ := introTarget(&d.Inner.IntroPoints[2])
		if first != want.Nickname {
			t.Fatalf("try %d: the first introduction circuit went to %s, want %s (never failed)", i, first, want.Nickname)
		}
		c.fails.purge()
		c.fails.noteIntro(a.Key, d.Inner.IntroPoints[0].AuthKey, IntroFailedUnreachable)
		c.fails.noteIntro(a.Key, d.Inner.IntroPoints[1].AuthKey, IntroFailedUnreachable)
	}
}
