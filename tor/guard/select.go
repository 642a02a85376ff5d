package guard

import (
	"strconv"
	"time"

	"tinytor/tor/dir"
	"tinytor/tor/errfmt"
	"tinytor/tor/path"
)

// Usage says what a guard is picked for.
type Usage int

const (
	// ForCircuit is a multi-hop circuit: the guard needs its
	// microdescriptor, and guard-n-primary-guards-to-use primary guards
	// (NumEntryGuards) are used in parallel.
	ForCircuit Usage = iota
	// ForDir is a one-hop directory fetch (BEGIN_DIR): no microdescriptor
	// is needed, and guard-n-primary-dir-guards-to-use primary guards are
	// used in parallel.
	ForDir
)

// State is a circuit's state with respect to its guard (guard-spec 4.6).
type State int

// The circuit states.
const (
	// UsableOnCompletion: the guard is primary; the circuit may be used
	// as soon as it is built.
	UsableOnCompletion State = iota
	// UsableIfNoBetterGuard: the guard is not primary; once built the
	// circuit waits for better guards.
	UsableIfNoBetterGuard
	// WaitingForBetterGuard: built through a non-primary guard; not to be
	// used (no streams) until Usable reports true.
	WaitingForBetterGuard
	// Complete: the circuit may carry streams.
	Complete
	// Failed: the guard was unreachable (Handle.Failed).
	Failed
	// Expired: the circuit waited longer than
	// guard-nonprimary-guard-idle-timeout for better guards; close it.
	Expired
	// Closed: Handle.Close was called.
	Closed
)

// stateNames are the names of the circuit states.
var stateNames = [...]string{
	UsableOnCompletion:    "usable_on_completion",
	UsableIfNoBetterGuard: "usable_if_no_better_guard",
	WaitingForBetterGuard: "waiting_for_better_guard",
	Complete:              "complete",
	Failed:                "failed",
	Expired:               "expired",
	Closed:                "closed",
}

// String returns the state as guard-spec names it.
func (s State) String() string {
	if uint(s) < uint(len(stateNames)) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// terminal reports whether no further transition happens.
func (s State) terminal() bool { return s == Failed || s == Expired || s == Closed }

// Handle follows one circuit built through a guard from Pick. Report the
// outcome of reaching the guard with Succeeded or Failed, ask Usable
// before attaching streams, and Close the handle when the circuit goes
// away. A Handle is safe for concurrent use; all methods are idempotent.
type Handle struct {
	m       *Manager
	e       *entry // nil with DisableGuards
	allow   func(*path.Node) bool
	state   State
	started time.Time // when picked
	waiting time.Time // when it became WaitingForBetterGuard
}

// Pick chooses the guard for a new circuit (guard-spec 4.6):
//
//  1. one of the first NumEntryGuards (ForCircuit) or NumDirectoryGuards
//     (ForDir) primary guards not known to be down, at random; the circuit
//     is UsableOnCompletion;
//  2. else the first confirmed guard not known to be down and not already
//     being tried;
//  3. else the first usable filtered guard in sample order not already
//     being tried (the sample grows if it has too few);
//
// in cases 2 and 3 the circuit is UsableIfNoBetterGuard. When no sampled
// guard is usable, all are marked for retry and the choice is made again.
//
// allow, if not nil, restricts this circuit's guard (for example: not in
// the family of a chosen last hop); like Options.Filter it runs with the
// Manager's lock held and must not call the Manager. For ForCircuit the returned node has
// its microdescriptor; for ForDir n.MD may be nil.
func (m *Manager) Pick(u Usage, allow func(n *path.Node) bool) (*path.Node, *Handle, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dir == nil {
		return nil, nil, errfmt.Errorf("choosing an entry guard: %w", ErrNoConsensus)
	}
	now := m.now()
	if m.opts.DisableGuards {
		return m.pickUnguardedLocked(u, allow, now)
	}
	e, st := m.selectLocked(u, allow, now)
	if e == nil {
		// guard-spec 4.6: the sample is exhausted; mark every guard as
		// maybe reachable and keep trying.
		m.log.Infof("No sampled entry guard is usable; marking all guards for retry.")
		for _, x := range m.sampled {
			if x.reachable == No {
				x.reachable = Maybe
			}
		}
		e, st = m.selectLocked(u, allow, now)
		if e == nil {
			return nil, nil, errfmt.Errorf("choosing an entry guard among %d sampled (%d filtered): %w",
				len(m.sampled), m.countFiltered(), ErrNoGuard)
		}
	}
	e.lastTried = now
	h := &Handle{m: m, e: e, allow: allow, state: st, started: now}
	m.handles[h] = struct{}{}
	m.saveLocked() // the sample may have grown
	return e.node, h, nil
}

func (m *Manager) countFiltered() int {
	n := 0
	for _, e := range m.sampled {
		if e.filtered {
			n++
		}
	}
	return n
}

// fits reports whether e can serve this circuit.
func fits(e *entry, u Usage, allow func(*path.Node) bool) bool {
	if e.node == nil || (u == ForCircuit && e.node.MD == nil) {
		return false
	}
	return allow == nil || allow(e.node)
}

// selectLocked is the guard choice of Pick without the exhaustion rule.
func (m *Manager) selectLocked(u Usage, allow func(*path.Node) bool, now time.Time) (*entry, State) {
	m.updatePrimaryLocked(now)
	// 1. Primary guards.
	nUse := m.nToUse(u)
	var usable []*entry
	for _, e := range m.primary {
		m.considerRetryLocked(e, now)
		if e.reachable == No || !fits(e, u, allow) {
			continue
		}
		usable = append(usable, e)
		if len(usable) >= nUse {
			break
		}
	}
	if len(usable) > 0 {
		return usable[m.rng.IntN(len(usable))], UsableOnCompletion
	}
	// 2. Confirmed guards, then 3. the usable filtered sample: the first
	// one not already being tried (as C tor, a guard being tried is not
	// given a second exploratory circuit).
	for _, e := range m.sampled {
		m.considerRetryLocked(e, now)
	}
	if e := m.firstNonPrimary(m.confirmed, u, allow); e != nil {
		e.pending = true
		return e, UsableIfNoBetterGuard
	}
	m.expandSampleLocked(now)
	if e := m.firstNonPrimary(m.sampled, u, allow); e != nil {
		e.pending = true
		return e, UsableIfNoBetterGuard
	}
	return nil, 0
}

// firstNonPrimary returns the first usable filtered, non-primary guard of
// list that is not already being tried and fits the circuit.
func (m *Manager) firstNonPrimary(list []*entry, u Usage, allow func(*path.Node) bool) *entry {
	for _, e := range list {
		if !e.primary && !e.pending && e.usableFiltered() && fits(e, u, allow) {
			return e
		}
	}
	return nil
}

// pickUnguardedLocked is Pick with UseEntryGuards 0: a bandwidth-weighted
// Guard-flagged relay allowed by the filter.
func (m *Manager) pickUnguardedLocked(u Usage, allow func(*path.Node) bool, now time.Time) (*path.Node, *Handle, error) {
	var cands []*path.Node
	for _, n := range m.dir.Nodes {
		if !n.Flags.Has(dir.FlagGuard|dir.FlagRunning|dir.FlagValid) || n.Flags.Has(dir.FlagAuthority) {
			continue
		}
		if (m.filter != nil && !m.filter(n)) || (allow != nil && !allow(n)) {
			continue
		}
		cands = append(cands, n)
	}
	n, err := path.Pick(m.rng, m.dir.Consensus, cands, path.Guard)
	if err != nil {
		return nil, nil, errfmt.Errorf("choosing a first hop without entry guards: %w", err)
	}
	return n, &Handle{m: m, allow: allow, state: UsableOnCompletion, started: now}, nil
}

// current returns h's guard if it is still sampled.
func (h *Handle) current() *entry {
	if h.e != nil && h.m.byID[h.e.id] == h.e {
		return h.e
	}
	return nil
}

// Succeeded reports that the circuit was built through the guard
// (guard-spec 4.8): the guard is reachable and, if new, confirmed. Then
// check Usable.
func (h *Handle) Succeeded() {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if h.state != UsableOnCompletion && h.state != UsableIfNoBetterGuard {
		return
	}
	now := m.now()
	if h.e == nil {
		h.state = Complete
		return
	}
	lastOnInternet := m.lastOnInternet
	m.lastOnInternet = now
	e := h.current()
	if e == nil {
		// Removed from the sample meanwhile.
		if h.state == UsableOnCompletion {
			h.state = Complete
		} else {
			h.state = WaitingForBetterGuard
			h.waiting = now
		}
		return
	}
	if e.reachable != Yes {
		m.log.Infof("Entry guard %s is reachable.", e)
	}
	e.reachable = Yes
	e.failingSince = time.Time{}
	e.pending = false
	if !e.confirmed() {
		e.confirmedOn = m.randPast(now, m.lifetime()/10)
		e.confirmedIdx = len(m.confirmed)
		m.confirmed = append(m.confirmed, e)
		m.dirty = true
		m.primaryStale = true
		m.log.Infof("Confirmed entry guard %s (confirmed guard #%d).", e, e.confirmedIdx)
		m.updatePrimaryLocked(now)
		m.saveLocked()
	}
	switch {
	case h.state == UsableOnCompletion || e.primary:
		h.state = Complete
	default:
		h.state = WaitingForBetterGuard
		h.waiting = now
	}
	if !e.primary && (lastOnInternet.IsZero() || now.Sub(lastOnInternet) > m.seconds("guard-internet-likely-down-interval", defaultInternetDownSeconds)) {
		// guard-spec 4.8: we were probably offline, so the primary guards'
		// failures prove nothing; retry them.
		m.log.Infof("A circuit through non-primary guard %s succeeded after a long time offline; retrying the primary guards.", e)
		m.markPrimaryMaybeLocked()
	}
}

// Failed reports that the guard could not be reached (connection, TLS
// handshake or CREATE failed) (guard-spec 4.7). Do not call it for
// failures past the first hop: Close the handle instead.
func (h *Handle) Failed() {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if h.state.terminal() {
		return
	}
	h.state = Failed
	delete(m.handles, h)
	e := h.current()
	if e == nil {
		return
	}
	now := m.now()
	if e.reachable != No {
		m.log.Infof("Recorded failure of %sentry guard %s.", primaryWord(e), e)
	}
	e.reachable = No
	e.pending = false
	if e.failingSince.IsZero() {
		e.failingSince = now
	}
}

// Close ends the handle: the circuit was closed, or failed for reasons
// that say nothing about the guard. Always call it (or Failed) once the
// circuit is gone; the Manager tracks open handles to decide Usable.
func (h *Handle) Close() {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if h.state.terminal() {
		return
	}
	if h.state == UsableIfNoBetterGuard {
		if e := h.current(); e != nil {
			e.pending = false
		}
	}
	h.state = Closed
	delete(m.handles, h)
}

// Usable reports whether streams may be attached to the circuit: it is
// Complete, or it waits for better guards and none can come anymore
// (guard-spec 4.9: every primary guard is down and no higher-priority
// circuit blocks it). Once true it stays true until Failed or Close.
func (h *Handle) Usable() bool {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.upgradeLocked(h, m.now())
	return h.state == Complete
}

// State returns the circuit's current state.
func (h *Handle) State() State {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.upgradeLocked(h, m.now())
	return h.state
}

// upgradeLocked applies guard-spec 4.9 to a waiting circuit.
func (m *Manager) upgradeLocked(h *Handle, now time.Time) {
	if h.state != WaitingForBetterGuard {
		return
	}
	if now.Sub(h.waiting) > m.seconds("guard-nonprimary-guard-idle-timeout", defaultIdleTimeoutSecs) {
		h.state = Expired
		delete(m.handles, h)
		return
	}
	m.updatePrimaryLocked(now)
	for _, e := range m.primary {
		m.considerRetryLocked(e, now)
		if e.reachable != No {
			return
		}
	}
	connectTimeout := m.seconds("guard-nonprimary-guard-connect-timeout", defaultConnectTimeoutSecs)
	mine := h.current()
	for o := range m.handles {
		if o == h || o.e == nil {
			continue
		}
		oe := o.current()
		if oe == nil || oe == mine || (mine != nil && !higherPriority(oe, mine)) {
			continue
		}
		if h.allow != nil && (oe.node == nil || !h.allow(oe.node)) {
			continue
		}
		switch o.state {
		case Complete, WaitingForBetterGuard:
			return
		case UsableIfNoBetterGuard:
			if now.Sub(o.started) <= connectTimeout {
				return
			}
		}
	}
	m.log.Infof("Using a circuit through non-primary guard %s: no better guard is available.", h.e)
	h.state = Complete
}

// higherPriority reports whether guard a is preferred to guard b
// (guard-spec 4.3; C tor's entry_guard_has_higher_priority).
func higherPriority(a, b *entry) bool {
	switch {
	case a.confirmed() && b.confirmed():
		return a.confirmedIdx < b.confirmedIdx
	case a.confirmed() != b.confirmed():
		return a.confirmed()
	case a.pending && b.pending:
		return a.lastTried.Before(b.lastTried)
	default:
		return a.pending && !b.pending
	}
}
