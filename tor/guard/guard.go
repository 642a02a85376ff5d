// Package guard is tinytor's entry guard manager, as guard-spec section 4
// describes: a persistent, bandwidth-weighted sample of the consensus's
// guards (SAMPLED_GUARDS), the subset the configuration allows
// (FILTERED_GUARDS), the guards used before (CONFIRMED_GUARDS), the few
// preferred ones (PRIMARY_GUARDS), a retry schedule for unreachable guards,
// and the per-circuit states that keep a client from using a non-primary
// guard while a primary one may still work.
//
// A Manager is safe for concurrent use. The client feeds it every new
// directory (SetConsensus), asks it for the first hop of each circuit
// (Pick) and reports through the returned Handle whether the guard could be
// reached. The sample and the confirmed list are written through a
// Persister whenever they change.
//
// Typical use by a circuit builder:
//
//	g, h, err := mgr.Pick(guard.ForCircuit, nil)
//	// connect to g and CREATE2: on failure (or timeout) h.Failed(), stop.
//	// EXTEND2 to the other hops: on failure h.Close(), stop.
//	h.Succeeded()
//	// attach streams only while h.Usable(); a circuit that is not usable
//	// yet waits for better guards (ask again later, close it once
//	// h.State() is Expired); call h.Close() when the circuit closes.
package guard

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strconv"
	"time"

	"tinytor/tor/dir"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/path"
	"tinytor/tor/torlog"
)

// DefaultStateName is the name under which the guard state is persisted.
const DefaultStateName = "guards"

// DefaultVersion is recorded as "sampled_by" for new guards.
const DefaultVersion = "tinytor"

// DefaultGuardFlags are the flags a relay needs to count as a guard
// (guard-spec 4.0: {GUARDS} are the relays with Stable, Fast, V2Dir and
// Guard; C tor's node_is_possible_guard also wants Valid). Running is
// required as well.
const DefaultGuardFlags = dir.FlagGuard | dir.FlagStable | dir.FlagFast | dir.FlagV2Dir | dir.FlagValid | dir.FlagRunning

// Defaults of the consensus parameters (guard-spec A.1, param-spec).
const (
	defaultMaxSampleSize       = 60
	defaultMaxSamplePercent    = 20
	defaultMinFilteredSample   = 20
	defaultNPrimary            = 3
	defaultNPrimaryToUse       = 1
	defaultNPrimaryDirToUse    = 3
	defaultLifetimeDays        = 120
	defaultConfirmedMinDays    = 60
	defaultRemoveUnlistedDays  = 20
	defaultInternetDownSeconds = 600
	defaultConnectTimeoutSecs  = 15
	defaultIdleTimeoutSecs     = 600
)

// Errors returned (wrapped) by Pick.
var (
	// ErrNoConsensus means SetConsensus has not been called yet.
	ErrNoConsensus = errors.New("no consensus to choose guards from")
	// ErrNoGuard means no guard is usable now. When the whole sample was
	// unreachable it has been marked for retry, so a later Pick may
	// succeed.
	ErrNoGuard = errors.New("no usable entry guard")
)

// Persister stores the guard state. board/state's Store fits through
// Funcs (its Write takes flags; pass state.TimeDependent).
type Persister interface {
	// Read returns the stored data; an absent file gives an error
	// matching fs.ErrNotExist.
	Read(name string) ([]byte, error)
	// Write replaces the stored data.
	Write(name string, data []byte) error
}

// Funcs is a Persister made of two functions, for stores whose methods
// do not match Persister exactly. With board/state:
//
//	guard.Funcs{
//		ReadFunc:  st.Read,
//		WriteFunc: func(name string, b []byte) error { return st.Write(name, b, state.TimeDependent) },
//	}
type Funcs struct {
	ReadFunc  func(name string) ([]byte, error)
	WriteFunc func(name string, data []byte) error
}

// Read calls ReadFunc.
func (f Funcs) Read(name string) ([]byte, error) { return f.ReadFunc(name) }

// Write calls WriteFunc.
func (f Funcs) Write(name string, data []byte) error { return f.WriteFunc(name, data) }

// Options configure a Manager. The zero value is usable: guards on, sizes
// from the consensus, the real clock, no persistence.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Trusted reports whether Now is known good (a router without RTC
	// starts in 1970). While it returns false nothing is persisted; the
	// state is written once it returns true. Nil means always trusted
	// (board/state's TimeDependent flag gives the same protection).
	Trusted func() bool
	// Rand is the randomness for sampling and choices; nil means a
	// generator seeded from crypto/rand.
	Rand *rand.Rand
	// Log receives C tor style messages; nil discards them.
	Log *torlog.Logger
	// Store persists the sample; nil keeps it in memory only.
	Store Persister
	// StateName is the name given to Store; "" means DefaultStateName.
	StateName string
	// Version is written as sampled_by; "" means DefaultVersion.
	Version string

	// DisableGuards is UseEntryGuards 0: every circuit gets a fresh
	// bandwidth-weighted Guard-flagged relay and nothing is remembered.
	DisableGuards bool
	// NumPrimaryGuards overrides the consensus parameter
	// guard-n-primary-guards (0: use the parameter, default 3).
	NumPrimaryGuards int
	// NumEntryGuards is the torrc option: how many primary guards are used
	// in parallel for circuits, overriding guard-n-primary-guards-to-use
	// (0: use the parameter, default 1). The number of primary guards is
	// raised to at least this.
	NumEntryGuards int
	// NumDirectoryGuards is the same for directory fetches, overriding
	// guard-n-primary-dir-guards-to-use (0: use the parameter, default 3).
	NumDirectoryGuards int
	// GuardFlags are the flags a relay needs to be sampled; 0 means
	// DefaultGuardFlags.
	GuardFlags dir.Flags
	// Filter says whether the configuration allows n as a guard
	// (EntryNodes, ExcludeNodes, reachable addresses, ClientUseIPv4/6).
	// n.MD may be nil when the microdescriptor is not known yet. Nil
	// allows every guard. Change it later with SetFilter. It is called
	// with the Manager's lock held: it must not call the Manager.
	Filter func(n *path.Node) bool
	// Selection is the guard selection kept: DefaultSelection ("" means
	// it), or BridgeSelection (UseBridges: the universe is the bridges
	// given with SetConsensus, guard-spec's bridge rules). Lines of the
	// other selection in the state are kept unchanged.
	Selection string
}

// sel is the selection name written and read in the state.
func (m *Manager) sel() string {
	if m.opts.Selection == "" {
		return DefaultSelection
	}
	return m.opts.Selection
}

// Reachability is a guard's {is_reachable} tristate (guard-spec 4.1).
type Reachability int

// The reachability states.
const (
	Maybe Reachability = iota
	Yes
	No
)

// reachabilityNames are the names of the reachability states.
var reachabilityNames = [...]string{Maybe: "maybe", Yes: "yes", No: "no"}

// String returns the state as guard-spec names it.
func (r Reachability) String() string {
	if uint(r) < uint(len(reachabilityNames)) {
		return reachabilityNames[r]
	}
	return "reachability(" + strconv.Itoa(int(r)) + ")"
}

// entry is one sampled guard.
type entry struct {
	// Persistent (guard-spec 4.1, 4.3).
	id            [20]byte
	nickname      string
	sampledOn     time.Time
	sampledBy     string
	sampledIdx    int
	listed        bool
	unlistedSince time.Time // zero when listed
	confirmedOn   time.Time
	confirmedIdx  int      // -1: not confirmed
	extra         []string // unknown K=V items, kept verbatim

	// Run-time.
	node         *path.Node // in the current consensus; nil if absent
	filtered     bool
	reachable    Reachability
	failingSince time.Time
	lastTried    time.Time
	pending      bool
	primary      bool
}

func (e *entry) confirmed() bool { return e.confirmedIdx >= 0 }

// usableFiltered reports membership of USABLE_FILTERED_GUARDS.
func (e *entry) usableFiltered() bool { return e.filtered && e.reachable != No }

func (e *entry) String() string {
	if e.nickname != "" {
		return fmt.Sprintf("$%X~%s", e.id, e.nickname)
	}
	return fmt.Sprintf("$%X", e.id)
}

// Manager keeps the guard state and chooses guards for circuits.
type Manager struct {
	mu      lock.Mutex
	opts    Options
	now     func() time.Time
	rng     *rand.Rand
	log     *torlog.Logger
	name    string
	version string
	flags   dir.Flags
	filter  func(*path.Node) bool

	dir       *path.Dir
	sampled   []*entry // SAMPLED_GUARDS in sample order
	byID      map[[20]byte]*entry
	confirmed []*entry // CONFIRMED_GUARDS in order
	primary   []*entry // PRIMARY_GUARDS in order
	foreign   []string // state lines of other guard selections
	nextIdx   int      // next sampled_idx

	primaryStale   bool
	lastOnInternet time.Time // zero: never
	handles        map[*Handle]struct{}
	dirty          bool
}

// New returns a Manager, loading the state from opts.Store if there is
// one. A missing state starts an empty sample; an unreadable or partly bad
// one is logged and what can be used is kept.
func New(opts Options) *Manager {
	m := &Manager{
		opts:    opts,
		now:     opts.Now,
		rng:     opts.Rand,
		log:     opts.Log,
		name:    opts.StateName,
		version: opts.Version,
		flags:   opts.GuardFlags,
		filter:  opts.Filter,
		byID:    map[[20]byte]*entry{},
		handles: map[*Handle]struct{}{},
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.rng == nil {
		var seed [32]byte
		if _, err := crand.Read(seed[:]); err != nil {
			// crypto/rand does not fail on supported platforms.
			panic(fmt.Sprintf("guard: reading random seed: %v", err))
		}
		m.rng = rand.New(rand.NewChaCha8(seed))
	}
	if m.log == nil {
		m.log = torlog.Discard()
	}
	if m.name == "" {
		m.name = DefaultStateName
	}
	if m.version == "" {
		m.version = DefaultVersion
	}
	if m.flags == 0 {
		m.flags = DefaultGuardFlags
	}
	if opts.Store != nil && !opts.DisableGuards {
		m.load()
	}
	return m
}

// load reads the state from the store.
func (m *Manager) load() {
	data, err := m.opts.Store.Read(m.name)
	if errors.Is(err, fs.ErrNotExist) {
		m.log.Infof("No guard state %q yet; starting with an empty guard sample.", m.name)
		return
	}
	if err != nil {
		m.log.Warnf("Could not read guard state %q: %v. Starting with an empty guard sample.", m.name, err)
		return
	}
	d, problems := parseState(data, m.now(), m.sel())
	for _, p := range problems {
		m.log.Warnf("Problem in guard state %q: %v", m.name, p)
	}
	m.installLocked(d)
	m.log.Infof("Loaded %d sampled guards (%d confirmed) from %q.", len(m.sampled), len(m.confirmed), m.name)
}

// installLocked replaces the sample with a decoded state.
func (m *Manager) installLocked(d decoded) {
	m.sampled = d.sampled
	m.foreign = d.foreign
	m.byID = map[[20]byte]*entry{}
	for _, e := range m.sampled {
		m.byID[e.id] = e
	}
	m.nextIdx = len(m.sampled)
	m.rebuildConfirmedLocked()
	m.primary = nil
	m.primaryStale = true
	if m.dir != nil {
		m.attachNodesLocked()
		m.updateFilteredLocked()
	}
}

// rebuildConfirmedLocked recomputes the confirmed list from confirmedIdx
// and renumbers it compactly.
func (m *Manager) rebuildConfirmedLocked() {
	m.confirmed = m.confirmed[:0]
	for _, e := range m.sampled {
		if e.confirmed() {
			m.confirmed = append(m.confirmed, e)
		}
	}
	sortByConfirmedIdx(m.confirmed)
	for i, e := range m.confirmed {
		e.confirmedIdx = i
	}
}

func sortByConfirmedIdx(es []*entry) {
	// Insertion sort: the list is short and nearly sorted.
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].confirmedIdx < es[j-1].confirmedIdx; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// param returns a consensus parameter, or def without a consensus.
func (m *Manager) param(name string, def, lo, hi int32) int {
	if m.dir == nil || m.dir.Consensus == nil {
		return int(def)
	}
	return int(m.dir.Consensus.Param(name, def, lo, hi))
}

func (m *Manager) days(name string, def int32) time.Duration {
	return time.Duration(m.param(name, def, 1, 3650)) * 24 * time.Hour
}

func (m *Manager) seconds(name string, def int32) time.Duration {
	return time.Duration(m.param(name, def, 1, 1<<31-1)) * time.Second
}

func (m *Manager) lifetime() time.Duration {
	return m.days("guard-lifetime-days", defaultLifetimeDays)
}

// nPrimary is N_PRIMARY_GUARDS.
func (m *Manager) nPrimary() int {
	n := m.opts.NumPrimaryGuards
	if n <= 0 {
		n = m.param("guard-n-primary-guards", defaultNPrimary, 1, 1<<31-1)
	}
	return max(n, m.opts.NumEntryGuards)
}

// nToUse is NUM_USABLE_PRIMARY_GUARDS or NUM_USABLE_PRIMARY_DIRECTORY_GUARDS.
func (m *Manager) nToUse(u Usage) int {
	if u == ForDir {
		if m.opts.NumDirectoryGuards > 0 {
			return m.opts.NumDirectoryGuards
		}
		return m.param("guard-n-primary-dir-guards-to-use", defaultNPrimaryDirToUse, 1, 1<<31-1)
	}
	if m.opts.NumEntryGuards > 0 {
		return m.opts.NumEntryGuards
	}
	return m.param("guard-n-primary-guards-to-use", defaultNPrimaryToUse, 1, 1<<31-1)
}

func (m *Manager) minFilteredSample() int {
	return m.param("guard-min-filtered-sample-size", defaultMinFilteredSample, 1, 1<<31-1)
}

// maxSampleSize is C tor's get_max_sample_size: the smaller of
// guard-max-sample-size and guard-max-sample-threshold-percent of the
// consensus's guards, but at least the minimum filtered sample.
func (m *Manager) maxSampleSize(nGuards int) int {
	byPct := nGuards * m.param("guard-max-sample-threshold-percent", defaultMaxSamplePercent, 1, 100) / 100
	abs := m.param("guard-max-sample-size", defaultMaxSampleSize, 1, 1<<31-1)
	return max(min(byPct, abs), m.minFilteredSample())
}

// randPast is guard-spec A.2's RAND(now, interval): a time up to interval
// before now, uniformly, in whole seconds.
func (m *Manager) randPast(now time.Time, interval time.Duration) time.Time {
	now = now.Truncate(time.Second)
	secs := int64(interval / time.Second)
	if secs <= 0 {
		return now
	}
	return now.Add(-time.Duration(m.rng.Int64N(secs)) * time.Second)
}

// isGuard reports whether r belongs to {GUARDS}. Directory authorities
// are left out, as C tor does.
func (m *Manager) isGuard(r *dir.Relay) bool {
	return r != nil && r.Flags.Has(m.flags) && !r.Flags.Has(dir.FlagAuthority)
}

// SetConsensus installs a new directory (guard-spec 4.10): it updates which
// sampled guards are listed, removes expired ones, recomputes the filtered
// and primary guards, and persists the changes. d is kept and must not be
// modified afterwards. Call it for every new consensus and whenever new
// microdescriptors arrive (a new path.Dir).
func (m *Manager) SetConsensus(d *path.Dir) {
	if d == nil || d.Consensus == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dir = d
	if m.opts.DisableGuards {
		return
	}
	now := m.now()
	m.attachNodesLocked()
	removeAfter := m.days("guard-remove-unlisted-guards-after-days", defaultRemoveUnlistedDays)
	for _, e := range m.sampled {
		listed := e.node != nil && m.isGuard(e.node.Relay)
		if e.node != nil && e.node.Nickname != e.nickname && validNickname(e.node.Nickname) {
			e.nickname = e.node.Nickname
			m.dirty = true
		}
		switch {
		case listed && !e.listed:
			m.log.Infof("Sampled guard %s is listed again.", e)
			e.listed, e.unlistedSince = true, time.Time{}
			m.dirty = true
		case !listed && e.listed:
			m.log.Infof("Sampled guard %s is no longer listed as a guard.", e)
			e.listed = false
			e.unlistedSince = m.randPast(now, removeAfter/5)
			m.dirty = true
		case !listed && e.unlistedSince.IsZero():
			e.unlistedSince = m.randPast(now, removeAfter/5)
			m.dirty = true
		}
	}
	if d.Consensus.Usable(now, 0) {
		m.pruneLocked(now, removeAfter)
	}
	m.updateFilteredLocked()
	m.primaryStale = true
	m.updatePrimaryLocked(now)
	m.saveLocked()
}

// attachNodesLocked points each sampled guard at its node in the current
// directory (with its microdescriptor when known).
func (m *Manager) attachNodesLocked() {
	for _, e := range m.sampled {
		e.node = nil
	}
	m.forEachRelay(func(n *path.Node) bool {
		if e := m.byID[n.Identity]; e != nil {
			e.node = n
		}
		return true
	})
}

// forEachRelay calls f with every relay of the current consensus, as a
// Node whose MD is set if the directory has it, until f returns false.
func (m *Manager) forEachRelay(f func(*path.Node) bool) {
	c := m.dir.Consensus
	nodes := m.dir.Nodes
	// path.NewDir keeps consensus order and points into c.Relays, so a
	// merge finds each relay's node; a Dir built otherwise goes through
	// a map.
	j := 0
	for i := range c.Relays {
		if j < len(nodes) && nodes[j].Relay == &c.Relays[i] {
			j++
		}
	}
	var byID map[[20]byte]*path.Node
	if j != len(nodes) {
		byID = make(map[[20]byte]*path.Node, len(nodes))
		for _, n := range nodes {
			byID[n.Identity] = n
		}
	}
	j = 0
	for i := range c.Relays {
		r := &c.Relays[i]
		var n *path.Node
		switch {
		case byID != nil:
			n = byID[r.Identity]
		case j < len(nodes) && nodes[j].Relay == r:
			n = nodes[j]
			j++
		}
		if n == nil {
			n = &path.Node{Relay: r}
		}
		if !f(n) {
			return
		}
	}
}

// pruneLocked removes expired guards (guard-spec 4.1).
func (m *Manager) pruneLocked(now time.Time, removeAfter time.Duration) {
	lifetime := m.lifetime()
	confirmedMin := m.days("guard-confirmed-min-lifetime-days", defaultConfirmedMinDays)
	kept := m.sampled[:0]
	removed := false
	for _, e := range m.sampled {
		why := ""
		switch {
		case !e.listed && !e.unlistedSince.IsZero() && now.Sub(e.unlistedSince) > removeAfter:
			why = "it has been unlisted for too long"
		case now.Sub(e.sampledOn) > lifetime && !e.confirmed():
			why = "it was sampled long ago and never confirmed"
		case now.Sub(e.sampledOn) > lifetime && now.Sub(e.confirmedOn) > confirmedMin:
			why = "it was sampled and confirmed long ago"
		}
		if why == "" {
			kept = append(kept, e)
			continue
		}
		m.log.Infof("Removing sampled guard %s: %s.", e, why)
		delete(m.byID, e.id)
		removed = true
	}
	for i := len(kept); i < len(m.sampled); i++ {
		m.sampled[i] = nil
	}
	m.sampled = kept
	if removed {
		m.dirty = true
		m.rebuildConfirmedLocked()
		m.primaryStale = true
	}
}

// SetFilter changes the configuration filter (see Options.Filter): guards
// it rejects stay sampled and confirmed, but are not used while rejected.
func (m *Manager) SetFilter(f func(n *path.Node) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.filter = f
	if m.opts.DisableGuards || m.dir == nil {
		return
	}
	m.updateFilteredLocked()
	m.primaryStale = true
	m.updatePrimaryLocked(m.now())
	m.saveLocked()
}

// updateFilteredLocked recomputes FILTERED_GUARDS (guard-spec 4.2).
func (m *Manager) updateFilteredLocked() {
	for _, e := range m.sampled {
		m.setFilteredLocked(e)
	}
}

func (m *Manager) setFilteredLocked(e *entry) {
	e.filtered = e.listed && e.node != nil && m.isGuard(e.node.Relay) && (m.filter == nil || m.filter(e.node))
}

// countUsableFiltered counts USABLE_FILTERED_GUARDS.
func (m *Manager) countUsableFiltered() int {
	n := 0
	for _, e := range m.sampled {
		if e.usableFiltered() {
			n++
		}
	}
	return n
}

// expandSampleLocked adds guards to the sample while it has fewer than
// the minimum of usable filtered guards and is below its maximum size
// (guard-spec 4.2).
func (m *Manager) expandSampleLocked(now time.Time) {
	if m.dir == nil {
		return
	}
	minUsable := m.minFilteredSample()
	if m.countUsableFiltered() >= minUsable {
		return
	}
	nGuards := 0
	m.forEachRelay(func(n *path.Node) bool {
		if m.isGuard(n.Relay) {
			nGuards++
		}
		return true
	})
	maxSize := m.maxSampleSize(nGuards)
	var candidates []*path.Node
	for m.countUsableFiltered() < minUsable && len(m.sampled) < maxSize {
		candidates = candidates[:0]
		m.forEachRelay(func(n *path.Node) bool {
			if m.isGuard(n.Relay) && m.byID[n.Identity] == nil {
				candidates = append(candidates, n)
			}
			return true
		})
		if len(candidates) == 0 {
			break
		}
		n, err := path.Pick(m.rng, m.dir.Consensus, candidates, path.Guard)
		if err != nil {
			break
		}
		m.addLocked(n, now)
	}
}

// addLocked appends n to the sample.
func (m *Manager) addLocked(n *path.Node, now time.Time) {
	e := &entry{
		id:           n.Identity,
		sampledOn:    m.randPast(now, m.lifetime()/10),
		sampledBy:    m.version,
		sampledIdx:   m.nextIdx,
		listed:       true,
		confirmedIdx: -1,
		node:         n,
	}
	if validNickname(n.Nickname) {
		e.nickname = n.Nickname
	}
	m.nextIdx++
	m.sampled = append(m.sampled, e)
	m.byID[e.id] = e
	m.setFilteredLocked(e)
	m.dirty = true
	m.log.Infof("Added %s to the entry guard sample (now %d guards).", e, len(m.sampled))
}

// updatePrimaryLocked recomputes PRIMARY_GUARDS if stale (guard-spec 4.4,
// as C tor's entry_guards_update_primary): confirmed filtered guards
// first, then the earlier primary guards that are still filtered, then
// reachable filtered guards in sample order.
func (m *Manager) updatePrimaryLocked(now time.Time) {
	if !m.primaryStale || m.dir == nil {
		return
	}
	m.primaryStale = false
	n := m.nPrimary()
	old := m.primary
	var next []*entry
	in := func(e *entry) bool {
		for _, x := range next {
			if x == e {
				return true
			}
		}
		return false
	}
	for _, e := range m.confirmed {
		if len(next) >= n {
			break
		}
		if e.filtered {
			next = append(next, e)
		}
	}
	for _, e := range old {
		if len(next) >= n {
			break
		}
		if e.filtered && m.byID[e.id] == e && !in(e) {
			next = append(next, e)
		}
	}
	if len(next) < n {
		m.expandSampleLocked(now)
		for _, e := range m.sampled {
			if len(next) >= n {
				break
			}
			if e.usableFiltered() && !e.confirmed() && !in(e) {
				next = append(next, e)
			}
		}
	}
	for _, e := range old {
		e.primary = false
	}
	for _, e := range next {
		e.primary = true
	}
	changed := len(old) != len(next)
	for i := 0; !changed && i < len(old); i++ {
		changed = old[i] != next[i]
	}
	m.primary = next
	if changed && m.log.Enabled(torlog.Info) {
		s := ""
		for i, e := range next {
			if i > 0 {
				s += ", "
			}
			s += e.String()
		}
		m.log.Infof("Primary entry guards are now: %s", s)
	}
}

// RetryDelay is how long after the last attempt a guard that has been
// failing for failingFor is tried again (guard-spec A.1
// PRIMARY_GUARDS_RETRY_SCHED and GUARDS_RETRY_SCHED, with C tor's
// boundaries): primary guards every 10 minutes for the first 6 hours,
// every 90 minutes up to 4 days, every 4 hours up to 7 days, then every
// 9 hours; other guards every 1, 4, 18 and 36 hours.
func RetryDelay(failingFor time.Duration, primary bool) time.Duration {
	steps := []struct {
		upTo             time.Duration
		primary, nonprim time.Duration
	}{
		{6 * time.Hour, 10 * time.Minute, 1 * time.Hour},
		{4 * 24 * time.Hour, 90 * time.Minute, 4 * time.Hour},
		{7 * 24 * time.Hour, 4 * time.Hour, 18 * time.Hour},
	}
	for _, s := range steps {
		if failingFor <= s.upTo {
			if primary {
				return s.primary
			}
			return s.nonprim
		}
	}
	if primary {
		return 9 * time.Hour
	}
	return 36 * time.Hour
}

// considerRetryLocked turns an unreachable guard back into "maybe" once
// its retry time has come (guard-spec 4.5).
func (m *Manager) considerRetryLocked(e *entry, now time.Time) {
	if e.reachable != No {
		return
	}
	delay := RetryDelay(now.Sub(e.failingSince), e.primary)
	if e.lastTried.IsZero() || !now.Before(e.lastTried.Add(delay)) {
		m.log.Infof("Retrying unreachable %sguard %s.", primaryWord(e), e)
		e.reachable = Maybe
	}
}

func primaryWord(e *entry) string {
	if e.primary {
		return "primary "
	}
	return ""
}

// markPrimaryMaybeLocked marks every primary guard as possibly reachable.
func (m *Manager) markPrimaryMaybeLocked() {
	for _, e := range m.primary {
		if e.reachable == No {
			e.reachable = Maybe
		}
	}
}

// saveLocked writes the state if it changed and the clock is trusted.
func (m *Manager) saveLocked() {
	if err := m.saveErrLocked(); err != nil {
		m.log.Warnf("%v", err)
	}
}

func (m *Manager) saveErrLocked() error {
	if !m.dirty || m.opts.Store == nil || m.opts.DisableGuards {
		return nil
	}
	if m.opts.Trusted != nil && !m.opts.Trusted() {
		return nil
	}
	if err := m.opts.Store.Write(m.name, encodeState(m.sampled, m.foreign, m.sel())); err != nil {
		return errfmt.Errorf("saving guard state %q: %w", m.name, err)
	}
	m.dirty = false
	return nil
}

// Save persists the state now if it changed since the last write (and the
// clock is trusted). The Manager saves by itself after every change; call
// Save at shutdown and after the clock becomes trusted.
func (m *Manager) Save() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saveErrLocked()
}

// Encode returns the state as it would be persisted.
func (m *Manager) Encode() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return encodeState(m.sampled, m.foreign, m.sel())
}

// Info describes one sampled guard.
type Info struct {
	ID       [20]byte
	Nickname string
	// SampledOn and ConfirmedOn are the (randomized) persistent dates;
	// ConfirmedOn is zero for guards never confirmed.
	SampledOn, ConfirmedOn time.Time
	// Listed: in the latest consensus as a guard. Filtered: allowed by
	// the configuration. Primary: among PRIMARY_GUARDS.
	Listed, Filtered, Primary bool
	// ConfirmedIdx is the position in CONFIRMED_GUARDS, or -1.
	ConfirmedIdx int
	Reachable    Reachability
	// FailingSince is when the guard started failing, zero if it is not.
	FailingSince time.Time
}

// Guards describes the sample in sample order (for the control port's
// GETINFO entry-guards and for logs).
func (m *Manager) Guards() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Info, 0, len(m.sampled))
	for _, e := range m.sampled {
		out = append(out, Info{
			ID: e.id, Nickname: e.nickname, SampledOn: e.sampledOn, ConfirmedOn: e.confirmedOn,
			Listed: e.listed, Filtered: e.filtered, Primary: e.primary, ConfirmedIdx: e.confirmedIdx,
			Reachable: e.reachable, FailingSince: e.failingSince,
		})
	}
	return out
}

// Primary returns the identities of the primary guards, in order.
func (m *Manager) Primary() [][20]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.updatePrimaryLocked(m.now())
	out := make([][20]byte, len(m.primary))
	for i, e := range m.primary {
		out[i] = e.id
	}
	return out
}

// MissingDescriptors returns the microdescriptor digests of primary
// guards whose microdescriptor the directory lacks. Circuits need them
// (guard-spec 4.12): fetch these first.
func (m *Manager) MissingDescriptors() [][32]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.updatePrimaryLocked(m.now())
	var out [][32]byte
	for _, e := range m.primary {
		if e.node != nil && e.node.MD == nil {
			out = append(out, e.node.Microdesc)
		}
	}
	return out
}
