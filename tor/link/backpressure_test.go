package link

import (
	"context"
	"runtime"
	"testing"
	"time"

	"tinytor/tor/cell"
)

// holdingHandler keeps every cell it gets, as a circuit whose readers do
// not read.
type holdingHandler struct {
	cells  chan *cell.Cell
	closed chan error
}

func (h *holdingHandler) HandleCell(c *cell.Cell)       { h.cells <- c }
func (h *holdingHandler) HandleChannelClosed(err error) { h.closed <- err }

// TestReadLoopWaitsForFreeCells: with the pool's inbound share in use,
// the read loop stops reading (the relay's cells stay in the socket) and
// takes up again when a cell comes back; closing the channel ends its
// wait.
func TestReadLoopWaitsForFreeCells(t *testing.T) {
	f := startRelay(t, relayOpts{})
	pool := cell.NewPoolConfig(cell.PoolConfig{Capacity: 12, Reserve: 2, StallTimeout: -1})
	cfg, _ := testConfig(pool)
	ch, err := Dial(context.Background(), f.addr(), f.keys.identity(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rc *relayConn
	select {
	case rc = <-f.conns:
	case err := <-f.errs:
		t.Fatal(err)
	}
	h := &holdingHandler{cells: make(chan *cell.Cell, 64), closed: make(chan error, 1)}
	id, err := ch.OpenCircuit(h)
	if err != nil {
		t.Fatal(err)
	}
	// The handshake's cells are back in the pool: 10 may be read.
	const sent = 20
	for i := range sent {
		rc.send(t, &cell.Cell{CircID: id, Command: cell.Relay, Payload: [cell.PayloadLen]byte{byte(i)}})
	}
	var held []*cell.Cell
	for range 10 {
		held = append(held, <-h.cells)
	}
	waitReadLoop(t, pool)
	if s := pool.Stats(); s.InUse != 10 || len(h.cells) != 0 {
		t.Fatalf("with the inbound share in use: %+v, %d more cells delivered", s, len(h.cells))
	}
	// Outbound cells still come from the reserve.
	out := pool.Get()
	out.CircID, out.Command = id, cell.Relay
	if err := ch.Send(out); err != nil {
		t.Fatal(err)
	}
	if got, _, err := rc.r.ReadCell(); err != nil || got.CircID != id {
		t.Fatalf("relay got %v, %v", got, err)
	}
	// Each cell given back lets one more in, in order.
	for i := range 10 {
		pool.Put(held[i])
		c := <-h.cells
		if c.Payload[0] != byte(10+i) {
			t.Fatalf("cell %d arrived in place of cell %d", c.Payload[0], 10+i)
		}
		held[i] = c
	}
	if s := pool.Stats(); s.Peak > 12 || s.Allocated > 12 {
		t.Fatalf("pool beyond its capacity: %+v", s)
	}
	// A read loop waiting for a cell ends with the channel.
	rc.send(t, &cell.Cell{CircID: id, Command: cell.Relay})
	waitReadLoop(t, pool)
	ch.Close()
	select {
	case <-ch.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the channel's loops did not end")
	}
	if s := pool.Stats(); s.Waiting != 0 {
		t.Fatalf("still waiting after Close: %+v", s)
	}
	for _, c := range held {
		pool.Put(c)
	}
}

// waitReadLoop yields until one Get waits for a cell of pool.
func waitReadLoop(t *testing.T, pool *cell.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for pool.Stats().Waiting != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the read loop does not wait: %+v", pool.Stats())
		}
		runtime.Gosched()
	}
}
