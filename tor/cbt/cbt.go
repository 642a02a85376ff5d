// Package cbt learns when to give up on a circuit build, as C tor does
// (path-spec 2.4, "Learning when to give up ("timeout") on circuit
// construction"; C tor's circuitstats.c is the behaviour followed).
//
// An Estimator keeps the last NCircuitsToObserve build times of 3-hop
// circuits. Once cbtmincircs are known it fits a Pareto curve to them: Xm
// is the weighted average of the cbtnummodes most frequent 10 ms bins,
// alpha the maximum-likelihood estimate. The timeout is the curve's
// cbtquantile point (80 %): circuits slower than it are given up by their
// user but kept building as measurement circuits until the close timeout
// (cbtclosequantile, 99 %, at least cbtinitialtimeout), so that the tail of
// the curve is measured too; circuits still unbuilt at the close timeout
// are recorded as abandoned.
//
// The network-liveness rules guard the history: build times and
// abandoned circuits are not recorded while the network shows no activity
// (no cell received since the circuit started), and when cbtmaxtimeouts of
// the last cbtrecentcount circuits that completed a first hop timed out,
// the history is discarded and the timeout goes back to its initial value
// (or doubles, if it was already there).
//
// The history is persisted as C tor writes it in its state file:
//
//	CircuitBuildTimeBin <bin midpoint in ms> <count>
//	...
//	CircuitBuildAbandonedCount <n>   (left out when 0)
//	TotalBuildTimes <n>
//
// and shuffled when read back, so that old values still expire in a
// random order.
package cbt

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"time"

	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// DefaultStateName is the name under which the history is persisted.
const DefaultStateName = "cbt"

// Persister stores the history; guard.Persister and guard.Funcs (with
// board/state) fit.
type Persister interface {
	// Read returns the stored data; an absent file gives an error
	// matching fs.ErrNotExist.
	Read(name string) ([]byte, error)
	// Write replaces the stored data.
	Write(name string, data []byte) error
}

// Options configure an Estimator. The zero value learns (as
// LearnCircuitBuildTimeout 1 does), with the real clock and no persistence.
type Options struct {
	// NoLearn is LearnCircuitBuildTimeout 0.
	NoLearn bool
	// Fixed is CircuitBuildTimeout (0: not set). Without learning it is the
	// timeout; with learning it is the timeout until one is learned.
	Fixed time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives C tor style messages; nil discards them.
	Log *torlog.Logger
	// Events receives a *event.BuildTimeoutSet each time the timeout is
	// set (BUILDTIMEOUT_SET); nil publishes nothing.
	Events *event.Bus
	// Store persists the history; nil keeps it in memory only.
	Store Persister
	// StateName is the name given to Store; "" means DefaultStateName.
	StateName string
	// Rand shuffles the history read back; nil means a generator seeded
	// from the runtime.
	Rand *rand.Rand
}

// liveness is C tor's network_liveness_t.
type liveness struct {
	lastLive        time.Time
	nonliveTimeouts int
	// recent holds 1 for a circuit that timed out after its first hop
	// and 0 for one that succeeded, in a ring of RecentCount entries.
	recent    []int8
	recentIdx int
}

// Estimator is the circuit build time learner. Its methods are safe for
// concurrent use.
type Estimator struct {
	mu     lock.Mutex
	opts   Options
	params Params

	times [NCircuitsToObserve]int32 // build times in ms; 0 empty, abandoned
	idx   int
	total int

	live      liveness
	lastCirc  time.Time
	xm        int32
	alpha     float64
	computed  bool
	timeoutMS float64
	closeMS   float64

	succeeded, timeouts, closed uint32

	// dirty counts the times added since the last save.
	dirty int
}

// New returns an Estimator with an empty history, the default parameters
// and the initial timeout. Call Load to read the persisted history.
func New(opts Options) *Estimator {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = torlog.Discard()
	}
	if opts.StateName == "" {
		opts.StateName = DefaultStateName
	}
	if opts.Rand == nil {
		opts.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	e := &Estimator{opts: opts, params: DefaultParams()}
	e.mu.Lock()
	e.init()
	ev := e.eventLocked("RESET")
	e.mu.Unlock()
	e.publish(ev)
	return e
}

// init is circuit_build_times_init without the event.
func (e *Estimator) init() {
	e.times = [NCircuitsToObserve]int32{}
	e.idx, e.total = 0, 0
	e.live = liveness{}
	e.lastCirc = time.Time{}
	e.xm, e.alpha, e.computed = 0, 0, false
	e.succeeded, e.timeouts, e.closed = 0, 0, 0
	if !e.disabledLocked() {
		e.live.recent = make([]int8, e.params.RecentCount)
	}
	e.timeoutMS = e.initialTimeoutLocked()
	e.closeMS = e.timeoutMS
}

// disabledLocked is circuit_build_times_disabled: learning is off by the
// torrc or by the consensus.
func (e *Estimator) disabledLocked() bool { return e.opts.NoLearn || e.params.Disabled }

// initialTimeoutLocked is circuit_build_times_get_initial_timeout: a
// configured CircuitBuildTimeout (no lower than cbtmintimeout while
// learning), else cbtinitialtimeout.
func (e *Estimator) initialTimeoutLocked() float64 {
	if e.opts.Fixed > 0 {
		t := float64(e.opts.Fixed / time.Millisecond)
		if !e.disabledLocked() && t < float64(e.params.MinTimeoutMS) {
			e.opts.Log.Warnf("Config CircuitBuildTimeout too low. Setting to %ds", e.params.MinTimeoutMS/1000)
			t = float64(e.params.MinTimeoutMS)
		}
		return t
	}
	return float64(e.params.InitialTimeoutMS)
}

// Disabled reports whether learning is off (LearnCircuitBuildTimeout 0 or
// cbtdisabled 1): the timeout is then fixed.
func (e *Estimator) Disabled() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.disabledLocked()
}

// Timeouts returns the timeout after which a circuit build is given up
// and the close timeout after which a measurement circuit is abandoned.
func (e *Estimator) Timeouts() (timeout, closeAfter time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return msDuration(e.timeoutMS), msDuration(e.closeMS)
}

// Timeout returns the timeout in force and whether it was learned from
// build times (false: the initial or configured value).
func (e *Estimator) Timeout() (timeout time.Duration, learned bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return msDuration(e.timeoutMS), e.computed && !e.disabledLocked()
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// Params returns the parameters in use.
func (e *Estimator) Params() Params {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.params
}

// SetConfig applies LearnCircuitBuildTimeout (learn) and
// CircuitBuildTimeout (fixed) after a reload. A change that disables
// learning drops the liveness history, as C tor does; a timeout not yet
// learned is set to the new initial value.
func (e *Estimator) SetConfig(learn bool, fixed time.Duration) {
	e.mu.Lock()
	if e.opts.NoLearn == !learn && e.opts.Fixed == fixed {
		e.mu.Unlock()
		return
	}
	e.opts.NoLearn, e.opts.Fixed = !learn, fixed
	e.applyParamsLocked(e.params)
	var ev *event.BuildTimeoutSet
	if e.disabledLocked() || !e.computed {
		e.timeoutMS = e.initialTimeoutLocked()
		e.closeMS = e.timeoutMS
		ev = e.eventLocked("RESET")
	}
	e.mu.Unlock()
	e.publish(ev)
}

// SetParams applies the parameters of a new consensus
// (circuit_build_times_new_consensus_params): the liveness ring follows
// cbtrecentcount, and is dropped while learning is disabled.
func (e *Estimator) SetParams(p Params) {
	e.mu.Lock()
	e.applyParamsLocked(p)
	e.mu.Unlock()
}

func (e *Estimator) applyParamsLocked(p Params) {
	e.params = p
	if e.disabledLocked() {
		e.live.recent, e.live.recentIdx = nil, 0
		return
	}
	n := p.RecentCount
	if n == len(e.live.recent) {
		return
	}
	if len(e.live.recent) > 0 {
		e.opts.Log.Noticef("The Tor Directory Consensus has changed how many circuits we must track to detect network failures from %d to %d.", len(e.live.recent), n)
	} else {
		e.opts.Log.Noticef("Upon receiving a consensus directory, re-enabling circuit-based network failure detection.")
	}
	// As in C tor, order and some entries may be lost: only the count of
	// ones matters.
	recent := make([]int8, n)
	copy(recent, e.live.recent)
	if n < len(e.live.recent) {
		e.live.recentIdx = min(n-1, e.live.recentIdx)
	}
	e.live.recent = recent
}

// NoteLaunch records that a circuit was launched, for NeedsCircuitsNow
// (circuit_build_times_update_last_circ).
func (e *Estimator) NoteLaunch() {
	e.mu.Lock()
	e.lastCirc = e.opts.Now()
	e.mu.Unlock()
}

// EnoughToCompute reports whether cbtmincircs build times are known.
func (e *Estimator) EnoughToCompute() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.enoughLocked()
}

func (e *Estimator) enoughLocked() bool { return e.total >= e.params.MinCircs }

// NeedsCircuitsNow reports whether a test circuit should be built now to
// learn the timeout: learning is on, fewer than cbtmincircs times are
// known, and no circuit was launched in the last cbttestfreq. C tor builds
// such circuits while fewer than cbtmaxopencircs clean circuits are open.
func (e *Estimator) NeedsCircuitsNow() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.disabledLocked() && !e.enoughLocked() && e.opts.Now().Sub(e.lastCirc) > e.params.TestFreq
}

// BuildTimeMax is the longest build time that AddTime accepts.
const BuildTimeMax = time.Duration(buildTimeMax) * time.Millisecond

// Built records that a 3-hop circuit completed its third hop after d
// (circuit_build_times_handle_completed_hop): the time is added to the
// history while the network is live, and the timeout recomputed.
// measurement is true for a circuit that had already passed the timeout
// (its success does not count for the liveness check). A value beyond
// twice the close timeout plus a second is taken for a clock jump and
// ignored.
func (e *Estimator) Built(d time.Duration, measurement bool) {
	e.mu.Lock()
	if e.disabledLocked() {
		e.mu.Unlock()
		return
	}
	ms := d.Milliseconds()
	var ev *event.BuildTimeoutSet
	save := false
	if ms < 0 || float64(ms) > 2*e.closeMS+1000 {
		e.opts.Log.Noticef("Strange value for circuit build time: %dmsec. Assuming clock jump.", ms)
	} else {
		if e.live.nonliveTimeouts == 0 {
			save = e.addTimeLocked(int32(max(ms, 1)))
			ev = e.setTimeoutLocked()
		}
		if !measurement {
			e.networkSuccessLocked()
		}
	}
	data := e.stateIfLocked(save)
	e.mu.Unlock()
	e.publish(ev)
	e.write(data)
}

// addTimeLocked is circuit_build_times_add_time; it reports whether the
// state is due to be saved.
func (e *Estimator) addTimeLocked(ms int32) bool {
	if ms <= 0 || ms > buildTimeMax {
		e.opts.Log.Warnf("Circuit build time is too large (%d).This is probably a bug.", ms)
		return false
	}
	e.times[e.idx] = ms
	e.idx = (e.idx + 1) % NCircuitsToObserve
	if e.total < NCircuitsToObserve {
		e.total++
	}
	e.dirty++
	return e.total%SaveStateEvery == 0
}

// maxLocked is circuit_build_times_max: the longest recorded time that is
// not an abandoned circuit.
func (e *Estimator) maxLocked() int32 {
	var m int32
	for _, t := range e.times {
		if t > m && t != abandoned {
			m = t
		}
	}
	return m
}

// histogramLocked is circuit_build_times_create_histogram: counts per
// BinWidth bin of the recorded (not abandoned) times.
func (e *Estimator) histogramLocked() []uint32 {
	nbins := 1 + e.maxLocked()/binWidthMS
	h := make([]uint32, nbins)
	for _, t := range e.times {
		if t == 0 || t == abandoned {
			continue
		}
		h[t/binWidthMS]++
	}
	return h
}

// binMS is the midpoint of bin i in milliseconds (CBT_BIN_TO_MS).
func binMS(i int) int64 { return int64(i)*int64(binWidthMS) + int64(binWidthMS)/2 }

// xmLocked is circuit_build_times_get_xm: the count-weighted average of
// the midpoints of the NumModes fullest bins, ties going to the shorter
// bin. 0 means no time is recorded.
func (e *Estimator) xmLocked() int32 {
	h := e.histogramLocked()
	var total, counts int64
	for n := 0; n < e.params.NumModes; n++ {
		best := 0
		for i := range h {
			if h[i] > h[best] {
				best = i
			}
		}
		counts += int64(h[best])
		total += binMS(best) * int64(h[best])
		h[best] = 0
	}
	if counts == 0 {
		e.opts.Log.Warnf("No valid circuit build time data out of %d times, %d modes, have_timeout=%d, %fms",
			e.total, e.params.NumModes, boolInt(e.computed), e.timeoutMS)
		return 0
	}
	return int32(total / counts)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// updateAlphaLocked is circuit_build_times_update_alpha: Xm from the
// modes, then the maximum-likelihood alpha with every time below Xm
// counted as Xm and abandoned circuits left out:
//
//	alpha = n / (Sum ln(max(Xm, x_i)) - n ln(Xm))
func (e *Estimator) updateAlphaLocked() bool {
	e.xm = e.xmLocked()
	if e.xm == 0 {
		return false
	}
	lnXm := math.Log(float64(e.xm))
	var a float64
	n, abandonedCount := 0, 0
	for _, t := range e.times {
		switch {
		case t == 0:
		case t < e.xm:
			a += lnXm
			n++
		case t == abandoned:
			abandonedCount++
		default:
			a += math.Log(float64(t))
			n++
		}
	}
	if n != e.total-abandonedCount {
		e.opts.Log.Errf("Discrepancy in build times count: %d vs %d", n, e.total)
	}
	a -= float64(n) * lnXm
	e.alpha = float64(n) / a
	return true
}

// quantileLocked is circuit_build_times_calculate_timeout, the Pareto
// quantile function Xm / (1-q)^(1/alpha), clamped to INT32_MAX ms.
func (e *Estimator) quantileLocked(q float64) float64 {
	return paretoQuantile(float64(e.xm), e.alpha, q)
}

func paretoQuantile(xm, alpha, q float64) float64 {
	ret := float64(math.MaxInt32)
	if alpha > 0 {
		// (1-q)^(1/alpha), as exp(log(1-q)/alpha): math.Pow, used
		// nowhere else, would add 3 KB of code for this.
		if p := math.Exp(math.Log(1-q) / alpha); p > 0 {
			ret = xm / p
		}
	}
	return min(ret, math.MaxInt32)
}

// setTimeoutLocked is circuit_build_times_set_timeout: with enough times,
// fit the curve and set the timeout and close timeout. It returns the
// BUILDTIMEOUT_SET event to publish, or nil.
func (e *Estimator) setTimeoutLocked() *event.BuildTimeoutSet {
	if e.disabledLocked() {
		return nil
	}
	prev := math.Round(e.timeoutMS / 1000)
	if !e.enoughLocked() || !e.updateAlphaLocked() {
		return nil
	}
	e.timeoutMS = e.quantileLocked(float64(e.params.Quantile) / 100)
	e.closeMS = e.quantileLocked(float64(e.params.CloseQuantile) / 100)
	maxTime := e.maxLocked()
	if e.timeoutMS > float64(maxTime) {
		e.opts.Log.Infof("Circuit build timeout of %dms is beyond the maximum build time we have ever observed. Capping it to %dms.", int(e.timeoutMS), maxTime)
		e.timeoutMS = float64(maxTime)
	}
	if maxTime < math.MaxInt32/2 && e.closeMS > 2*float64(maxTime) {
		e.opts.Log.Infof("Circuit build measurement period of %dms is more than twice the maximum build time we have ever observed. Capping it to %dms.", int(e.closeMS), 2*maxTime)
		e.closeMS = 2 * float64(maxTime)
	}
	// A very steep curve from fast guards would close circuits barely
	// after the timeout: wait at least cbtinitialtimeout.
	e.closeMS = max(e.closeMS, float64(e.params.InitialTimeoutMS))
	e.computed = true

	if e.timeoutMS < float64(e.params.MinTimeoutMS) {
		e.opts.Log.Noticef("Set buildtimeout to low value %fms. Setting to %dms", e.timeoutMS, e.params.MinTimeoutMS)
		e.timeoutMS = float64(e.params.MinTimeoutMS)
		if e.closeMS < e.timeoutMS {
			e.closeMS = float64(e.params.InitialTimeoutMS)
		}
	}
	ev := e.eventLocked("COMPUTED")
	rate := e.timeoutRateLocked()
	now := math.Round(e.timeoutMS / 1000)
	timeout := int64(math.Round(e.timeoutMS))
	var wait string
	switch {
	case prev > now:
		wait = "don't need to wait so long"
	case prev < now:
		wait = "need to wait longer"
	default:
		e.opts.Log.Infof("Set circuit build timeout to %dms (%fms, %fms, Xm: %d, a: %f, r: %f) based on %d circuit times",
			timeout, e.timeoutMS, e.closeMS, e.xm, e.alpha, rate, e.total)
		return ev
	}
	e.opts.Log.Infof("Based on %d circuit times, it looks like we %s for circuits to finish. We will now assume a circuit is too slow to use after waiting %d milliseconds.", e.total, wait, timeout)
	return ev
}

// timeoutRateLocked is circuit_build_times_timeout_rate: the share of the
// history at or beyond the timeout.
func (e *Estimator) timeoutRateLocked() float64 {
	if e.total == 0 {
		return 0
	}
	n := 0
	for _, t := range e.times {
		if float64(t) >= e.timeoutMS {
			n++
		}
	}
	return float64(n) / float64(e.total)
}

// closeRateLocked is circuit_build_times_close_rate: the share of the
// history that was abandoned.
func (e *Estimator) closeRateLocked() float64 {
	if e.total == 0 {
		return 0
	}
	n := 0
	for _, t := range e.times {
		if t == abandoned {
			n++
		}
	}
	return float64(n) / float64(e.total)
}

// scaleCountsLocked halves the outcome counters before they overflow.
func (e *Estimator) scaleCountsLocked() {
	e.succeeded /= 2
	e.timeouts /= 2
	e.closed /= 2
}

// networkSuccessLocked is circuit_build_times_network_circ_success.
func (e *Estimator) networkSuccessLocked() {
	e.succeeded++
	if e.succeeded >= math.MaxInt32 {
		e.scaleCountsLocked()
	}
	if len(e.live.recent) > 0 {
		e.live.recent[e.live.recentIdx] = 0
		e.live.recentIdx = (e.live.recentIdx + 1) % len(e.live.recent)
	}
}

// TimedOut records that a circuit passed the timeout
// (circuit_build_times_count_timeout): it becomes a measurement circuit.
// didOneHop says whether its first hop had completed; if cbtmaxtimeouts of
// the last cbtrecentcount such circuits timed out, the network is taken
// to have changed and the history is discarded.
func (e *Estimator) TimedOut(didOneHop bool) {
	e.mu.Lock()
	if e.disabledLocked() {
		e.timeoutMS = e.initialTimeoutLocked()
		e.closeMS = e.timeoutMS
		e.mu.Unlock()
		return
	}
	e.timeouts++
	if e.timeouts >= math.MaxInt32 {
		e.scaleCountsLocked()
	}
	if len(e.live.recent) > 0 && didOneHop {
		e.live.recent[e.live.recentIdx] = 1
		e.live.recentIdx = (e.live.recentIdx + 1) % len(e.live.recent)
	}
	ev := e.checkChangedLocked()
	data := e.stateIfLocked(ev != nil)
	e.mu.Unlock()
	e.publish(ev)
	e.write(data)
}

// checkChangedLocked is circuit_build_times_network_check_changed: too
// many recent timeouts after the first hop reset the history and the
// timeout (doubling it when it was already at least the initial value).
// It returns the RESET event, or nil when nothing changed.
func (e *Estimator) checkChangedLocked() *event.BuildTimeoutSet {
	count := 0
	for _, r := range e.live.recent {
		count += int(r)
	}
	if count < e.params.MaxTimeouts {
		return nil
	}
	total := e.total
	e.resetLocked()
	clear(e.live.recent)
	e.live.recentIdx = 0
	const maxTimeout = math.MaxInt32 / 2
	if e.timeoutMS >= e.initialTimeoutLocked() {
		if e.timeoutMS > maxTimeout || e.closeMS > maxTimeout {
			e.opts.Log.Warnf("Insanely large circuit build timeout value. (timeout = %fmsec, close = %fmsec)", e.timeoutMS, e.closeMS)
		} else {
			e.timeoutMS *= 2
			e.closeMS *= 2
		}
	} else {
		e.timeoutMS = e.initialTimeoutLocked()
		e.closeMS = e.timeoutMS
	}
	ev := e.eventLocked("RESET")
	e.opts.Log.Noticef("Your network connection speed appears to have changed. Resetting timeout to %dms after %d timeouts and %d buildtimes.",
		int64(math.Round(e.timeoutMS)), count, total)
	return ev
}

// resetLocked is circuit_build_times_reset: the history and counters go,
// the timeout and liveness stay.
func (e *Estimator) resetLocked() {
	e.times = [NCircuitsToObserve]int32{}
	e.total, e.idx = 0, 0
	e.computed = false
	e.succeeded, e.closed, e.timeouts = 0, 0, 0
	e.dirty++
}

// Reset discards the build time history (the control port's DROPTIMEOUTS)
// and publishes a RESET event; the timeout in force stays until a new one
// is learned.
func (e *Estimator) Reset() {
	e.mu.Lock()
	e.resetLocked()
	ev := e.eventLocked("RESET")
	data := e.stateIfLocked(true)
	e.mu.Unlock()
	e.publish(ev)
	e.write(data)
}

// Abandoned records a measurement circuit closed at the close timeout
// (circuit_build_times_count_close). started is when the circuit was
// launched: if the network showed no activity since, the network is taken
// to be down and nothing is recorded until NetworkLive is called. The
// abandoned circuit counts in the history (a right-censored value) and the
// timeout is recomputed.
func (e *Estimator) Abandoned(didOneHop bool, started time.Time) {
	e.mu.Lock()
	if e.disabledLocked() {
		e.timeoutMS = e.initialTimeoutLocked()
		e.closeMS = e.timeoutMS
		e.mu.Unlock()
		return
	}
	e.networkCloseLocked(didOneHop, started)
	var ev *event.BuildTimeoutSet
	save := false
	if e.live.nonliveTimeouts == 0 {
		save = e.addTimeLocked(abandoned)
		ev = e.setTimeoutLocked()
	}
	data := e.stateIfLocked(save)
	e.mu.Unlock()
	e.publish(ev)
	e.write(data)
}

// networkCloseLocked is circuit_build_times_network_close.
func (e *Estimator) networkCloseLocked(didOneHop bool, started time.Time) {
	now := e.opts.Now()
	e.closed++
	if e.closed >= math.MaxInt32 {
		e.scaleCountsLocked()
	}
	if !e.live.lastLive.Before(started) {
		return
	}
	if didOneHop {
		e.opts.Log.Noticef("A circuit somehow completed a hop while the network was not live. The network was last live at %s, but the circuit launched at %s. It's now %s. This could mean your clock changed.",
			e.live.lastLive.Format(time.DateTime), started.Format(time.DateTime), now.Format(time.DateTime))
	}
	e.live.nonliveTimeouts++
	if e.live.nonliveTimeouts == 1 {
		e.opts.Log.Noticef("Tor has not observed any network activity for the past %d seconds. Disabling circuit build timeout recording.",
			int64(now.Sub(e.live.lastLive)/time.Second))
	} else {
		e.opts.Log.Infof("Got non-live timeout. Current count is: %d", e.live.nonliveTimeouts)
	}
}

// NetworkLive records a sign of network activity (a channel opened, a
// cell received): circuit_build_times_network_is_live.
func (e *Estimator) NetworkLive() {
	e.mu.Lock()
	now := e.opts.Now()
	if e.live.nonliveTimeouts > 0 {
		e.opts.Log.Noticef("Tor now sees network activity. Restoring circuit build timeout recording. Network was down for %d seconds during %d circuit attempts.",
			int64(now.Sub(e.live.lastLive)/time.Second), e.live.nonliveTimeouts)
	}
	e.live.lastLive = now
	e.live.nonliveTimeouts = 0
	e.mu.Unlock()
}

// IsLive reports whether build times are being recorded: no circuit was
// abandoned without network activity since the last NetworkLive
// (circuit_build_times_network_check_live).
func (e *Estimator) IsLive() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live.nonliveTimeouts == 0
}

// Status is the learner's state, as BUILDTIMEOUT_SET reports it.
func (e *Estimator) Status() event.BuildTimeoutSet {
	e.mu.Lock()
	defer e.mu.Unlock()
	ev := e.eventLocked("COMPUTED")
	if !e.computed {
		ev.Type = "RESET"
		ev.Quantile = 1
	}
	return *ev
}

// eventLocked is cbt_control_event_buildtimeout_set's content.
func (e *Estimator) eventLocked(typ string) *event.BuildTimeoutSet {
	ev := &event.BuildTimeoutSet{
		Type:       typ,
		TotalTimes: e.total,
		Timeout:    msDuration(e.timeoutMS),
		Xm:         time.Duration(e.xm) * time.Millisecond,
		Alpha:      e.alpha,
		Quantile:   float64(e.params.Quantile) / 100,
		Close:      msDuration(e.closeMS),
	}
	switch typ {
	case "RESET", "SUSPENDED", "DISCARD":
		ev.Quantile = 1
	}
	if all := float64(e.timeouts) + float64(e.succeeded); all >= 1 {
		ev.TimeoutRate = float64(e.timeouts) / all
		ev.CloseRate = float64(e.closed) / all
	}
	return ev
}

func (e *Estimator) publish(ev *event.BuildTimeoutSet) {
	if ev != nil {
		e.opts.Events.Publish(ev)
	}
}

// MarshalState returns the history as the lines C tor writes in its
// state file (circuit_build_times_update_state), as C tor 0.4.9 writes
// them: one CircuitBuildTimeBin line per non-empty bin, then
// CircuitBuildAbandonedCount (left out when 0) and TotalBuildTimes.
func (e *Estimator) MarshalState() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.marshalLocked()
}

func (e *Estimator) marshalLocked() []byte {
	aband := 0
	for _, t := range e.times {
		if t == abandoned {
			aband++
		}
	}
	var b []byte
	for i, n := range e.histogramLocked() {
		if n != 0 {
			b = fmt.Appendf(b, "CircuitBuildTimeBin %d %d\n", binMS(i), n)
		}
	}
	if aband > 0 { // 0 is the default, which C tor leaves out
		b = fmt.Appendf(b, "CircuitBuildAbandonedCount %d\n", aband)
	}
	return fmt.Appendf(b, "TotalBuildTimes %d\n", e.total)
}

// stateIfLocked returns the state to write when save is set and a store
// is configured.
func (e *Estimator) stateIfLocked(save bool) []byte {
	if !save || e.opts.Store == nil {
		return nil
	}
	e.dirty = 0
	return e.marshalLocked()
}

func (e *Estimator) write(data []byte) {
	if data == nil {
		return
	}
	if err := e.opts.Store.Write(e.opts.StateName, data); err != nil {
		e.opts.Log.Warnf("Unable to write circuit build times: %v", err)
	}
}

// Save writes the history to the store if it changed since the last
// write (at shutdown; during a run the state is written every
// SaveStateEvery new times).
func (e *Estimator) Save() error {
	e.mu.Lock()
	if e.opts.Store == nil || e.dirty == 0 {
		e.mu.Unlock()
		return nil
	}
	data := e.stateIfLocked(true)
	e.mu.Unlock()
	if err := e.opts.Store.Write(e.opts.StateName, data); err != nil {
		return errfmt.Errorf("writing circuit build times: %w", err)
	}
	return nil
}

// Load reads the persisted history from the store, if any. A corrupt
// history is discarded (with a warning) and learning starts again.
func (e *Estimator) Load() error {
	if e.opts.Store == nil {
		return nil
	}
	data, err := e.opts.Store.Read(e.opts.StateName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return errfmt.Errorf("reading circuit build times: %w", err)
	}
	return e.LoadState(data)
}
