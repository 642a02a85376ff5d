package circuit

import (
	"context"
	"io"
	"testing"

	"tinytor/tor/cell"
)

// BenchmarkCircuitReceive measures the whole receive path of a DATA cell:
// HandleCell, the circuit goroutine (decryption, windows, SENDMEs) and
// Stream.Read. With a cell pool it allocates nothing per cell.
func BenchmarkCircuitReceive(b *testing.B) {
	r1 := newFakeRelayKeys(b, 1)
	f := newFakeNet(b, r1)
	pool := cell.NewPool(1024)
	f.pool = pool
	ctx := context.Background()
	c, err := CreateFast(ctx, f, Config{Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s, err := c.OpenDirStream(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// From now on the relay side drops what the client sends (SENDMEs),
	// and this goroutine plays the relay's backward direction.
	f.discard.Store(true)
	layer := f.hops[0].layer
	data := make([]byte, cell.RelayDataLen)
	buf := make([]byte, cell.RelayDataLen)
	b.SetBytes(cell.RelayDataLen)
	b.ReportAllocs()
	for b.Loop() {
		cl := pool.Get()
		cl.CircID = c.ID()
		cl.Command = cell.Relay
		cell.SetRelay(&cl.Payload, cell.RelayData, s.ID(), data)
		layer.OriginateBackward(&cl.Payload)
		c.HandleCell(cl)
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
	}
}
