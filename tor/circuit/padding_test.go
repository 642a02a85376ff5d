package circuit

import (
	"bytes"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"tinytor/tor/cell"
)

// checkRandomWindows fails the test unless every CircWindowInc consecutive
// DATA cell lengths include one of at most randomDataMax bytes.
func checkRandomWindows(t *testing.T, lens []int) {
	t.Helper()
	last := -1 // index of the last random cell
	for i, n := range lens {
		if n <= randomDataMax {
			last = i
		}
		if i-last >= CircWindowInc {
			t.Fatalf("DATA cells %d to %d all carry more than %d bytes: no random padding in %d cells", last+1, i, randomDataMax, CircWindowInc)
		}
	}
}

// TestSendPaddingSchedule drives the packaging decision alone: a writer
// that always has more than a cell's worth gets full cells except one in
// every interval of 50 to 99, which is cut to leave random padding.
func TestSendPaddingSchedule(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{7})
	var p sendPadding
	const cells = 10000
	lens := make([]int, cells)
	short := 0
	for i := range lens {
		lens[i] = p.dataLen(1<<20, rng)
		switch lens[i] {
		case cell.RelayDataLen:
		case randomDataMax:
			short++
		default:
			t.Fatalf("cell %d carries %d bytes", i, lens[i])
		}
	}
	checkRandomWindows(t, lens)
	if short > cells/(CircWindowInc/2)+1 {
		t.Errorf("%d of %d cells cut short; at most one in %d should be", short, cells, CircWindowInc/2)
	}

	// A cell short of its own (the end of a write) counts: the interval it
	// falls in needs no other.
	var q sendPadding
	q.reset(rng)
	q.left = 10
	for range 5 {
		if n := q.dataLen(1<<20, rng); n != cell.RelayDataLen {
			t.Fatalf("full cell expected, got %d bytes", n)
		}
	}
	if n := q.dataLen(100, rng); n != 100 {
		t.Fatalf("a 100-byte write sent %d bytes", n)
	}
	for i := range 5 { // the last ends the interval
		if n := q.dataLen(1<<20, rng); n != cell.RelayDataLen {
			t.Fatalf("cell %d after a short one cut to %d bytes", i, n)
		}
	}
	if q.left < CircWindowInc/2-1 || q.left > CircWindowInc-2 {
		t.Fatalf("interval not restarted after its last cell: %d cells left", q.left)
	}
}

// TestDataCellsCarryRandomPadding writes 300 cells' worth on a stream and
// checks the cells as the exit decrypts them: within every 100 DATA cells
// one is short, and its padding is four zero bytes and then random bytes.
func TestDataCellsCarryRandomPadding(t *testing.T) {
	c, f := build3(t, false)
	var (
		mu   sync.Mutex
		lens []int
		bad  []string
	)
	f.runOnRelay(func() {
		f.onData = func(body, pad []byte) {
			mu.Lock()
			defer mu.Unlock()
			lens = append(lens, len(body))
			if len(pad) >= 4 && !bytes.Equal(pad[:4], make([]byte, 4)) {
				bad = append(bad, "padding does not start with four zero bytes")
			}
			if len(body) <= randomDataMax && !bytes.ContainsFunc(pad[4:], func(r rune) bool { return r != 0 }) {
				bad = append(bad, "short cell with all-zero padding")
			}
		}
	})
	ctx := testCtx(t)
	s, err := c.OpenStream(ctx, "127.0.0.1", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 300*cell.RelayDataLen)
	for i := range data {
		data[i] = byte(i * 31)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(data)
		werr <- err
	}()
	// The relay echoes each cell after looking at it: once the echo is
	// all back, it has seen every cell.
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
	noViolations(t, f)

	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d bad cells, first: %s", len(bad), bad[0])
	}
	total, short := 0, 0
	for _, n := range lens {
		total += n
		if n <= randomDataMax {
			short++
		}
	}
	if total != len(data) || len(lens) <= 300 {
		t.Fatalf("%d DATA cells carried %d bytes, want more than 300 cells for %d", len(lens), total, len(data))
	}
	if short < 3 {
		t.Errorf("%d short cells in %d", short, len(lens))
	}
	checkRandomWindows(t, lens)
}

// BenchmarkStreamWrite measures the send path of a full DATA cell:
// packaging (with the random padding schedule), encryption and SENDME
// digest records. The rig's relay sends no SENDMEs, so the windows are
// refilled by hand. With a cell pool it allocates nothing per cell.
func BenchmarkStreamWrite(b *testing.B) {
	r := newReceiveRig(b)
	b.SetBytes(cell.RelayDataLen)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n++; n == 400 { // well within the stream window, short cells included
			n = 0
			r.c.mu.Lock()
			r.s.packageWindow = StreamWindowStart
			h := r.c.hops[r.s.hop]
			h.packageWindow, h.sentHead, h.sentDigestsN = CircWindowStart, 0, 0
			r.c.mu.Unlock()
		}
		if _, err := r.s.Write(r.data); err != nil {
			b.Fatal(err)
		}
	}
}
