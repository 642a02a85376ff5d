package link

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/cert"
	"tinytor/tor/torlog"
)

// testHandler records what a channel gives it.
type testHandler struct {
	pool   *cell.Pool
	cells  chan *cell.Cell
	closed chan error
}

func newTestHandler(pool *cell.Pool) *testHandler {
	return &testHandler{pool: pool, cells: make(chan *cell.Cell, 16), closed: make(chan error, 1)}
}

func (h *testHandler) HandleCell(c *cell.Cell) {
	select {
	case h.cells <- c:
	default:
		h.pool.Put(c)
	}
}

func (h *testHandler) HandleChannelClosed(err error) { h.closed <- err }

func (h *testHandler) next(t *testing.T) *cell.Cell {
	t.Helper()
	select {
	case c := <-h.cells:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no cell for the handler")
		return nil
	}
}

// syncBuffer is a goroutine-safe log sink.
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

func testConfig(pool *cell.Pool) (Config, *syncBuffer) {
	var buf syncBuffer
	return Config{Log: torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &buf}), Pool: pool, HandshakeTimeout: 10 * time.Second}, &buf
}

func TestHandshakeAndCells(t *testing.T) {
	f := startRelay(t, relayOpts{})
	pool := cell.NewPool(32)
	cfg, logs := testConfig(pool)
	before := time.Now()
	ch, err := Dial(context.Background(), f.addr(), f.keys.identity(), cfg)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if ch.Identity() != f.keys.identity() {
		t.Fatalf("identity %s, want %s", ch.Identity(), f.keys.identity())
	}
	if ch.LinkVersion() != 5 {
		t.Fatalf("link version %d, want 5", ch.LinkVersion())
	}
	checkSkew(t, ch.ClockSkew(), 0, before, after)
	if ch.ObservedAddr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("observed address %v", ch.ObservedAddr())
	}
	var rc *relayConn
	select {
	case rc = <-f.conns:
	case err := <-f.errs:
		t.Fatal(err)
	}
	if rc.clientNetinfo.Time != 0 || rc.clientNetinfo.OtherAddr != netip.MustParseAddr("127.0.0.1") || len(rc.clientNetinfo.MyAddrs) != 0 {
		t.Fatalf("client NETINFO %+v", rc.clientNetinfo)
	}

	h := newTestHandler(pool)
	id, err := ch.OpenCircuit(h)
	if err != nil {
		t.Fatal(err)
	}
	if id&0x80000000 == 0 {
		t.Fatalf("circuit ID %#x lacks the high bit", id)
	}
	c := pool.Get()
	c.CircID, c.Command = id, cell.CreateFast
	c.Payload[0] = 0x77
	if err := ch.Send(c); err != nil {
		t.Fatal(err)
	}
	got, _, err := rc.r.ReadCell()
	if err != nil || got.CircID != id || got.Command != cell.CreateFast || got.Payload[0] != 0x77 {
		t.Fatalf("relay got %v %v", got, err)
	}
	// Padding, a cell for an unknown circuit, then two for ours.
	rc.send(t, &cell.Cell{Command: cell.Padding})
	rc.w.WriteVarCell(&cell.VarCell{Command: cell.VPadding, Payload: []byte{1}})
	rc.send(t, &cell.Cell{CircID: id ^ 1, Command: cell.Relay})
	rc.send(t, &cell.Cell{CircID: id, Command: cell.CreatedFast})
	destroy := &cell.Cell{CircID: id, Command: cell.Destroy}
	cell.MarshalDestroy(&destroy.Payload, cell.DestroyFinished)
	rc.send(t, destroy)
	if c := h.next(t); c.Command != cell.CreatedFast || c.CircID != id {
		t.Fatalf("handler got %v", c)
	} else {
		pool.Put(c)
	}
	if c := h.next(t); c.Command != cell.Destroy {
		t.Fatalf("handler got %v", c)
	} else {
		pool.Put(c)
	}
	if !strings.Contains(logs.String(), "unknown circuit") {
		t.Errorf("no debug log for the unknown circuit:\n%s", logs)
	}

	// Concurrent senders.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				c := pool.Get()
				c.CircID, c.Command = id, cell.Relay
				c.Payload[0], c.Payload[1] = byte(i), byte(j)
				if err := ch.Send(c); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for range 40 {
		got, _, err := rc.r.ReadCell()
		if err != nil || got.Command != cell.Relay {
			t.Fatalf("relay got %v %v", got, err)
		}
	}
	wg.Wait()

	ch.CloseCircuit(id)
	if ch.NumCircuits() != 0 {
		t.Fatal("circuit still registered")
	}
	h2 := newTestHandler(pool)
	if _, err := ch.OpenCircuit(h2); err != nil {
		t.Fatal(err)
	}
	ch.Close()
	<-ch.Done()
	if err := <-h2.closed; !errors.Is(err, ErrClosed) {
		t.Fatalf("handler told %v", err)
	}
	if len(h.closed) != 0 {
		t.Fatal("unregistered handler was told")
	}
	if !errors.Is(ch.Err(), ErrClosed) {
		t.Fatalf("Err() = %v", ch.Err())
	}
	if err := ch.Send(pool.Get()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after close: %v", err)
	}
	if _, err := ch.OpenCircuit(h2); !errors.Is(err, ErrClosed) {
		t.Fatalf("OpenCircuit after close: %v", err)
	}
	rc.conn.Close()
}

func TestRelayHangsUp(t *testing.T) {
	f := startRelay(t, relayOpts{versions: []uint16{4}})
	pool := cell.NewPool(8)
	cfg, _ := testConfig(pool)
	ch, err := Dial(context.Background(), f.addr(), f.keys.identity(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ch.LinkVersion() != 4 {
		t.Fatalf("link version %d", ch.LinkVersion())
	}
	h := newTestHandler(pool)
	if _, err := ch.OpenCircuit(h); err != nil {
		t.Fatal(err)
	}
	rc := <-f.conns
	rc.conn.Close()
	select {
	case err := <-h.closed:
		if err == nil || errors.Is(err, ErrClosed) {
			t.Fatalf("handler told %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler not told")
	}
	<-ch.Done()
	if ch.Err() == nil {
		t.Fatal("no error")
	}
}

func TestHandshakeFailures(t *testing.T) {
	k := testKeys(t)
	wrongRSA := k.identity()
	wrongRSA.RSA[3] ^= 1
	wrongEd := k.identity()
	wrongEd.Ed25519[0] ^= 1
	rsaOnly := k.identity()
	rsaOnly.Ed25519 = [32]byte{}
	tests := []struct {
		name    string
		opts    relayOpts
		want    Identity
		errs    []error
		logText string
	}{
		{"wrong RSA identity", relayOpts{}, wrongRSA, []error{ErrWrongIdentity}, "identity was not as expected"},
		{"wrong Ed25519 identity", relayOpts{}, wrongEd, []error{ErrWrongIdentity}, "identity was not as expected"},
		{"expired signing cert", relayOpts{expiredSigning: true}, k.identity(), []error{ErrBadCerts, cert.ErrExpired}, "expired"},
		{"expired RSA cert", relayOpts{expiredRSA: true}, k.identity(), []error{ErrBadCerts, cert.ErrExpired}, "expired"},
		{"TLS digest mismatch", relayOpts{tlsMismatch: true}, k.identity(), []error{ErrBadCerts}, "does not certify the TLS certificate"},
		{"bad cross-cert signature", relayOpts{badCrossSig: true}, k.identity(), []error{ErrBadCerts, cert.ErrBadSignature}, "cross-certificate"},
		{"missing cross-cert", relayOpts{omit: cert.TypeRSACrossCert}, k.identity(), []error{ErrBadCerts}, "no RSA->Ed25519"},
		{"no common version", relayOpts{versions: []uint16{3}}, k.identity(), []error{ErrNoCommonVersion}, "link versions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startRelay(t, tc.opts)
			cfg, logs := testConfig(nil)
			ch, err := Dial(context.Background(), f.addr(), tc.want, cfg)
			if err == nil {
				ch.Close()
				t.Fatal("handshake succeeded")
			}
			var he *HandshakeError
			if !errors.As(err, &he) || he.Addr != f.addr() {
				t.Fatalf("error %v is not a HandshakeError for %s", err, f.addr())
			}
			for _, e := range tc.errs {
				if !errors.Is(err, e) {
					t.Errorf("error %v is not %v", err, e)
				}
			}
			if !strings.Contains(logs.String(), tc.logText) {
				t.Errorf("log lacks %q:\n%s", tc.logText, logs)
			}
		})
	}
	// Unknown Ed25519 identity: RSA alone suffices.
	f := startRelay(t, relayOpts{})
	cfg, _ := testConfig(nil)
	ch, err := Dial(context.Background(), f.addr(), rsaOnly, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Identity() != k.identity() {
		t.Fatal("Ed25519 identity not learned")
	}
	ch.Close()
	<-ch.Done()
}

func TestClockSkew(t *testing.T) {
	for _, tc := range []struct {
		offset time.Duration
		text   string
	}{
		{2*time.Hour + 5*time.Minute + 30*time.Second, "our clock is behind by 2 hours, 5 minutes, or that theirs is ahead"},
		{-50*time.Hour - 30*time.Second, "our clock is ahead by 2 days, 2 hours, 0 minutes, or that theirs is behind"},
	} {
		f := startRelay(t, relayOpts{netinfoOffset: tc.offset})
		cfg, logs := testConfig(nil)
		cfg.TrustedDir = true
		before := time.Now()
		ch, err := Dial(context.Background(), f.addr(), f.keys.identity(), cfg)
		after := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		checkSkew(t, ch.ClockSkew(), tc.offset, before, after)
		if l := logs.String(); !strings.Contains(l, "[warn] Received NETINFO cell with skewed time from server at "+f.addr()) || !strings.Contains(l, tc.text) {
			t.Errorf("log lacks the skew warning %q:\n%s", tc.text, l)
		}
		ch.Close()
		<-ch.Done()
	}
}

// checkSkew checks the clock skew learned by a Dial that ran from before to
// after with a fake relay whose NETINFO time is its clock plus offset (whole
// seconds). The relay read its clock during the Dial and both times are
// truncated to seconds, so skew-offset lies in [-(after-before)-1s, 0]
// whatever the machine's load.
func checkSkew(t *testing.T, skew, offset time.Duration, before, after time.Time) {
	t.Helper()
	if d := skew - offset; d > 0 || d < -after.Sub(before)-time.Second {
		t.Errorf("clock skew %s, want %s minus at most the %s the handshake took", skew, offset, after.Sub(before))
	}
}

func TestHandshakeTimeout(t *testing.T) {
	// A listener that accepts and never speaks.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	cfg, _ := testConfig(nil)
	// The peer never speaks and the handshake's own timeout is far away, so
	// Dial can return only because it honours ctx's deadline (if it does
	// not, the test's -timeout ends it).
	cfg.HandshakeTimeout = time.Hour
	ln := newSilentListener(t)
	_, err := Dial(ctx, ln, Identity{}, cfg)
	if err == nil {
		t.Fatal("handshake with a silent peer succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not say the deadline passed", err)
	}
	if dl, _ := ctx.Deadline(); time.Now().Before(dl) {
		t.Errorf("Dial gave up before the context's deadline: %v", err)
	}
}

func TestFormatInterval(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Second:               "5 seconds",
		61 * time.Second:              "1 minutes, 1 seconds",
		3*time.Hour + 4*time.Minute:   "3 hours, 4 minutes",
		49*time.Hour + 30*time.Minute: "2 days, 1 hours, 30 minutes",
	} {
		if got := formatInterval(d); got != want {
			t.Errorf("formatInterval(%s) = %q, want %q", d, got, want)
		}
	}
	id := Identity{RSA: [20]byte{0xab}}
	if s := id.String(); s != "$AB00000000000000000000000000000000000000" {
		t.Errorf("Identity.String() = %s", s)
	}
}

// A client whose clock is far behind (a router without a real-time
// clock) still completes the handshake: the RSA identity certificate's
// start date is not checked, its expiry and signatures are.
func TestHandshakeWithClockInThePast(t *testing.T) {
	f := startRelay(t, relayOpts{})
	cfg, _ := testConfig(nil)
	cfg.Now = func() time.Time { return time.Date(1970, 1, 1, 0, 0, 10, 0, time.UTC) }
	ch, err := Dial(context.Background(), f.addr(), f.keys.identity(), cfg)
	if err != nil {
		t.Fatalf("handshake with a 1970 clock: %v", err)
	}
	if ch.ClockSkew() < 50*365*24*time.Hour {
		t.Errorf("skew %s: the relay's NETINFO should show our clock decades behind", ch.ClockSkew())
	}
	ch.Close()
	<-ch.Done()
}
