package circuit

import (
	"context"
	"io"
	"testing"

	"tinytor/tor/cell"
)

// receiveRig is a one-hop circuit with an open stream where the test
// goroutine plays the relay's backward direction.
type receiveRig struct {
	c    *Circuit
	s    *Stream
	pool *cell.Pool
	f    *fakeNet
	data []byte
	buf  []byte
}

func newReceiveRig(tb testing.TB) *receiveRig {
	r1 := newFakeRelayKeys(tb, 1)
	f := newFakeNet(tb, r1)
	pool := cell.NewPool(1024)
	pool.Preallocate()
	f.pool = pool
	ctx := context.Background()
	c, err := CreateFast(ctx, f, Config{Pool: pool})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	// From now on the relay side drops what the client sends (SENDMEs).
	f.discard.Store(true)
	return &receiveRig{c: c, s: s, pool: pool, f: f, data: make([]byte, cell.RelayDataLen), buf: make([]byte, cell.RelayDataLen)}
}

// one sends a DATA cell from the relay and reads it from the stream.
func (r *receiveRig) one(tb testing.TB) {
	cl := r.pool.Get()
	cl.CircID = r.c.ID()
	cl.Command = cell.Relay
	cell.SetRelay(&cl.Payload, cell.RelayData, r.s.ID(), r.data)
	r.f.hops[0].layer.OriginateBackward(&cl.Payload)
	r.c.HandleCell(cl)
	if _, err := io.ReadFull(r.s, r.buf); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkCircuitReceive measures the whole receive path of a DATA cell:
// HandleCell, the circuit goroutine (decryption, windows, SENDMEs) and
// Stream.Read. With a cell pool it allocates nothing per cell.
func BenchmarkCircuitReceive(b *testing.B) {
	r := newReceiveRig(b)
	b.SetBytes(cell.RelayDataLen)
	b.ReportAllocs()
	for b.Loop() {
		r.one(b)
	}
}

func TestReceiveAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	r := newReceiveRig(t)
	// 1000 cells: crosses circuit and stream SENDME points many times.
	if a := testing.AllocsPerRun(1000, func() { r.one(t) }); a != 0 {
		t.Fatalf("%v allocations per received DATA cell, want 0", a)
	}
}

func TestSendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	r := newReceiveRig(t)
	// 400 cells stay within the stream window (the rig's relay sends no
	// SENDMEs) and cross four circuit SENDME digest records.
	if a := testing.AllocsPerRun(400, func() {
		if _, err := r.s.Write(r.data); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("%v allocations per sent DATA cell, want 0", a)
	}
}
