package circmgr

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"tinytor/tor/cbt"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
)

// Learned circuit build timeouts (path-spec 2.4; C tor's circuitstats.c
// and circuit_expire_building in circuituse.c).
//
// Every build of three hops or more is timed by a buildTrace that
// buildHops finds in its context. The caller waits at most the timeout in
// force; a build still unfinished then is given up by the caller (a
// TIMEOUT error) but goes on in the background as a measurement circuit
// until the close timeout: if it completes, its time is recorded and it is
// closed; if not, it is recorded as abandoned. While no circuit is open
// the timeout is relaxed to the close timeout instead (C tor's bug 3443
// rule: the user may have changed networks), counting one timeout.

// ErrBuildTimeout is matched (errors.Is) by the error a build returns
// when it passed the circuit build timeout; it wraps
// context.DeadlineExceeded too.
var ErrBuildTimeout = errfmt.Errorf("circuit build timed out: %w", context.DeadlineExceeded)

// traceKey is the context key of a build's *buildTrace.
type traceKey struct{}

// buildTrace follows one timed build.
type buildTrace struct {
	est   *cbt.Estimator
	start time.Time
	now   func() time.Time
	// counted is false for builds whose time is not learned from (fewer
	// than three hops, or learning disabled).
	counted bool

	oneHop atomic.Bool // the first hop completed

	mu        lock.Mutex
	recorded  bool // the build time was recorded
	measuring bool // passed the timeout: a measurement circuit
}

func traceFrom(ctx context.Context) *buildTrace {
	t, _ := ctx.Value(traceKey{}).(*buildTrace)
	return t
}

// firstHop notes that the first hop was created: a cell arrived, so the
// network is live.
func (t *buildTrace) firstHop() {
	if t == nil {
		return
	}
	t.oneHop.Store(true)
	t.est.NetworkLive()
}

// completed notes that the third hop was built and records the build
// time (circuit_build_times_handle_completed_hop).
func (t *buildTrace) completed() {
	if t == nil {
		return
	}
	t.est.NetworkLive()
	if !t.counted {
		return
	}
	t.mu.Lock()
	if t.recorded {
		t.mu.Unlock()
		return
	}
	t.recorded = true
	measuring := t.measuring
	t.mu.Unlock()
	t.est.Built(t.now().Sub(t.start), measuring)
}

// passTimeout marks the build as timed out, a measurement circuit unless
// relaxed, unless its time was already recorded; it reports whether it
// did.
func (t *buildTrace) passTimeout(relaxed bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.recorded {
		return false
	}
	t.measuring = !relaxed
	return true
}

// syncCBT gives the estimator the consensus parameters and the torrc
// options in force.
func (m *Manager) syncCBT() {
	est := m.cfg.CBT
	if t := m.cfg.Torrc(); t != nil {
		est.SetConfig(t.LearnCircuitBuildTimeout, t.CircuitBuildTimeout)
	}
	d := m.cfg.Dir()
	if d == nil || d.Consensus == nil {
		return
	}
	if m.cbtConsensus.Swap(d.Consensus) != d.Consensus {
		est.SetParams(cbt.ParamsFrom(d.Consensus.Param))
	}
}

// bytesRead is what the channels read so far: a change means cells
// arrived, the liveness C tor notes per cell.
func (m *Manager) bytesRead() uint64 {
	if m.cfg.Channels == nil {
		return 0
	}
	r, _ := m.cfg.Channels.Traffic()
	return r
}

// anyOpen reports whether a pool circuit is open
// (circuit_any_opened_circuits).
func (m *Manager) anyOpen() bool {
	if m.anyOpenHook != nil {
		return m.anyOpenHook()
	}
	m.pool.mu.Lock()
	defer m.pool.mu.Unlock()
	for _, e := range m.pool.circs {
		if e.alive() {
			return true
		}
	}
	return false
}

type buildResult struct {
	b   *built
	err error
}

// timed runs build, a build of hops hops, under the learned timeout (see
// the top of this file).
func (m *Manager) timed(ctx context.Context, hops int, build func(context.Context) (*built, error)) (*built, error) {
	est := m.cfg.CBT
	m.syncCBT()
	est.NoteLaunch()
	timeout, closeAfter := est.Timeouts()
	counted := hops >= 3 && !est.Disabled()
	if !counted || closeAfter < timeout {
		closeAfter = timeout
	}
	tr := &buildTrace{est: est, start: m.cfg.Now(), now: m.cfg.Now, counted: counted}
	read0 := m.bytesRead()
	// Past the timeout the build outlives the caller: it ends at the close
	// timeout or when the manager closes.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeAfter)
	stopLife := context.AfterFunc(m.life, cancel)
	bctx = context.WithValue(bctx, traceKey{}, tr)
	res := make(chan buildResult, 1)
	go func() {
		defer cancel()
		defer stopLife()
		b, err := build(bctx)
		res <- buildResult{b, err}
	}()
	// A build that is not counted simply ends at its deadline.
	var timer <-chan time.Time
	if counted && closeAfter > timeout {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	select {
	case r := <-res:
		return r.b, r.err
	case <-ctx.Done():
		cancel()
		r := <-res
		return r.b, r.err
	case <-timer:
	}
	relaxed := !m.anyOpen()
	if !tr.passTimeout(relaxed) {
		// It completed as the timer fired.
		r := <-res
		return r.b, r.err
	}
	if relaxed {
		// No circuit is open: relax the timeout for this circuit to the
		// close timeout, and count it once.
		m.cfg.Log.Infof("No circuits are opened. Relaxing timeout for a %d-hop circuit.", hops)
		est.TimedOut(tr.oneHop.Load())
		var r buildResult
		select {
		case r = <-res:
		case <-ctx.Done():
			cancel()
			r = <-res
		}
		if r.err != nil && errors.Is(bctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil && est.EnoughToCompute() {
			m.abandoned(tr, read0, closeAfter)
		}
		return r.b, r.err
	}
	enough := est.EnoughToCompute()
	if enough {
		m.cfg.Log.Infof("Deciding to timeout circuit after %v: keeping it as a measurement circuit until %v.", timeout, closeAfter)
		est.TimedOut(tr.oneHop.Load())
	} else {
		// Nothing is learned yet: the build just ends, as in C tor.
		cancel()
	}
	go func() {
		r := <-res
		switch {
		case r.err == nil:
			// Its time is recorded; it is no use otherwise.
			if r.b != nil && r.b.circ != nil {
				r.b.circ.Close()
			}
		case enough && errors.Is(bctx.Err(), context.DeadlineExceeded):
			m.abandoned(tr, read0, closeAfter)
		}
	}()
	return nil, errfmt.Errorf("after %v: %w", timeout.Round(time.Millisecond), ErrBuildTimeout)
}

// abandoned records a build that reached the close timeout
// (circuit_build_times_count_close), unless the wait was so long that the
// clock must have jumped.
func (m *Manager) abandoned(tr *buildTrace, read0 uint64, closeAfter time.Duration) {
	now := m.cfg.Now()
	if now.Sub(tr.start) > 2*closeAfter+time.Second {
		m.cfg.Log.Noticef("Extremely large value for circuit build timeout: %ds. Assuming clock jump.", int64(now.Sub(tr.start)/time.Second))
		return
	}
	if m.bytesRead() != read0 {
		tr.est.NetworkLive() // cells arrived while it was building
	}
	tr.est.Abandoned(tr.oneHop.Load(), tr.start)
}

// testCircuit builds, one at a time, the circuits C tor builds to learn
// the timeout while fewer than cbtmincircs build times are known: one
// every cbttestfreq (circuit_build_times_needs_circuits_now). Unlike C
// tor, which keeps them as clean circuits (up to cbtmaxopencircs), they
// are closed once built: only their time was wanted, and a router has
// little memory for idle circuits.
func (m *Manager) testCircuit(ctx context.Context) {
	est := m.cfg.CBT
	if est == nil || !est.NeedsCircuitsNow() || est.Params().MaxOpenCircs == 0 {
		return
	}
	if f := m.cfg.AllowPrebuild; f != nil && !f() {
		return
	}
	if !m.testing.CompareAndSwap(false, true) {
		return
	}
	est.NoteLaunch()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer m.testing.Store(false)
		b, err := m.buildExit(ctx)
		if err != nil {
			m.cfg.Log.Infof("Circuit build timeout test circuit failed: %v", err)
			return
		}
		b.circ.Close()
	}()
}
