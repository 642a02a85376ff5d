package circuit

import (
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"tinytor/tor/cell"
)

// waitUntil yields until cond holds: the state it looks at changes on the
// circuit's and the fake relays' goroutines.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// checkDownload reads a whole download of the fake relay (n bytes of
// byte(i*7)) from s.
func checkDownload(s *Stream, n int) error {
	got, err := io.ReadAll(s)
	if err != nil {
		return err
	}
	if len(got) != n {
		return errors.New("short download")
	}
	for i, b := range got {
		if b != byte(i*7) {
			return errors.New("corrupt download")
		}
	}
	return nil
}

// TestSlowReaderWithholdsCircuitSendmes: three streams download on one
// circuit and nobody reads. The client holds a circuit window of cells and
// sends no circuit SENDME, so the relay stops; reading 200 cells releases
// exactly two SENDMEs (with the digests recorded when their cells came,
// which the relay checks), and the relay sends 200 more cells.
func TestSlowReaderWithholdsCircuitSendmes(t *testing.T) {
	r1 := newFakeRelayKeys(t, 1)
	f := newFakeNet(t, r1)
	const cells = 600
	f.downloadForPort[0] = cells * cell.RelayDataLen // BEGIN_DIR
	f.pool = cell.NewPool(4 * CircWindowStart)
	ctx := testCtx(t)
	c, err := CreateFast(ctx, f, Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var streams []*Stream
	for range 3 {
		s, err := c.OpenDirStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		streams = append(streams, s)
	}
	relayWindow := func() (w int) {
		f.runOnRelay(func() { w = f.hops[0].packageWindow })
		return w
	}
	waitUntil(t, "a circuit window of held cells", func() bool { return c.HeldCells() == CircWindowStart })
	if n, w := f.hops[0].clientSendmes.Load(), relayWindow(); n != 0 || w != 0 {
		t.Fatalf("with nothing read: %d circuit SENDMEs, relay window %d; want none and 0", n, w)
	}
	// The first stream has a stream window of cells (500): read 200.
	buf := make([]byte, 200*cell.RelayDataLen)
	if _, err := io.ReadFull(streams[0], buf); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "two circuit SENDMEs and 200 more cells", func() bool {
		return f.hops[0].clientSendmes.Load() == 2 && c.HeldCells() == CircWindowStart
	})
	if n, w := f.hops[0].clientSendmes.Load(), relayWindow(); n != 2 || w != 0 {
		t.Fatalf("after reading 200 cells: %d circuit SENDMEs, relay window %d; want 2 and 0", n, w)
	}
	if s := f.pool.Stats(); s.Peak > CircWindowStart+16 {
		t.Errorf("pool peak %d cells for a circuit window of %d", s.Peak, CircWindowStart)
	}
	// Reading on releases everything, with the right data.
	var wg sync.WaitGroup
	errs := make([]error, len(streams))
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			skip := 0
			if i == 0 {
				skip = len(buf)
			}
			got, err := io.ReadAll(s)
			switch {
			case err != nil:
				errs[i] = err
			case len(got)+skip != cells*cell.RelayDataLen:
				errs[i] = errors.New("short download")
			default:
				for j, b := range got {
					if b != byte((j+skip)*7) {
						errs[i] = errors.New("corrupt download")
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("stream %d: %v", i, err)
		}
	}
	noViolations(t, f)
	if n := c.HeldCells(); n != 0 {
		t.Errorf("%d cells held after reading everything", n)
	}
}

// TestReclaimStalledReader: a reader that stops with the pool full is
// closed after the stall timeout, with ErrReclaimed, and its cells let
// another stream through.
func TestReclaimStalledReader(t *testing.T) {
	r1 := newFakeRelayKeys(t, 1)
	f := newFakeNet(t, r1)
	const cells = 400
	f.downloadForPort[0] = cells * cell.RelayDataLen
	f.pool = cell.NewPoolConfig(cell.PoolConfig{Capacity: 300, StallTimeout: 50 * time.Millisecond})
	ctx := testCtx(t)
	c, err := CreateFast(ctx, f, Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stalled, err := c.OpenDirStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	// The relay fills the pool's inbound share with the stalled
	// stream's cells and waits; the second BEGIN_DIR waits behind.
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := checkDownload(s, cells*cell.RelayDataLen); err != nil {
		t.Fatalf("second stream: %v", err)
	}
	if _, err := io.ReadAll(stalled); !errors.Is(err, ErrReclaimed) {
		t.Fatalf("stalled stream: got %v, want ErrReclaimed", err)
	}
	st := f.pool.Stats()
	if st.Reclaims < 1 || st.Peak > st.Capacity || st.Allocated > st.Capacity {
		t.Fatalf("pool %+v", st)
	}
	t.Logf("pool %+v", st)
	noViolations(t, f)
}
