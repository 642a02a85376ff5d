package client

import (
	"crypto/ed25519"
	"errors"
	"sort"
	"time"

	"tinytor/onion/desc"
	"tinytor/tor/lock"
	"tinytor/tor/path"
)

// The client's memory of what failed (rend-spec-v3 client behaviour, as
// C tor's hs_cache client intro state and last_hid_serv_requests): which
// HSDirs failed to give a service's descriptor, so that the next fetch
// asks others; and how each introduction point of a service failed, so
// that the next connection goes through another one.

// Memory periods and limits, as in C tor.
const (
	// hsdirRequeryPeriod is how long an HSDir that failed to give a
	// descriptor is not asked for it again
	// (REND_HID_SERV_DIR_REQUERY_PERIOD).
	hsdirRequeryPeriod = 15 * time.Minute
	// hsdirRequeryPeriodTesting is the same on a TestingTorNetwork
	// (REND_HID_SERV_DIR_REQUERY_PERIOD_TESTING).
	hsdirRequeryPeriodTesting = 5 * time.Second
	// introFailureMaxAge is how long the failures of an introduction
	// point are remembered, from the first one
	// (HS_CACHE_CLIENT_INTRO_STATE_MAX_AGE).
	introFailureMaxAge = 2 * time.Minute
	// maxIntroUnreachable is how many times an introduction point may be
	// found unreachable before it is not tried again
	// (MAX_INTRO_POINT_REACHABILITY_FAILURES).
	maxIntroUnreachable = 5
)

// IntroFailure is how an introduction through an introduction point
// failed (C tor's rend_intro_point_failure_t).
type IntroFailure uint8

// The introduction failures.
const (
	// IntroFailedGeneric: the introduction point refused (a NACK in
	// INTRODUCE_ACK) or the introduction could not be sent
	// (INTRO_POINT_FAILURE_GENERIC). The point is not used again.
	IntroFailedGeneric IntroFailure = iota + 1
	// IntroFailedTimeout: no answer from the introduction point or from
	// the service in time (INTRO_POINT_FAILURE_TIMEOUT). The point is not
	// used again.
	IntroFailedTimeout
	// IntroFailedUnreachable: the circuit to the introduction point
	// failed (INTRO_POINT_FAILURE_UNREACHABLE). The point is not used
	// again after maxIntroUnreachable of them.
	IntroFailedUnreachable
)

// String names f as C tor's log does.
func (f IntroFailure) String() string {
	switch f {
	case IntroFailedGeneric:
		return "generic"
	case IntroFailedTimeout:
		return "timeout"
	case IntroFailedUnreachable:
		return "unreachable"
	}
	return "unknown"
}

// ipKey names an introduction point of a service (by its auth key, as C
// tor: the same point in a later descriptor keeps its state).
type ipKey struct {
	svc  [32]byte
	auth [32]byte
}

// ipFailures is the failure state of one introduction point.
type ipFailures struct {
	created     time.Time // first failure; the state expires from it
	failed      bool      // IntroFailedGeneric seen
	timedOut    bool      // IntroFailedTimeout seen
	unreachable int       // IntroFailedUnreachable count
}

// usable reports whether an introduction point in state s may be tried.
func (s *ipFailures) usable() bool {
	return s == nil || !s.failed && !s.timedOut && s.unreachable < maxIntroUnreachable
}

// hsdirKey names one HSDir asked for one descriptor (by blinded key).
type hsdirKey struct {
	blinded [32]byte
	hsdir   [20]byte
}

// failMemory remembers failed HSDirs and introduction points. It is safe
// for concurrent use.
type failMemory struct {
	now     func() time.Time
	requery time.Duration // hsdirRequeryPeriod or its testing value

	mu     lock.Mutex
	hsdirs map[hsdirKey]time.Time // when the HSDir failed
	intros map[ipKey]*ipFailures
}

func newFailMemory(now func() time.Time, testing bool) *failMemory {
	m := &failMemory{now: now, requery: hsdirRequeryPeriod, hsdirs: map[hsdirKey]time.Time{}, intros: map[ipKey]*ipFailures{}}
	if testing {
		m.requery = hsdirRequeryPeriodTesting
	}
	return m
}

// expireLocked forgets HSDir failures older than the requery period and
// introduction point states older than introFailureMaxAge.
func (m *failMemory) expireLocked(now time.Time) {
	for k, at := range m.hsdirs {
		if now.Sub(at) >= m.requery {
			delete(m.hsdirs, k)
		}
	}
	for k, s := range m.intros {
		if now.Sub(s.created) >= introFailureMaxAge {
			delete(m.intros, k)
		}
	}
}

// noteHSDirFailed records that hsdir failed to give the descriptor of
// blinded.
func (m *failMemory) noteHSDirFailed(blinded ed25519.PublicKey, hsdir [20]byte) {
	now := m.now()
	m.mu.Lock()
	m.expireLocked(now)
	k := hsdirKey{hsdir: hsdir}
	copy(k.blinded[:], blinded)
	m.hsdirs[k] = now
	m.mu.Unlock()
}

// hsdirsSucceeded forgets the HSDir failures for blinded: the descriptor
// was fetched, so a later fetch may ask any of them.
func (m *failMemory) hsdirsSucceeded(blinded ed25519.PublicKey) {
	var bk [32]byte
	copy(bk[:], blinded)
	m.mu.Lock()
	for k := range m.hsdirs {
		if k.blinded == bk {
			delete(m.hsdirs, k)
		}
	}
	m.mu.Unlock()
}

// askable returns the HSDirs of hsdirs that did not fail to give the
// descriptor of blinded within the requery period, in their order.
func (m *failMemory) askable(blinded ed25519.PublicKey, hsdirs []*path.Node) []*path.Node {
	now := m.now()
	k := hsdirKey{}
	copy(k.blinded[:], blinded)
	m.mu.Lock()
	m.expireLocked(now)
	var out []*path.Node
	for _, n := range hsdirs {
		k.hsdir = n.Identity
		if _, failed := m.hsdirs[k]; !failed {
			out = append(out, n)
		}
	}
	m.mu.Unlock()
	return out
}

// noteIntro records a failure f of the introduction point auth of svc
// (C tor's hs_cache_client_intro_state_note).
func (m *failMemory) noteIntro(svc [32]byte, auth ed25519.PublicKey, f IntroFailure) {
	now := m.now()
	k := ipKey{svc: svc}
	copy(k.auth[:], auth)
	m.mu.Lock()
	m.expireLocked(now)
	s := m.intros[k]
	if s == nil {
		s = &ipFailures{created: now}
		m.intros[k] = s
	}
	switch f {
	case IntroFailedGeneric:
		s.failed = true
	case IntroFailedTimeout:
		s.timedOut = true
	case IntroFailedUnreachable:
		s.unreachable++
	}
	m.mu.Unlock()
}

// usableIntros returns the introduction points of ips that may be tried
// (C tor's intro_point_is_usable), in their order.
func (m *failMemory) usableIntros(svc [32]byte, ips []desc.IntroPoint) []desc.IntroPoint {
	now := m.now()
	k := ipKey{svc: svc}
	m.mu.Lock()
	m.expireLocked(now)
	var out []desc.IntroPoint
	for i := range ips {
		copy(k.auth[:], ips[i].AuthKey)
		if m.intros[k].usable() {
			out = append(out, ips[i])
		}
	}
	m.mu.Unlock()
	return out
}

// introUsable reports whether the introduction point auth of svc may be
// tried.
func (m *failMemory) introUsable(svc [32]byte, auth ed25519.PublicKey) bool {
	now := m.now()
	k := ipKey{svc: svc}
	copy(k.auth[:], auth)
	m.mu.Lock()
	m.expireLocked(now)
	ok := m.intros[k].usable()
	m.mu.Unlock()
	return ok
}

// orderIntros sorts ips (stably) by how often each was unreachable
// lately, fewest first, so that a new connection tries an introduction
// point that has not failed before those that did (C tor picks at random
// among the usable ones; issue 14 asks that failed ones not come first).
func (m *failMemory) orderIntros(svc [32]byte, ips []desc.IntroPoint) {
	k := ipKey{svc: svc}
	m.mu.Lock()
	count := make(map[[32]byte]int, len(ips))
	for i := range ips {
		copy(k.auth[:], ips[i].AuthKey)
		if s := m.intros[k]; s != nil {
			count[k.auth] = s.unreachable
		}
	}
	m.mu.Unlock()
	// sort.SliceStable rather than a generic sort: no copy of the sort
	// code for the IntroPoint type.
	sort.SliceStable(ips, func(i, j int) bool {
		return count[[32]byte(ips[i].AuthKey)] < count[[32]byte(ips[j].AuthKey)]
	})
}

// forgetIntros forgets the introduction point failures of svc.
func (m *failMemory) forgetIntros(svc [32]byte) {
	m.mu.Lock()
	for k := range m.intros {
		if k.svc == svc {
			delete(m.intros, k)
		}
	}
	m.mu.Unlock()
}

// purge forgets everything (NEWNYM).
func (m *failMemory) purge() {
	m.mu.Lock()
	clear(m.hsdirs)
	clear(m.intros)
	m.mu.Unlock()
}

// noteIntroFailure records the failed introduction through ip: err from
// introduce, final as introduce reports it (false: the introduction
// point was unreachable).
func (c *Client) noteIntroFailure(svc [32]byte, ip *desc.IntroPoint, err error, final bool) {
	f := IntroFailedGeneric
	var oe *Error
	switch {
	case !final:
		f = IntroFailedUnreachable
	case errors.As(err, &oe) && oe.Kind == IntroTimeout:
		f = IntroFailedTimeout
	case errors.As(err, &oe) && oe.Kind == RendFailed:
		return // the rendezvous point's failure, not this one's
	}
	c.fails.noteIntro(svc, ip.AuthKey, f)
}

// introWaits returns how long an introduction waits for INTRODUCE_ACK and
// then for RENDEZVOUS2. With the circuit build timeout of the network
// (Net has CircuitBuildTimeout, as *tor.Client), they are C tor's
// c_intro_cutoff (14/6 of it plus 1 s) and c_rend_ready_cutoff (3 times
// it plus 1 s), after which the introduction point is marked timed out
// and another is tried; never longer than introAckTimeout and
// rendTimeout, which apply without a build timeout (C tor's would be
// 141 s and 181 s at the 60 s it starts from).
func (c *Client) introWaits() (ack, rend time.Duration) {
	n, ok := c.cfg.Net.(interface {
		CircuitBuildTimeout() (time.Duration, bool)
	})
	if !ok {
		return introAckTimeout, rendTimeout
	}
	cbt, _ := n.CircuitBuildTimeout()
	if cbt <= 0 {
		return introAckTimeout, rendTimeout
	}
	return min(cbt*14/6+time.Second, introAckTimeout), min(3*cbt+time.Second, rendTimeout)
}
