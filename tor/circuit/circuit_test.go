package circuit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"testing"
	"time"

	"tinytor/tor/cell"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func noViolations(t *testing.T, f *fakeNet) {
	t.Helper()
	for {
		select {
		case v := <-f.violations:
			t.Errorf("fake relay saw a protocol violation: %s", v)
		default:
			return
		}
	}
}

// build3 makes a 3-hop circuit with CREATE2 (or CREATE_FAST) and two
// EXTEND2s.
func build3(t *testing.T, fast bool) (*Circuit, *fakeNet) {
	t.Helper()
	r1, r2, r3 := newFakeRelayKeys(t, 1), newFakeRelayKeys(t, 2), newFakeRelayKeys(t, 3)
	f := newFakeNet(t, r1, r2, r3)
	ctx := testCtx(t)
	var c *Circuit
	var err error
	// The relays take the cells they send from the client's pool, as a
	// channel's read loop does. It holds a circuit window and more, for
	// the tests where nobody reads what the relays echo; the tests of
	// back-pressure use smaller pools.
	f.pool = cell.NewPool(2 * CircWindowStart)
	if fast {
		c, err = CreateFast(ctx, f, Config{Pool: f.pool})
	} else {
		c, err = Create(ctx, f, r1.hopInfo(), Config{Pool: f.pool})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, r := range []*fakeRelayKeys{r2, r3} {
		h := r.hopInfo()
		h.Addrs = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5000"), netip.MustParseAddrPort("[::1]:5000")}
		h.Ed25519ID[0] = 9
		if err := c.Extend(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 3 {
		t.Fatalf("circuit has %d hops", c.Len())
	}
	return c, f
}

func TestCreateFastAndDirStream(t *testing.T) {
	r1 := newFakeRelayKeys(t, 1)
	f := newFakeNet(t, r1)
	f.downloadForPort[0] = 100000 // BEGIN_DIR: send 100 kB then END DONE
	ctx := testCtx(t)
	c, err := CreateFast(ctx, f, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100000 {
		t.Fatalf("read %d bytes, want 100000", len(got))
	}
	for i, b := range got {
		if b != byte(i*7) {
			t.Fatalf("byte %d is %d", i, b)
		}
	}
	s.Close()
	noViolations(t, f)
}

func TestEchoAcrossWindows(t *testing.T) {
	c, f := build3(t, false)
	ctx := testCtx(t)
	s, err := c.OpenStream(ctx, "127.0.0.1", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a := s.Connected().Addr; a != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("CONNECTED address %v", a)
	}
	// 1300 cells' worth: beyond the stream window (500) and the circuit
	// window (1000) in both directions, so SENDMEs must flow both ways.
	data := make([]byte, 1300*cell.RelayDataLen+17)
	for i := range data {
		data[i] = byte(i * 13)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(data)
		werr <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echoed data differs")
	}
	s.Close()
	select {
	case r := <-f.ends:
		if r != cell.EndMisc {
			t.Errorf("client END reason %s, want MISC", r)
		}
	case <-ctx.Done():
		t.Fatal("no END from client")
	}
	noViolations(t, f)
	if c.Err() != nil {
		t.Fatalf("circuit died: %v", c.Err())
	}
	// The client echoed back 1300 cells: it must have sent circuit-level
	// SENDMEs (checked against the relay's digests) and stream SENDMEs.
	// f.hops is not touched by the relay goroutine once it is idle.
	if n := f.streamSendmes.Load(); n < 16 {
		t.Errorf("client sent %d stream SENDMEs, want at least 16", n)
	}
	if len(f.hops) != 3 {
		t.Fatalf("relay side has %d hops", len(f.hops))
	}
	if n := f.hops[2].clientSendmes.Load(); n < 12 {
		t.Errorf("client sent %d circuit SENDMEs, want at least 12", n)
	}
}

func TestEndReasons(t *testing.T) {
	c, f := build3(t, true)
	f.endReasonForPort[81] = cell.EndConnectRefused
	ctx := testCtx(t)
	_, err := c.OpenStream(ctx, "example.com", 81, 0)
	var ee *StreamEndError
	if !errors.As(err, &ee) || ee.Reason != cell.EndConnectRefused {
		t.Fatalf("OpenStream error %v, want CONNECTREFUSED", err)
	}
	// END DONE after data: io.EOF.
	f.downloadForPort[82] = 1000
	s, err := c.OpenStream(ctx, "example.com", 82, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(s)
	if err != nil || len(b) != 1000 {
		t.Fatalf("ReadAll: %d bytes, %v", len(b), err)
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Fatal("Write after END succeeded")
	}
	s.Close()
	noViolations(t, f)
}

func TestResolve(t *testing.T) {
	c, f := build3(t, false)
	ans, err := c.Resolve(testCtx(t), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(ans) != 2 || ans[0].Addr != netip.MustParseAddr("127.0.0.1") || ans[0].TTL != 256 || ans[1].Type != AnswerIPv6 {
		t.Fatalf("answers %+v", ans)
	}
	noViolations(t, f)
}

func TestDestroyFromRelay(t *testing.T) {
	c, f := build3(t, false)
	ctx := testCtx(t)
	s, err := c.OpenStream(ctx, "127.0.0.1", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.destroy(cell.DestroyHibernating)
	<-c.Done()
	var de *DestroyedError
	if !errors.As(c.Err(), &de) || de.Reason != cell.DestroyHibernating || de.Truncated {
		t.Fatalf("circuit error %v", c.Err())
	}
	if _, err := s.Read(make([]byte, 10)); !errors.As(err, &de) {
		t.Fatalf("Read after DESTROY: %v", err)
	}
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if !closed {
		t.Fatal("circuit ID not released")
	}
	select {
	case r := <-f.destroys:
		t.Fatalf("client answered DESTROY with DESTROY %s", r)
	default:
	}
}

func TestDestroyOnCreate(t *testing.T) {
	r1 := newFakeRelayKeys(t, 1)
	f := newFakeNet(t, r1)
	f.destroyOnCreate = true
	_, err := Create(testCtx(t), f, r1.hopInfo(), Config{})
	var de *DestroyedError
	if !errors.As(err, &de) || de.Reason != cell.DestroyResourceLimit {
		t.Fatalf("Create error %v", err)
	}
}

func TestWrongNtorKey(t *testing.T) {
	r1 := newFakeRelayKeys(t, 1)
	f := newFakeNet(t, r1)
	h := r1.hopInfo()
	h.NtorKey[0] ^= 1
	if _, err := Create(testCtx(t), f, h, Config{}); err == nil {
		t.Fatal("Create with a wrong ntor key succeeded")
	}
}

func TestTruncated(t *testing.T) {
	r1, r2 := newFakeRelayKeys(t, 1), newFakeRelayKeys(t, 2)
	f := newFakeNet(t, r1, r2)
	ctx := testCtx(t)
	c, err := Create(ctx, f, r1.hopInfo(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	f.truncateOnExtend = true
	h := r2.hopInfo()
	h.Addrs = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}
	err = c.Extend(ctx, h)
	var de *DestroyedError
	if !errors.As(err, &de) || !de.Truncated || de.Reason != cell.DestroyConnectFailed {
		t.Fatalf("Extend error %v", err)
	}
	select {
	case r := <-f.destroys:
		if r != cell.DestroyNone {
			t.Fatalf("client DESTROY reason %s", r)
		}
	case <-ctx.Done():
		t.Fatal("client did not send DESTROY after TRUNCATED")
	}
}

func TestCloseSendsDestroy(t *testing.T) {
	c, f := build3(t, true)
	ctx := testCtx(t)
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case r := <-f.destroys:
		if r != cell.DestroyNone {
			t.Fatalf("DESTROY reason %s", r)
		}
	case <-ctx.Done():
		t.Fatal("no DESTROY")
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write on closed circuit: %v", err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

func TestRelayEarlyLimit(t *testing.T) {
	var relays []*fakeRelayKeys
	for i := 0; i < 11; i++ {
		relays = append(relays, newFakeRelayKeys(t, byte(i+1)))
	}
	f := newFakeNet(t, relays...)
	ctx := testCtx(t)
	c, err := Create(ctx, f, relays[0].hopInfo(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var extendErr error
	for _, r := range relays[1:] {
		h := r.hopInfo()
		h.Addrs = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}
		if extendErr = c.Extend(ctx, h); extendErr != nil {
			break
		}
	}
	if extendErr == nil || c.Len() != MaxHops {
		t.Fatalf("extended to %d hops; last error %v", c.Len(), extendErr)
	}
	noViolations(t, f)
}

func TestReadDeadline(t *testing.T) {
	c, _ := build3(t, false)
	s, err := c.OpenStream(testCtx(t), "127.0.0.1", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read error %v, want deadline exceeded", err)
	}
	s.SetReadDeadline(time.Time{})
	if _, err := s.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(s, b); err != nil || string(b) != "ping" {
		t.Fatalf("after clearing the deadline: %q %v", b, err)
	}
}

func TestSendmeV0Rejected(t *testing.T) {
	c, f := build3(t, false)
	c.cfg.SendmeAcceptMinVersion = 1
	f.sendV0Sendme = true
	s, err := c.OpenStream(testCtx(t), "127.0.0.1", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	go s.Write(make([]byte, 200*cell.RelayDataLen))
	<-c.Done()
	if !errors.Is(c.Err(), ErrProtocol) {
		t.Fatalf("circuit error %v, want protocol violation", c.Err())
	}
}

func TestManyStreams(t *testing.T) {
	c, f := build3(t, false)
	ctx := testCtx(t)
	const streams, size = 6, 300 * cell.RelayDataLen
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		go func(i int) {
			s, err := c.OpenStream(ctx, "127.0.0.1", 80, 0)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			data := bytes.Repeat([]byte{byte(i)}, size)
			go s.Write(data)
			got := make([]byte, size)
			if _, err := io.ReadFull(s, got); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, data) {
				errs <- errors.New("stream data mixed up")
				return
			}
			errs <- nil
		}(i)
	}
	for i := 0; i < streams; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	noViolations(t, f)
}

// A writer blocked on the stream window wakes up with the circuit's error
// when the circuit dies, and the circuit goroutine ends.
func TestBlockedWriterSeesDestroy(t *testing.T) {
	c, f := build3(t, false)
	f.noStreamSendmes = true
	ctx := testCtx(t)
	s, err := c.OpenStream(ctx, "127.0.0.1", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(make([]byte, 600*cell.RelayDataLen))
		werr <- err
	}()
	// Wait until the relay got a whole stream window.
	select {
	case <-f.windowFull:
	case err := <-werr:
		t.Fatalf("Write returned early: %v", err)
	case <-ctx.Done():
		t.Fatal("the stream window never filled")
	}
	f.destroy(cell.DestroyFinished)
	var de *DestroyedError
	if err := <-werr; !errors.As(err, &de) || de.Reason != cell.DestroyFinished {
		t.Fatalf("blocked Write returned %v", err)
	}
	<-c.stopped
}

func TestWriteDeadlineWhileBlocked(t *testing.T) {
	c, f := build3(t, false)
	f.noStreamSendmes = true
	s, err := c.OpenStream(testCtx(t), "127.0.0.1", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := s.Write(make([]byte, 600*cell.RelayDataLen))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write = %d, %v; want a deadline error", n, err)
	}
	// It wrote what a stream window of cells carries (a few of them short,
	// with random padding), and the relay got exactly that.
	<-f.windowFull
	var cells, got int
	f.runOnRelay(func() {
		st := f.streams[s.ID()]
		cells, got = st.receivedCells, len(st.received)
	})
	if cells != StreamWindowStart || got != n || n < StreamWindowStart*randomDataMax {
		t.Fatalf("Write = %d; the relay got %d bytes in %d cells, want one window (%d cells)", n, got, cells, StreamWindowStart)
	}
	c.Close()
	<-c.stopped
}
