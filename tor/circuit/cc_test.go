package circuit

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"tinytor/tor/cell"
)

// TestVegasTrace drives TOR_VEGAS with a recorded RTT trace (the window
// kept full, one SENDME every 10 ms) and checks the window, RTT and BDP
// against values computed by hand from proposal 324 3.3 and C tor's
// integer arithmetic with the default parameters (sendme_inc 31,
// cwnd_init 124, gamma 186, beta 248, cwnd_inc 31, ewma_ss 2).
func TestVegasTrace(t *testing.T) {
	cc := newCCState(DefaultCCParams(), 31)
	now := int64(1_000_000)
	ack := func(rtt int64) {
		t.Helper()
		cc.inflight = cc.cwnd // the writer keeps the window full
		now += 10_000
		cc.onSendme(now, now-rtt, true)
	}
	type want struct {
		rtt           int64
		cwnd, ewma    uint64
		min, bdp      uint64
		inSlowStart   bool
		inflightAfter uint64
	}
	steps := []want{
		// queue_use 0 < gamma, window full: +31 (cc_cwnd_inc_pct_ss 100% of sendme_inc).
		{rtt: 100_000, cwnd: 155, ewma: 100_000, min: 100_000, bdp: 124, inSlowStart: true, inflightAfter: 93},
		{rtt: 100_000, cwnd: 186, ewma: 100_000, min: 100_000, bdp: 155, inSlowStart: true, inflightAfter: 124},
		// ewma (2*130000+100000)/3 = 120000; bdp 186*100000/120000 = 155; queue 31.
		{rtt: 130_000, cwnd: 217, ewma: 120_000, min: 100_000, bdp: 155, inSlowStart: true, inflightAfter: 155},
		// ewma 920000/3 = 306666; bdp 21700000/306666 = 70; queue 147 < 186.
		{rtt: 400_000, cwnd: 248, ewma: 306_666, min: 100_000, bdp: 70, inSlowStart: true, inflightAfter: 186},
		// ewma 1106666/3 = 368888; bdp 24800000/368888 = 67; queue 181 < 186.
		{rtt: 400_000, cwnd: 279, ewma: 368_888, min: 100_000, bdp: 67, inSlowStart: true, inflightAfter: 217},
		// ewma 1168888/3 = 389629; bdp 27900000/389629 = 71; queue 208 >= gamma:
		// leave slow start with cwnd = bdp + gamma = 257.
		{rtt: 400_000, cwnd: 257, ewma: 389_629, min: 100_000, bdp: 71, inSlowStart: false, inflightAfter: 248},
	}
	for i, w := range steps {
		ack(w.rtt)
		if cc.cwnd != w.cwnd || cc.ewmaRTT != w.ewma || cc.minRTT != w.min || cc.bdpCwnd != w.bdp || cc.inSlowStart != w.inSlowStart || cc.inflight != w.inflightAfter {
			t.Fatalf("SENDME %d (RTT %d µs): cwnd %d ewma %d min %d bdp %d slow start %v inflight %d; want %+v",
				i+1, w.rtt, cc.cwnd, cc.ewmaRTT, cc.minRTT, cc.bdpCwnd, cc.inSlowStart, cc.inflight, w)
		}
	}
	if cc.maxRTT != 400_000 {
		t.Errorf("max RTT %d, want 400000", cc.maxRTT)
	}
	// Five SENDMEs 10 ms apart: the SENDME-rate BDP is 4*31 cells in
	// 40 ms times the min RTT of 100 ms = 310 cells.
	if cc.bdpSendme != 310 {
		t.Errorf("SENDME-rate BDP %d, want 310", cc.bdpSendme)
	}
	// Steady state: the window is updated once per CWND_UPDATE_RATE =
	// (257+15)/31 = 8 SENDMEs. Queue build-up (RTT 5 s against a min of
	// 100 ms) puts queue_use above beta (248): cwnd -= cc_cwnd_inc, at
	// the 8th SENDME only.
	if cc.nextCCEvent != 8 {
		t.Fatalf("next window update in %d SENDMEs, want 8", cc.nextCCEvent)
	}
	for i := range 7 {
		ack(5_000_000)
		if cc.cwnd != 257 {
			t.Fatalf("steady-state SENDME %d changed cwnd to %d before the update", i+1, cc.cwnd)
		}
	}
	ack(5_000_000)
	if cc.cwnd != 226 || cc.inSlowStart {
		t.Fatalf("after queue build-up: cwnd %d (slow start %v), want 226", cc.cwnd, cc.inSlowStart)
	}
	if q := cc.cwnd + 31 - cc.bdpCwnd; q <= 248 {
		t.Fatalf("queue use %d at the update, want above beta", q)
	}
	// The RTT back at its minimum: the EWMA (N = 7*50/100 = 3) falls
	// to 137 ms in the 7 SENDMEs to the next update, where queue_use is
	// 226 - 226*100/137 = 62 < alpha (124) with the window full:
	// cwnd += cc_cwnd_inc.
	if cc.nextCCEvent != 7 {
		t.Fatalf("next window update in %d SENDMEs, want 7", cc.nextCCEvent)
	}
	for range 6 {
		ack(100_000)
	}
	if cc.cwnd != 226 {
		t.Fatalf("cwnd %d between updates", cc.cwnd)
	}
	ack(100_000)
	if cc.cwnd != 257 {
		t.Fatalf("cwnd %d with the queue gone, want 257", cc.cwnd)
	}
}

func TestVegasLimitedSlowStart(t *testing.T) {
	cc := newCCState(DefaultCCParams(), 31)
	for _, c := range []struct{ cwnd, inc uint64 }{{124, 31}, {500, 31}, {600, 13}, {5000, 2}, {31000, 1}} {
		cc.cwnd = c.cwnd
		if got := cc.ssInc(); got != c.inc {
			t.Errorf("slow start increment at cwnd %d: %d, want %d", c.cwnd, got, c.inc)
		}
	}
}

func TestVegasClockHeuristics(t *testing.T) {
	cc := newCCState(DefaultCCParams(), 31)
	cc.inflight = cc.cwnd
	cc.onSendme(1000, 1000, true) // zero RTT: a stalled clock
	if cc.ewmaRTT != 0 || cc.clockStalls != 1 || cc.cwnd != 124 || cc.inflight != 93 {
		t.Fatalf("zero RTT used: ewma %d stalls %d cwnd %d inflight %d", cc.ewmaRTT, cc.clockStalls, cc.cwnd, cc.inflight)
	}
	cc.inSlowStart = false
	cc.ewmaRTT, cc.minRTT = 100_000, 100_000
	cc.inflight = cc.cwnd
	cc.onSendme(1_000_000_000_000, 0, true) // a jump of 10^6 s
	if cc.ewmaRTT != 100_000 || cc.clockStalls != 2 {
		t.Fatalf("clock jump used: ewma %d stalls %d", cc.ewmaRTT, cc.clockStalls)
	}
}

func TestCCParams(t *testing.T) {
	d := DefaultCCParams()
	if d.Alg != CCAlgVegas || d.SendmeInc != 31 || d.CwndInit != 124 || d.CwndMin != 62 || d.VegasAlpha != 124 ||
		d.VegasBeta != 248 || d.VegasGamma != 186 || d.VegasDelta != 372 || d.SSCap != 500 || d.XoffClient != 500 {
		t.Fatalf("defaults %+v", d)
	}
	p := CCParamsFrom(func(name string, def, min, max int32) int32 {
		switch name {
		case "cc_alg":
			return 0
		case "cc_sendme_inc":
			return 33
		}
		return def
	})
	if p.Enabled() || p.SendmeInc != 33 || p.CwndInit != 124 {
		t.Fatalf("from consensus: %+v", p)
	}
	if n := (CCParams{}).normalized(); n.SendmeInc != 1 || n.CwndMax != 500 {
		t.Fatalf("normalized zero params: %+v", n)
	}
}

// newCCNet is a fake network of n relays that accept congestion control
// with sendme_inc 31.
func newCCNet(t *testing.T, n int) (*fakeNet, []*fakeRelayKeys) {
	var rs []*fakeRelayKeys
	for i := range n {
		rs = append(rs, newFakeRelayKeys(t, byte(i+1)))
	}
	f := newFakeNet(t, rs...)
	f.pool = cell.NewPool(8192)
	f.ccSendmeInc = 31
	return f, rs
}

// ccHop is the HopInfo of r asking for congestion control.
func ccHop(r *fakeRelayKeys) HopInfo {
	h := extHop(r)
	h.CongestionControl = true
	return h
}

// extHop is the HopInfo of r with an address for EXTEND2.
func extHop(r *fakeRelayKeys) HopInfo {
	h := r.hopInfo()
	h.Addrs = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5000")}
	return h
}

func TestCCNegotiatedWithExit(t *testing.T) {
	f, rs := newCCNet(t, 3)
	ctx := testCtx(t)
	c, err := Create(ctx, f, rs[0].hopInfo(), Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Extend(ctx, extHop(rs[1])); err != nil {
		t.Fatal(err)
	}
	if st := c.CongestionStats(); st.Enabled {
		t.Fatalf("congestion control before the exit: %+v", st)
	}
	if err := c.Extend(ctx, ccHop(rs[2])); err != nil {
		t.Fatal(err)
	}
	st := c.CongestionStats()
	if !st.Enabled || st.SendmeInc != 31 || st.Cwnd != 124 || !st.InSlowStart || st.Inflight != 0 {
		t.Fatalf("stats %+v", st)
	}
	f.runOnRelay(func() {
		for i, h := range f.hops {
			if h.cc != (i == 2) || h.ccRequested != (i == 2) {
				t.Errorf("hop %d: congestion control %v, requested %v", i+1, h.cc, h.ccRequested)
			}
		}
	})
	// The exit carries data both ways with congestion control.
	s, err := c.OpenStream(ctx, "example.com", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 40*cell.RelayDataLen)
	for i := range msg {
		msg[i] = byte(i)
	}
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo: %v", err)
	}
	noViolations(t, f)
}

func TestCCDeclinedUsesFixedWindows(t *testing.T) {
	f, rs := newCCNet(t, 1)
	f.ccSendmeInc = 0 // the relay answers with an empty extension list
	f.downloadForPort[0] = 700 * cell.RelayDataLen
	ctx := testCtx(t)
	c, err := Create(ctx, f, ccHop(rs[0]), Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.CongestionStats(); st.Enabled {
		t.Fatalf("stats %+v", st)
	}
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDownload(s, 700*cell.RelayDataLen); err != nil {
		t.Fatal(err)
	}
	if n := f.streamSendmes.Load(); n == 0 {
		t.Fatal("no stream SENDMEs with fixed windows")
	}
	f.runOnRelay(func() {
		if !f.hops[0].ccRequested || f.hops[0].cc {
			t.Errorf("relay: requested %v, congestion control %v", f.hops[0].ccRequested, f.hops[0].cc)
		}
	})
	noViolations(t, f)
}

func TestCCSendmeIncOutOfRange(t *testing.T) {
	f, rs := newCCNet(t, 2)
	f.ccSendmeInc = 63 // more than twice the consensus 31
	ctx := testCtx(t)
	c, err := Create(ctx, f, rs[0].hopInfo(), Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Extend(ctx, ccHop(rs[1]))
	if err == nil {
		t.Fatal("extended with sendme_inc 63")
	}
	t.Logf("extend: %v", err)
	<-c.Done()
	if !errors.Is(c.Err(), ErrProtocol) {
		t.Fatalf("circuit error %v, want a protocol violation", c.Err())
	}
}

// TestCCDownloadSendmeCadence: with congestion control the client answers
// every 31 DATA cells with an authenticated circuit SENDME (the relay
// checks the digests), sends no stream SENDMEs, and a stream may receive
// more than the old 500-cell window.
func TestCCDownloadSendmeCadence(t *testing.T) {
	f, rs := newCCNet(t, 1)
	const cells = 31*40 + 7
	f.downloadForPort[0] = cells * cell.RelayDataLen
	ctx := testCtx(t)
	c, err := Create(ctx, f, ccHop(rs[0]), Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDownload(s, cells*cell.RelayDataLen); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "40 circuit SENDMEs", func() bool { return f.hops[0].clientSendmes.Load() == 40 })
	if n := f.streamSendmes.Load(); n != 0 {
		t.Fatalf("%d stream SENDMEs with congestion control", n)
	}
	noViolations(t, f)
}

// TestCCSlowStartGrowth: an upload that keeps the window full, with every
// SENDME 100 ms after its cell (a test clock), grows cwnd by sendme_inc
// per SENDME in slow start: 124 + 10*31 after ten.
func TestCCSlowStartGrowth(t *testing.T) {
	f, rs := newCCNet(t, 1)
	f.noEcho = true
	f.ccHoldAcks = true
	clock := new(atomic.Int64)
	clock.Store(1_000_000)
	f.clock = clock
	ctx := testCtx(t)
	c, err := Create(ctx, f, ccHop(rs[0]), Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.mu.Lock()
	c.now = clock.Load
	c.mu.Unlock()
	s, err := c.OpenStream(ctx, "example.com", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(make([]byte, 3000*cell.RelayDataLen))
		werr <- err
	}()
	full := func() bool { st := c.CongestionStats(); return st.Inflight == st.Cwnd }
	for i := range 10 {
		waitUntil(t, "a full window", full)
		// Once the relay has received the whole window (so that the
		// clock has not moved between the sending of a cell and its
		// arrival), release the oldest SENDME 100 ms after its cell.
		sent := 31*i + c.CongestionStats().Cwnd
		waitUntil(t, "the window at the relay", func() bool {
			n := 0
			f.runOnRelay(func() { n = f.hops[0].recvCount })
			return n == sent
		})
		f.runOnRelay(func() {
			a := f.heldAcks[0]
			f.heldAcks = f.heldAcks[1:]
			clock.Store(a.at + 100_000)
			a.send()
		})
		want := 124 + 31*(i+1)
		waitUntil(t, "the window to grow", func() bool { return c.CongestionStats().Cwnd == want })
	}
	st := c.CongestionStats()
	if st.Cwnd != 434 || !st.InSlowStart || st.MinRTT != 100*time.Millisecond || st.EWMARTT != 100*time.Millisecond {
		t.Fatalf("after 10 SENDMEs: %+v", st)
	}
	c.Close()
	<-werr
	noViolations(t, f)
}

// TestCCClientSendsXoffXon: a stream nobody reads makes the client send
// XOFF once its unread data passes cc_xoff_client cells; its circuit
// SENDMEs stop at the hold limit; reading it all sends XON (with a drain
// rate) and the download completes.
func TestCCClientSendsXoffXon(t *testing.T) {
	f, rs := newCCNet(t, 1)
	f.ccCwnd = 1000
	const cells = 3000
	f.downloadForPort[0] = cells * cell.RelayDataLen
	ctx := testCtx(t)
	c, err := Create(ctx, f, ccHop(rs[0]), Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	xoffs := func() (n int) {
		f.runOnRelay(func() {
			for _, st := range f.streams {
				n += st.xoffs
			}
		})
		return n
	}
	waitUntil(t, "XOFF at the relay", func() bool { return xoffs() == 1 })
	// The relay stops; what was in flight arrives.
	var last int
	waitUntil(t, "the relay to stop", func() bool {
		n := c.HeldCells()
		stable := n == last && n > 0
		last = n
		if stable {
			time.Sleep(20 * time.Millisecond)
			stable = c.HeldCells() == n
		}
		return stable
	})
	held := c.HeldCells()
	if held <= 500 || held >= cells {
		t.Fatalf("%d cells held after XOFF", held)
	}
	if n := int(f.hops[0].clientSendmes.Load()); n*31 > c.ccp.holdLimit()+31 {
		t.Fatalf("%d circuit SENDMEs for %d held cells: not withheld beyond the hold limit %d", n, held, c.ccp.holdLimit())
	}
	if st := c.CongestionStats(); st.XoffSent != 1 || st.XonSent != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := checkDownload(s, cells*cell.RelayDataLen); err != nil {
		t.Fatal(err)
	}
	st := c.CongestionStats()
	if st.XonSent < 1 || st.XoffSent < 1 {
		t.Fatalf("no XON after draining: %+v", st)
	}
	var rates []uint32
	waitUntil(t, "the XONs at the relay", func() bool {
		f.runOnRelay(func() { rates = append([]uint32(nil), f.xonRates...) })
		return len(rates) == int(st.XonSent)
	})
	t.Logf("stats %+v, XON rates at the relay %v kB/s", st, rates)
	if rates[0] == 0 {
		t.Errorf("first XON without a drain rate")
	}
	if n := c.HeldCells(); n != 0 {
		t.Fatalf("%d cells held after reading everything", n)
	}
	noViolations(t, f)
}

// TestCCClientObeysXoffXon: the exit's XOFF stops the stream's writer
// until its XON; an XON with a rate limits the writer to it.
func TestCCClientObeysXoffXon(t *testing.T) {
	f, rs := newCCNet(t, 1)
	f.noEcho = true
	ctx := testCtx(t)
	c, err := Create(ctx, f, ccHop(rs[0]), Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.OpenStream(ctx, "example.com", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	received := func() (n int) {
		f.runOnRelay(func() {
			if st := f.streams[s.ID()]; st != nil {
				n = len(st.received)
			}
		})
		return n
	}
	f.relaySend(0, relayXoff, s.ID(), []byte{0})
	waitUntil(t, "the XOFF", func() bool { return c.CongestionStats().XoffReceived == 1 })
	s.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := s.Write([]byte("held back")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write after XOFF: %v", err)
	}
	s.SetWriteDeadline(time.Time{})
	if n := received(); n != 0 {
		t.Fatalf("relay received %d bytes after its XOFF", n)
	}
	done := make(chan error, 1)
	go func() { _, err := s.Write([]byte("after XON")); done <- err }()
	f.relaySend(0, relayXon, s.ID(), []byte{0, 0, 0, 0, 0})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the data", func() bool { return received() == len("after XON") })

	// XON at 100 kB/s: a burst of one second's worth, then the rate.
	f.relaySend(0, relayXon, s.ID(), []byte{0, 0, 0, 0, 100})
	waitUntil(t, "the second XON", func() bool { return c.CongestionStats().XonReceived == 2 })
	start := time.Now()
	if _, err := s.Write(make([]byte, 150_000)); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 400*time.Millisecond || el > 10*time.Second {
		t.Fatalf("150 kB at an advised 100 kB/s (burst 100 kB) took %v, want about 0.5 s", el)
	}
	noViolations(t, f)
}

// relaySend has hop i send a relay cell to the client.
func (f *fakeNet) relaySend(i int, cmd cell.RelayCommand, sid uint16, data []byte) {
	f.runOnRelay(func() { f.relayToClient(i, cmd, sid, data) })
}

// A stream SENDME on a hop with congestion control breaks the protocol.
func TestCCStreamSendmeIsViolation(t *testing.T) {
	f, rs := newCCNet(t, 1)
	ctx := testCtx(t)
	c, err := Create(ctx, f, ccHop(rs[0]), Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.relaySend(0, cell.RelaySendme, s.ID(), nil)
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("circuit survived a stream SENDME")
	}
	if !errors.Is(c.Err(), ErrProtocol) {
		t.Fatalf("error %v", c.Err())
	}
}

func newReceiveRigCC(tb testing.TB) *receiveRig {
	r1 := newFakeRelayKeys(tb, 1)
	f := newFakeNet(tb, r1)
	f.ccSendmeInc = 31
	pool := cell.NewPool(1024)
	pool.Preallocate()
	f.pool = pool
	ctx := context.Background()
	h := r1.hopInfo()
	h.CongestionControl = true
	c, err := Create(ctx, f, h, Config{Pool: pool})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if !c.CongestionStats().Enabled {
		tb.Fatal("no congestion control")
	}
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	f.discard.Store(true)
	return &receiveRig{c: c, s: s, pool: pool, f: f, data: make([]byte, cell.RelayDataLen), buf: make([]byte, cell.RelayDataLen)}
}

// BenchmarkCircuitReceiveCC is BenchmarkCircuitReceive on a hop with
// congestion control (a SENDME every 31 cells, flow control accounting).
func BenchmarkCircuitReceiveCC(b *testing.B) {
	r := newReceiveRigCC(b)
	b.SetBytes(cell.RelayDataLen)
	b.ReportAllocs()
	for b.Loop() {
		r.one(b)
	}
}

func TestReceiveAllocsCC(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	r := newReceiveRigCC(t)
	if a := testing.AllocsPerRun(1000, func() { r.one(t) }); a != 0 {
		t.Fatalf("%v allocations per received DATA cell with congestion control, want 0", a)
	}
}

func TestSendAllocsCC(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	r := newReceiveRigCC(t)
	// The rig's relay sends no SENDMEs: stay within cwnd_init (124),
	// after a first SENDME mark has sized the ring.
	for range 40 {
		if _, err := r.s.Write(r.data); err != nil {
			t.Fatal(err)
		}
	}
	if a := testing.AllocsPerRun(60, func() {
		if _, err := r.s.Write(r.data); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("%v allocations per sent DATA cell with congestion control, want 0", a)
	}
	// 101 writes; one in every 50 to 99 cells is split for random padding.
	if st := r.c.CongestionStats(); st.Inflight < 101 || st.Inflight > 104 {
		t.Fatalf("%d cells in flight, want 101 to 104", st.Inflight)
	}
}

// TestCCXonRateRecovers: a stream read slowly gets XONs advertising its
// drain rate; once its reader outpaces the exit, the advertised rate
// doubles every cc_xon_rate cells read, so the exit does not keep it at
// the slow rate.
func TestCCXonRateRecovers(t *testing.T) {
	f, rs := newCCNet(t, 1)
	f.ccCwnd = 400 // below the XOFF threshold: only the slow reader XOFFs
	const cells = 8000
	f.downloadForPort[0] = cells * cell.RelayDataLen
	ctx := testCtx(t)
	c, err := Create(ctx, f, ccHop(rs[0]), Config{Pool: f.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	total := 0
	var first uint32 // the first XON rate, once the XOFFed queue drained
	for start := time.Now(); first == 0 && time.Since(start) < 15*time.Second; {
		n, err := s.Read(buf)
		total += n
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // at most 400 kB/s
		f.runOnRelay(func() {
			for _, r := range f.xonRates {
				if r != 0 && first == 0 {
					first = r
				}
			}
		})
	}
	if first == 0 || first > 2000 {
		t.Fatalf("slow phase: XON rate %d kB/s for a reader at about 400 kB/s (stats %+v)", first, c.CongestionStats())
	}
	rest, err := io.ReadAll(s)
	if err != nil || total+len(rest) != cells*cell.RelayDataLen {
		t.Fatalf("download: %d+%d bytes, %v", total, len(rest), err)
	}
	var rates []uint32
	f.runOnRelay(func() { rates = append(rates, f.xonRates...) })
	top := uint32(0)
	for _, r := range rates {
		top = max(top, r)
	}
	t.Logf("XON rates %v kB/s", rates)
	if top < 8*first {
		t.Fatalf("advertised rate went from %d to at most %d kB/s once the reader was fast", first, top)
	}
	noViolations(t, f)
}
