package client

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/onion/desc"
	"tinytor/onion/hscell"
	"tinytor/onion/hsntor"
	"tinytor/onion/pow"
	"tinytor/tor/cell"
	"tinytor/tor/torlog"
)

func TestPoWEffort(t *testing.T) {
	for _, c := range []struct {
		suggested   uint32
		unreachable int
		want        uint32
	}{
		{0, 0, 0},       // no proof of work
		{0, 1, 8},       // CLIENT_MIN_RETRY_POW_EFFORT after a failure
		{0, 3, 32},      // 8, 16, 32
		{5, 0, 5},       // the suggested effort
		{5, 1, 10},      // doubled
		{3, 2, 16},      // 6 -> 8, then 16
		{999, 1, 1998},  // doubles below 1000
		{1000, 1, 1500}, // times 1.5 from 1000
		{1000, 2, 2250},
		{9000, 1, MaxPoWEffort},
		{20000, 0, MaxPoWEffort}, // capped
		{20000, 5, MaxPoWEffort},
		{^uint32(0), 1, MaxPoWEffort},
	} {
		if got := PoWEffort(c.suggested, c.unreachable); got != c.want {
			t.Errorf("PoWEffort(%d, %d) = %d, want %d", c.suggested, c.unreachable, got, c.want)
		}
	}
}

// powDescriptor is a descriptor with pow-params v1 at effort and one
// introduction point whose keys the returned service holds.
func powDescriptor(t *testing.T, effort uint32) (*desc.Descriptor, *hsntor.Service) {
	t.Helper()
	authPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blinded, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := &desc.Descriptor{
		Outer: &desc.Outer{BlindedKey: blinded},
		Inner: &desc.Inner{PoW: &desc.PoWParams{SuggestedEffort: effort, Expires: time.Now().Add(time.Hour)}},
	}
	rand.Read(d.Inner.PoW.Seed[:])
	rand.Read(d.Subcredential[:])
	ip := desc.IntroPoint{AuthKey: authPub}
	copy(ip.EncKey[:], encKey.PublicKey().Bytes())
	d.Inner.IntroPoints = []desc.IntroPoint{ip}
	return d, &hsntor.Service{AuthKey: authPub, EncKey: encKey}
}

// TestPoWIntroduce1 builds an INTRODUCE1 as introduce does, with the
// solution of the descriptor's puzzle, and opens it as a service: the
// PoW extension (type 2) is in the encrypted part, and verifies against
// the descriptor's blinded key and seed at the suggested effort.
func TestPoWIntroduce1(t *testing.T) {
	var logBuf syncBuffer
	c, err := New(Config{Net: noNetwork(t), Log: torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logBuf})})
	if err != nil {
		t.Fatal(err)
	}
	a := newKey(t)
	d, svc := powDescriptor(t, 3)
	ip := &d.Inner.IntroPoints[0]

	in, ok := c.powInput(a.Key, d, ip)
	if !ok || in.Effort != 3 || in.Seed != d.Inner.PoW.Seed || !bytes.Equal(in.BlindedID[:], d.Outer.BlindedKey) {
		t.Fatalf("puzzle %+v, %v", in, ok)
	}
	ext, err := c.solvePoW(context.Background(), a.Host()[:8], in)
	if err != nil {
		t.Fatal(err)
	}
	if pow.ExtensionType != 2 || ext.Type != 2 || len(ext.Body) != pow.ExtensionLen {
		t.Fatalf("extension type %d, %d bytes", ext.Type, len(ext.Body))
	}
	if !strings.Contains(logBuf.String(), "Solved PoW with effort 3 in ") {
		t.Errorf("log: %q", logBuf.String())
	}

	hs, err := hsntor.NewClient(rand.Reader, ip.AuthKey, ip.EncKey, d.Subcredential)
	if err != nil {
		t.Fatal(err)
	}
	p := &hscell.IntroducePlaintext{
		Extensions:   []hscell.Extension{ext},
		OnionKeyType: hscell.OnionKeyTypeNtor,
		LinkSpecs:    []cell.LinkSpec{cell.LinkSpecAddr(netip.MustParseAddrPort("127.0.0.1:9001")), cell.LinkSpecRSAID([20]byte{1})},
	}
	body, err := hscell.BuildIntroduce1(hs, ip.AuthKey, p)
	if err != nil {
		t.Fatal(err)
	}
	// The PoW extension is encrypted: the bytes of the solution are not
	// in the cell.
	if bytes.Contains(body, ext.Body[1+pow.NonceLen+4+pow.SeedHeadLen:]) {
		t.Error("the solution is visible in the INTRODUCE1 body")
	}
	outer, _, got, err := hscell.OpenIntroduce2(body, svc, [][32]byte{d.Subcredential})
	if err != nil {
		t.Fatal(err)
	}
	if len(outer.Extensions) != 0 {
		t.Errorf("cleartext extensions %v, want none", outer.Extensions)
	}
	if len(got.Extensions) != 1 || got.Extensions[0].Type != pow.ExtensionType {
		t.Fatalf("encrypted extensions %+v", got.Extensions)
	}
	sol, err := pow.ParseExtension(got.Extensions[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if sol.Effort != 3 || !bytes.Equal(sol.SeedHead[:], d.Inner.PoW.Seed[:pow.SeedHeadLen]) {
		t.Errorf("solution effort %d seed head %x", sol.Effort, sol.SeedHead)
	}
	if err := pow.Verify(&in.BlindedID, &d.Inner.PoW.Seed, &sol); err != nil {
		t.Fatalf("the service rejects the solution: %v", err)
	}
	// The extension is C tor's encoding: version 1, nonce, effort
	// big-endian, seed head, solution.
	if ext.Body[0] != 1 || !bytes.Equal(ext.Body[1+pow.NonceLen:1+pow.NonceLen+4], []byte{0, 0, 0, 3}) {
		t.Errorf("extension %x", ext.Body)
	}
}

// TestPoWPolicy: no puzzle without pow-params or at effort 0; failures
// of an introduction point (unreachable ones, in the client's memory
// of failures) raise its effort only, and are forgotten after two
// minutes and on Purge.
func TestPoWPolicy(t *testing.T) {
	now := time.Unix(1800000000, 0)
	var logBuf syncBuffer
	c, err := New(Config{Net: noNetwork(t), Now: func() time.Time { return now },
		Log: torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logBuf})})
	if err != nil {
		t.Fatal(err)
	}
	a := newKey(t)
	d, _ := powDescriptor(t, 0)
	ip := &d.Inner.IntroPoints[0]
	if _, ok := c.powInput(a.Key, d, ip); ok {
		t.Error("a puzzle at suggested effort 0")
	}
	c.fails.noteIntro(a.Key, ip.AuthKey, IntroFailedUnreachable)
	c.fails.noteIntro(a.Key, ip.AuthKey, IntroFailedUnreachable)
	if in, ok := c.powInput(a.Key, d, ip); !ok || in.Effort != 16 {
		t.Errorf("after two failures: %+v %v, want effort 16", in, ok)
	}
	if !strings.Contains(logBuf.String(), "Increasing PoW effort from 0 to 16 after intro point unreachable_count=2") {
		t.Errorf("log: %q", logBuf.String())
	}
	other := *ip
	other.AuthKey = make(ed25519.PublicKey, 32)
	if _, ok := c.powInput(a.Key, d, &other); ok {
		t.Error("another introduction point inherited the failures")
	}
	// Other failures do not raise the effort.
	c.fails.noteIntro(a.Key, other.AuthKey, IntroFailedTimeout)
	if _, ok := c.powInput(a.Key, d, &other); ok {
		t.Error("a timed-out introduction point raised the effort")
	}
	now = now.Add(introFailureMaxAge + time.Second)
	if _, ok := c.powInput(a.Key, d, ip); ok {
		t.Error("failures older than 2 minutes still count")
	}
	c.fails.noteIntro(a.Key, ip.AuthKey, IntroFailedUnreachable)
	c.Purge()
	if _, ok := c.powInput(a.Key, d, ip); ok {
		t.Error("failures survive Purge")
	}
	d.Inner.PoW = nil
	c.fails.noteIntro(a.Key, ip.AuthKey, IntroFailedUnreachable)
	if _, ok := c.powInput(a.Key, d, ip); ok {
		t.Error("a puzzle without pow-params")
	}
	d, _ = powDescriptor(t, 50000)
	if in, ok := c.powInput(a.Key, d, &d.Inner.IntroPoints[0]); !ok || in.Effort != MaxPoWEffort {
		t.Errorf("suggested 50000: %+v", in)
	}
	if !strings.Contains(logBuf.String(), "Onion service suggested effort 50000 which is higher than we want to solve. Solving at 10000 instead.") {
		t.Errorf("log: %q", logBuf.String())
	}
}

// TestSolverPoolBounded: with one solver, a second solve waits for the
// first and gives up with its context; cancelling the first ends it.
func TestSolverPoolBounded(t *testing.T) {
	p := newSolverPool(1)
	// Someone holds the only solver: a solve waits, until its context
	// ends.
	held := <-p.slots
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, _, err := p.solve(ctx2, pow.Input{Effort: 1}, [pow.NonceLen]byte{}); !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "waiting for a proof-of-work solver") {
		t.Errorf("solve without a free solver: %v", err)
	}
	p.slots <- held

	// A solve that cannot finish ends when its context is cancelled.
	hard := pow.Input{Effort: ^uint32(0)}
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() {
		_, _, err := p.solve(ctx1, hard, [pow.NonceLen]byte{})
		done1 <- err
	}()
	cancel1()
	select {
	case err := <-done1:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled solve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled solve goes on")
	}
	// The solver is given back, and kept for the next solve.
	sol, _, err := p.solve(context.Background(), pow.Input{Effort: 1}, [pow.NonceLen]byte{})
	if err != nil || sol.Effort != 1 {
		t.Errorf("solve at effort 1: %+v %v", sol, err)
	}
	if s := <-p.slots; s == nil {
		t.Error("the solver was not kept")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
