package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tinytor/onion/addr"
	"tinytor/tor/cell"
	"tinytor/tor/circuit"
)

// fakeRend is a rendezvous circuit for tests: a silent one never answers
// a BEGIN; another opens every stream (returning a nil *circuit.Stream).
type fakeRend struct {
	silent bool
	begins atomic.Int32
	closed atomic.Bool
	end    cell.EndReason // answer BEGIN with this END when non-zero
}

func (f *fakeRend) OpenStream(ctx context.Context, host string, port uint16, _ circuit.BeginFlags) (*circuit.Stream, error) {
	f.begins.Add(1)
	if f.silent {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if f.end != 0 {
		return nil, &circuit.StreamEndError{Reason: f.end}
	}
	return nil, nil
}

func (f *fakeRend) Err() error {
	if f.closed.Load() {
		return circuit.ErrClosed
	}
	return nil
}

func (f *fakeRend) Close() error { f.closed.Store(true); return nil }

// rendClient is a Client whose rendezvous circuits come from circs in
// order, counting the connections made.
func rendClient(t *testing.T, timeout time.Duration, circs ...*fakeRend) (*Client, *atomic.Int32) {
	t.Helper()
	c, err := New(Config{Net: noNetwork(t), StreamTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var mu sync.Mutex
	var n atomic.Int32
	c.connectRend = func(ctx context.Context, a addr.Address) (rendCirc, error) {
		mu.Lock()
		defer mu.Unlock()
		i := int(n.Add(1)) - 1
		if i >= len(circs) {
			return nil, errors.New("no more rendezvous circuits")
		}
		return circs[i], nil
	}
	return c, &n
}

// closeStream releases a stream returned by Dial with a nil circuit
// stream (the fakes' streams).
func closeStream(conn any) {
	s := conn.(*stream)
	s.once.Do(s.release)
}

func TestSilentRendezvousIsReplaced(t *testing.T) {
	silent, good := &fakeRend{silent: true}, &fakeRend{}
	c, connects := rendClient(t, 50*time.Millisecond, silent, good)
	host := newKey(t).String()

	// A first stream works on the first circuit's... no: the first
	// circuit is silent, so the stream times out there and is retried on
	// a new rendezvous circuit.
	start := time.Now()
	conn, err := c.Dial(context.Background(), host, 80, "alice")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("Dial took %s, want about one stream timeout (50 ms)", d)
	}
	closeStream(conn)
	if got := connects.Load(); got != 2 {
		t.Errorf("%d rendezvous circuits joined, want 2", got)
	}
	if !silent.closed.Load() {
		t.Error("the silent rendezvous circuit was not closed once its last stream gave up")
	}

	// Later streams of the same isolation key use the new circuit, not
	// the silent one.
	for i := 0; i < 3; i++ {
		conn, err := c.Dial(context.Background(), host, 80, "alice")
		if err != nil {
			t.Fatalf("Dial %d: %v", i, err)
		}
		closeStream(conn)
	}
	if got := silent.begins.Load(); got != 1 {
		t.Errorf("the silent circuit got %d BEGINs, want 1", got)
	}
	if got := good.begins.Load(); got != 4 {
		t.Errorf("the new circuit got %d BEGINs, want 4", got)
	}
	if got := connects.Load(); got != 2 {
		t.Errorf("%d rendezvous circuits joined, want still 2", got)
	}
}

func TestSilentRendezvousGivesUp(t *testing.T) {
	var circs []*fakeRend
	for i := 0; i < maxRendStreamAttempts+1; i++ {
		circs = append(circs, &fakeRend{silent: true})
	}
	c, connects := rendClient(t, 20*time.Millisecond, circs...)
	_, err := c.Dial(context.Background(), newKey(t).String(), 80, nil)
	var oe *Error
	if !errors.As(err, &oe) || oe.Kind != RendFailed {
		t.Fatalf("Dial: %v, want a RendFailed error", err)
	}
	if got := connects.Load(); got != maxRendStreamAttempts {
		t.Errorf("%d rendezvous circuits tried, want %d", got, maxRendStreamAttempts)
	}
}

func TestSilentRendezvousOtherKeyUntouched(t *testing.T) {
	// Bob's circuit answers; alice's is silent. Alice's timeout must not
	// drop bob's circuit.
	aliceSilent, bob, aliceNew := &fakeRend{silent: true}, &fakeRend{}, &fakeRend{}
	c, _ := rendClient(t, 30*time.Millisecond, bob, aliceSilent, aliceNew)
	host := newKey(t).String()
	conn, err := c.Dial(context.Background(), host, 80, "bob")
	if err != nil {
		t.Fatal(err)
	}
	closeStream(conn)
	conn, err = c.Dial(context.Background(), host, 80, "alice")
	if err != nil {
		t.Fatal(err)
	}
	closeStream(conn)
	conn, err = c.Dial(context.Background(), host, 80, "bob")
	if err != nil {
		t.Fatal(err)
	}
	closeStream(conn)
	if bob.begins.Load() != 2 || bob.closed.Load() {
		t.Errorf("bob's circuit: %d BEGINs, closed %v; want 2 and open", bob.begins.Load(), bob.closed.Load())
	}
	if !aliceSilent.closed.Load() || aliceNew.begins.Load() != 1 {
		t.Errorf("alice: silent circuit closed %v, new circuit %d BEGINs; want true and 1", aliceSilent.closed.Load(), aliceNew.begins.Load())
	}
}

func TestRendStreamRefusedIsNotRetried(t *testing.T) {
	refusing := &fakeRend{end: cell.EndConnectRefused}
	c, connects := rendClient(t, time.Second, refusing)
	_, err := c.Dial(context.Background(), newKey(t).String(), 80, nil)
	if err == nil || connects.Load() != 1 || refusing.begins.Load() != 1 {
		t.Errorf("Dial: %v after %d connections and %d BEGINs; want an error after 1 and 1", err, connects.Load(), refusing.begins.Load())
	}
}

func TestRendStreamTimeoutDefault(t *testing.T) {
	c, _ := rendClient(t, 0)
	if got := c.streamTimeout(0); got != 10*time.Second {
		t.Errorf("default first timeout %s, want 10s", got)
	}
	if got := c.streamTimeout(2); got != 15*time.Second {
		t.Errorf("default third timeout %s, want 15s", got)
	}
}
