package circmgr

import (
	"context"
	"errors"
	"testing"
	"time"

	"tinytor/tor/cbt"
	"tinytor/tor/config"
	"tinytor/tor/dirmgr"
	"tinytor/tor/event"
)

func TestTimedFast(t *testing.T) {
	m, est, _ := newCBTManager(t, &event.Bus{}, true)
	before := est.Status().TotalTimes
	b, err := m.timed(context.Background(), 3, func(ctx context.Context) (*built, error) {
		tr := traceFrom(ctx)
		tr.firstHop()
		tr.completed()
		return &built{id: 7}, nil
	})
	if err != nil || b.id != 7 {
		t.Fatalf("%v %v", b, err)
	}
	if got := est.Status().TotalTimes; got != before+1 {
		t.Fatalf("times %d, want %d", got, before+1)
	}
}

// TestTimedMeasurement: a build slower than the learned timeout returns
// ErrBuildTimeout to its caller at the timeout, goes on as a measurement
// circuit, and its time is recorded when it completes.
func TestTimedMeasurement(t *testing.T) {
	m, est, computed := newCBTManager(t, &event.Bus{}, true)
	timeout, closeAfter := est.Timeouts()
	if timeout != 10*time.Millisecond || closeAfter != 2*time.Second {
		t.Fatalf("timeouts %v %v", timeout, closeAfter)
	}
	release := make(chan struct{})
	start := time.Now()
	_, err := m.timed(context.Background(), 3, func(ctx context.Context) (*built, error) {
		tr := traceFrom(ctx)
		tr.firstHop()
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		tr.completed()
		return &built{}, nil
	})
	if !errors.Is(err, ErrBuildTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("caller waited %v", d)
	}
	close(release)
	select {
	case ev := <-computed:
		if ev.TotalTimes != 101 || ev.TimeoutRate == 0 {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("measurement not recorded")
	}
}

// TestTimedAbandoned: a measurement circuit still unbuilt at the close
// timeout is recorded as abandoned.
func TestTimedAbandoned(t *testing.T) {
	m, est, computed := newCBTManager(t, &event.Bus{}, true)
	_, err := m.timed(context.Background(), 3, func(ctx context.Context) (*built, error) {
		traceFrom(ctx).firstHop()
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if !errors.Is(err, ErrBuildTimeout) {
		t.Fatalf("err %v", err)
	}
	select {
	case ev := <-computed:
		if ev.TotalTimes != 101 || ev.CloseRate == 0 {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("abandoned circuit not recorded")
	}
	if !est.IsLive() {
		t.Fatal("network taken for dead")
	}
}

// TestTimedRelaxed: with no circuit open, the caller waits until the
// close timeout and gets the circuit if it completes by then.
func TestTimedRelaxed(t *testing.T) {
	m, est, _ := newCBTManager(t, &event.Bus{}, false)
	b, err := m.timed(context.Background(), 3, func(ctx context.Context) (*built, error) {
		tr := traceFrom(ctx)
		tr.firstHop()
		time.Sleep(100 * time.Millisecond) // a slow build, past the 10 ms timeout
		tr.completed()
		return &built{id: 9}, nil
	})
	if err != nil || b.id != 9 {
		t.Fatalf("%v %v", b, err)
	}
	if r := est.Status().TimeoutRate; r == 0 {
		t.Fatal("relaxed timeout not counted")
	}
}

// TestTimedCallerGone: a caller that gives up before the timeout stops
// the build (here with learning turned off by a reload).
func TestTimedCallerGone(t *testing.T) {
	m, _, _ := newCBTManager(t, &event.Bus{}, true)
	m.cfg.Torrc = func() *config.Config { return &config.Config{CircuitBuildTimeout: time.Minute} }
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() { <-started; cancel() }()
	_, err := m.timed(ctx, 3, func(ctx context.Context) (*built, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if to, _ := m.cfg.CBT.Timeouts(); to != time.Minute {
		t.Fatalf("LearnCircuitBuildTimeout 0 not applied: %v", to)
	}
}

// newCBTManager returns a Manager whose estimator publishes on bus,
// has learned a 10 ms timeout from 100 builds of 5 ms and abandons
// measurement circuits after 2 s, and a channel of the COMPUTED events
// that follow. anyOpen is what the Manager believes of open circuits.
func newCBTManager(t *testing.T, bus *event.Bus, anyOpen bool) (*Manager, *cbt.Estimator, <-chan event.BuildTimeoutSet) {
	t.Helper()
	est := cbt.New(cbt.Options{Events: bus})
	p := cbt.DefaultParams()
	p.InitialTimeoutMS = 2000
	est.SetParams(p)
	est.NetworkLive()
	for range 100 {
		est.Built(5*time.Millisecond, false)
	}
	computed := make(chan event.BuildTimeoutSet, 16)
	cancel := bus.Subscribe(func(ev event.Event) {
		if b, ok := ev.(*event.BuildTimeoutSet); ok && b.Type == "COMPUTED" {
			select {
			case computed <- *b:
			default:
			}
		}
	})
	t.Cleanup(cancel)
	torrc := &config.Config{LearnCircuitBuildTimeout: true}
	m := New(Config{
		Torrc: func() *config.Config { return torrc },
		Dir:   func() *dirmgr.NetDir { return nil },
		CBT:   est,
	})
	m.anyOpenHook = func() bool { return anyOpen }
	t.Cleanup(m.CloseAll)
	return m, est, computed
}
