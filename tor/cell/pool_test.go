package cell

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// waitFor yields until cond holds; the pool's state changes come from
// other goroutines, which need to be scheduled.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func TestPoolBasics(t *testing.T) {
	p := NewPool(2)
	p.Preallocate()
	if s := p.Stats(); s.Idle != 2 || s.Allocated != 2 || s.Capacity != 2 || s.Reserve != 0 {
		t.Fatalf("after preallocate %+v", s)
	}
	a, b := p.Get(), p.Get()
	if s := p.Stats(); s.InUse != 2 || s.Idle != 0 || s.Peak != 2 {
		t.Fatalf("after 2 gets %+v", s)
	}
	a.Payload[0] = 1
	p.Put(a)
	p.Put(b)
	p.Put(new(Cell)) // not the pool's: dropped
	if s := p.Stats(); s.Idle != 2 || s.InUse != 0 || s.Allocated != 2 {
		t.Fatalf("after puts %+v", s)
	}
	if c := p.Get(); c.Payload[0] != 0 {
		t.Fatal("pooled cell not zeroed")
	}
	if NewPool(0).Capacity() != DefaultPoolCapacity {
		t.Fatal("capacity 0 is not the default")
	}
	var nilPool *Pool
	if nilPool.Get() == nil {
		t.Fatal("nil pool Get")
	}
	if c, err := nilPool.GetInbound(context.Background()); c == nil || err != nil {
		t.Fatalf("nil pool GetInbound: %v", err)
	}
	nilPool.Put(new(Cell))
	nilPool.AddReclaimer(nil)()
	if nilPool.Stats() != (PoolStats{}) {
		t.Fatal("nil pool stats")
	}
}

// TestPoolNeverExceedsCapacity hammers a small pool from many goroutines
// holding up to three cells each (4 × 2 held while waiting for a third
// stays under the inbound limit: holders waiting for more could otherwise
// wait for each other): no more cells than the capacity are ever
// allocated or in use.
func TestPoolNeverExceedsCapacity(t *testing.T) {
	const capacity = 16
	p := NewPoolConfig(PoolConfig{Capacity: capacity, Reserve: 4})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held []*Cell
			for j := range 2000 {
				var c *Cell
				if (i+j)%2 == 0 {
					c = p.Get()
				} else {
					var err error
					if c, err = p.GetInbound(context.Background()); err != nil {
						t.Error(err)
						return
					}
				}
				c.Payload[0] = 1
				held = append(held, c)
				if len(held) == 3 || j%5 == 0 {
					for _, c := range held {
						p.Put(c)
					}
					held = held[:0]
				}
			}
			for _, c := range held {
				p.Put(c)
			}
		}()
	}
	wg.Wait()
	s := p.Stats()
	if s.Allocated > capacity || s.Peak > capacity || s.InUse != 0 || s.Idle != s.Allocated {
		t.Fatalf("stats %+v exceed the capacity %d or leak", s, capacity)
	}
	t.Logf("stats %+v", s)
}

// TestPoolGetWaitsAtCapacity: with every cell in use, Get waits, and a
// Put lets it go on.
func TestPoolGetWaitsAtCapacity(t *testing.T) {
	p := NewPool(4)
	var held []*Cell
	for range 4 {
		held = append(held, p.Get())
	}
	got := make(chan *Cell)
	go func() { got <- p.Get() }()
	waitFor(t, "Get to wait", func() bool { return p.Stats().Waiting == 1 })
	select {
	case <-got:
		t.Fatal("Get returned with every cell in use")
	default:
	}
	p.Put(held[0])
	c := <-got
	if s := p.Stats(); s.InUse != 4 || s.Allocated != 4 || s.Waits != 1 || s.Waiting != 0 {
		t.Fatalf("after the wait: %+v", s)
	}
	p.Put(c)
}

// TestPoolInboundReserve: inbound Gets leave the reserve to outbound
// ones, wait, and resume when a cell comes back.
func TestPoolInboundReserve(t *testing.T) {
	p := NewPoolConfig(PoolConfig{Capacity: 10, Reserve: 3, StallTimeout: -1})
	ctx := context.Background()
	var in []*Cell
	for range 7 {
		c, err := p.GetInbound(ctx)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, c)
	}
	got := make(chan *Cell)
	go func() {
		c, err := p.GetInbound(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitFor(t, "GetInbound to wait", func() bool { return p.Stats().Waiting == 1 })
	// Outbound cells still come, from the reserve.
	out := []*Cell{p.Get(), p.Get(), p.Get()}
	if s := p.Stats(); s.InUse != 10 {
		t.Fatalf("in use %d, want 10", s.InUse)
	}
	// Returning an outbound cell makes room only for outbound Gets.
	p.Put(out[0])
	select {
	case <-got:
		t.Fatal("GetInbound ate into the reserve")
	default:
	}
	p.Put(out[1])
	p.Put(out[2])
	p.Put(in[0])
	c := <-got
	if s := p.Stats(); s.InUse != 7 || s.Peak != 10 {
		t.Fatalf("after resuming: %+v", s)
	}
	p.Put(c)
}

// TestPoolInboundContext: a waiting GetInbound ends when its context is
// cancelled, with an error that says so.
func TestPoolInboundContext(t *testing.T) {
	p := NewPoolConfig(PoolConfig{Capacity: 2, StallTimeout: -1})
	a, b := p.Get(), p.Get()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		c, err := p.GetInbound(ctx)
		if c != nil {
			t.Error("got a cell from a full pool")
		}
		errc <- err
	}()
	waitFor(t, "GetInbound to wait", func() bool { return p.Stats().Waiting == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if s := p.Stats(); s.Waiting != 0 || s.InUse != 2 {
		t.Fatalf("after cancel: %+v", s)
	}
	p.Put(a)
	p.Put(b)
	// With room, a done context does not matter: nothing waits.
	c, err := p.GetInbound(ctx)
	if err != nil {
		t.Fatalf("GetInbound with room: %v", err)
	}
	p.Put(c)
}

type testReclaimer struct {
	p     *Pool
	cells []*Cell
	calls int
}

func (r *testReclaimer) HeldCells() int { return len(r.cells) }

func (r *testReclaimer) Reclaim() {
	r.calls++
	for _, c := range r.cells {
		r.p.Put(c)
	}
	r.cells = nil
}

// TestPoolReclaimOnStall: when inbound Gets make no progress for the stall
// timeout, the pool asks the reclaimer holding the most cells to let go.
func TestPoolReclaimOnStall(t *testing.T) {
	p := NewPoolConfig(PoolConfig{Capacity: 6, Reserve: -1, StallTimeout: 20 * time.Millisecond})
	small := &testReclaimer{p: p}
	big := &testReclaimer{p: p}
	for range 2 {
		small.cells = append(small.cells, p.Get())
	}
	for range 4 {
		big.cells = append(big.cells, p.Get())
	}
	defer p.AddReclaimer(small)()
	remove := p.AddReclaimer(big)
	c, err := p.GetInbound(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	remove()
	if big.calls != 1 || small.calls != 0 {
		t.Fatalf("reclaim calls: big %d, small %d", big.calls, small.calls)
	}
	if s := p.Stats(); s.Reclaims != 1 || s.InUse != 3 {
		t.Fatalf("after reclaim: %+v", s)
	}
	p.Put(c)
}

func TestPoolAllocs(t *testing.T) {
	p := NewPool(8)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		c := p.Get()
		d, _ := p.GetInbound(ctx)
		p.Put(c)
		p.Put(d)
	})
	if allocs != 0 {
		t.Fatalf("Get/Put allocated %v times", allocs)
	}
}

func BenchmarkPoolGetPut(b *testing.B) {
	p := NewPool(64)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, _ := p.GetInbound(ctx)
		p.Put(c)
	}
}
