// Package vanguards keeps the layer-2 guards of vanguards-lite (proposal
// 333, C tor 0.4.7+ entrynodes.c "Layer2 guard subsystem"): a small set of
// relays (guard-hs-l2-number, default 4) used as the second hop of every
// onion-service circuit, on the client side (HSDir, introduction and
// rendezvous circuits) and on the service side (HSDir, introduction and
// rendezvous circuits). Each layer-2 guard is kept for a random lifetime
// between guard-hs-l2-lifetime-min and guard-hs-l2-lifetime-max (1 to 12
// days), and is replaced earlier when it leaves the consensus or loses the
// Stable or Fast flag. NEWNYM throws the whole set away (Purge), as C tor
// does.
//
// Unlike C tor, which keeps the set in memory only (the proposal: "We
// don't write guards on disk"), a Manager given a Store writes the set
// under its own state name (DefaultStateName), so that a router that
// reboots often does not draw a new set at every start: every new draw is
// a new chance for an adversary's relay to become a layer-2 guard.
//
// A Manager is safe for concurrent use. The circuit manager asks it for
// the second hop of each onion-service circuit (Pick), passing the
// directory the circuit is built from; the client also gives it every new
// directory (SetConsensus) so that expired and unsuitable guards are
// replaced, and its state written, without waiting for a circuit.
package vanguards

import (
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strings"
	"time"

	"tinytor/tor/dir"
	"tinytor/tor/errfmt"
	"tinytor/tor/guard"
	"tinytor/tor/lock"
	"tinytor/tor/path"
	"tinytor/tor/torlog"
)

// DefaultStateName is the name under which the set is persisted.
const DefaultStateName = "vanguards"

// Defaults and bounds of the consensus parameters (C tor entrynodes.c,
// param-spec).
const (
	// DefaultNumber is guard-hs-l2-number's default; it lies in
	// [1, MaxNumber].
	DefaultNumber = 4
	// MaxNumber is guard-hs-l2-number's maximum.
	MaxNumber = 19
	// DefaultMinLifetime and DefaultMaxLifetime are the defaults of
	// guard-hs-l2-lifetime-min and guard-hs-l2-lifetime-max.
	DefaultMinLifetime = 24 * time.Hour
	DefaultMaxLifetime = 12 * 24 * time.Hour
)

// Parameter names in the consensus.
const (
	paramEnabled     = "vanguards-lite-enabled"
	paramNumber      = "guard-hs-l2-number"
	paramMinLifetime = "guard-hs-l2-lifetime-min"
	paramMaxLifetime = "guard-hs-l2-lifetime-max"
)

// ErrNoLayer2Guard is returned (wrapped) by Pick when no layer-2 guard can
// be used for the circuit.
var ErrNoLayer2Guard = errors.New("no usable layer-2 guard")

// Options configure a Manager. The zero value is usable: the real clock,
// no persistence, C tor's flag rules.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand draws the guards and their lifetimes; nil means a generator
	// seeded from crypto/rand. It is used with the Manager's lock held.
	Rand *rand.Rand
	// Log receives C tor style messages; nil discards them.
	Log *torlog.Logger
	// Store persists the set (the guard manager's Persister); nil keeps
	// it in memory only, as C tor does.
	Store guard.Persister
	// StateName is the name given to Store; "" means DefaultStateName.
	StateName string
	// Exclude reports whether the configuration forbids n (ExcludeNodes);
	// such a relay is never chosen, and is skipped by Pick. Nil excludes
	// nothing. It is called with the Manager's lock held: it must not
	// call the Manager.
	Exclude func(n *path.Node) bool
	// RelaxFlags drops the Stable and Fast requirements (TestingTorNetwork:
	// a young test network votes them late, see the testnet notes).
	RelaxFlags bool
}

// Info describes one layer-2 guard.
type Info struct {
	ID       [20]byte
	Nickname string // from the directory last seen; may be empty
	Expires  time.Time
}

// l2 is one layer-2 guard: C tor keeps only the identity and the
// expiry date.
type l2 struct {
	id      [20]byte
	expires time.Time
}

// Manager keeps the layer-2 guard set.
type Manager struct {
	opts Options
	now  func() time.Time
	log  *torlog.Logger
	name string

	mu     lock.Mutex
	rng    *rand.Rand
	dir    *path.Dir
	guards []l2
	dirty  bool
}

// New returns a Manager, loading the set from opts.Store if there is one.
// A missing state starts an empty set; unreadable lines are logged and
// skipped. Guards are chosen once a directory is known (SetConsensus or
// Pick).
func New(opts Options) *Manager {
	m := &Manager{opts: opts, now: opts.Now, log: opts.Log, name: opts.StateName, rng: opts.Rand}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = torlog.Discard()
	}
	if m.name == "" {
		m.name = DefaultStateName
	}
	if m.rng == nil {
		var seed [32]byte
		if _, err := crand.Read(seed[:]); err != nil {
			// crypto/rand does not fail on supported platforms.
			panic(fmt.Sprintf("vanguards: reading random seed: %v", err))
		}
		m.rng = rand.New(rand.NewChaCha8(seed))
	}
	if opts.Store != nil {
		m.load()
	}
	return m
}

// load reads the set from the store.
func (m *Manager) load() {
	data, err := m.opts.Store.Read(m.name)
	if errors.Is(err, fs.ErrNotExist) {
		m.log.Infof("No layer-2 guard state %q yet; layer-2 guards will be chosen.", m.name)
		return
	}
	if err != nil {
		m.log.Warnf("Could not read layer-2 guard state %q: %v. Choosing new layer-2 guards.", m.name, err)
		return
	}
	guards, problems := parseState(data)
	for _, p := range problems {
		m.log.Warnf("Problem in layer-2 guard state %q: %v", m.name, p)
	}
	m.guards = guards
	m.log.Infof("Loaded %d layer-2 guards from %q.", len(guards), m.name)
}

// Enabled reports whether onion-service circuits through d use layer-2
// guards: the consensus parameter vanguards-lite-enabled (default 1).
func Enabled(d *path.Dir) bool {
	return d == nil || d.Consensus == nil || d.Consensus.Param(paramEnabled, 1, 0, 1) == 1
}

// Enabled is the package function Enabled; it lets the circuit manager
// take a Manager as an interface.
func (m *Manager) Enabled(d *path.Dir) bool { return Enabled(d) }

// param returns a consensus parameter of the directory in use, or def.
func (m *Manager) param(name string, def, lo, hi int32) int32 {
	if m.dir == nil || m.dir.Consensus == nil {
		return def
	}
	return m.dir.Consensus.Param(name, def, lo, hi)
}

// number is how many layer-2 guards the set should have.
func (m *Manager) number() int {
	return int(m.param(paramNumber, DefaultNumber, 1, MaxNumber))
}

// lifetimes returns the bounds of a layer-2 guard's lifetime.
func (m *Manager) lifetimes() (lo, hi time.Duration) {
	const maxInt32 = 1<<31 - 1
	lo = time.Duration(m.param(paramMinLifetime, int32(DefaultMinLifetime/time.Second), 1, maxInt32)) * time.Second
	hi = time.Duration(m.param(paramMaxLifetime, int32(DefaultMaxLifetime/time.Second), 1, maxInt32)) * time.Second
	return lo, hi
}

// lifetime draws a lifetime uniformly in [min, max), in whole seconds, as
// C tor's get_layer2_hs_guard_lifetime does (the proposal's max(X,X)
// distribution was not implemented); min when min >= max.
func (m *Manager) lifetime() time.Duration {
	lo, hi := m.lifetimes()
	if lo >= hi {
		return lo
	}
	return lo + time.Duration(m.rng.Int64N(int64((hi-lo)/time.Second)))*time.Second
}

// keepFlags are the flags a layer-2 guard must keep (C tor 0.4.8.2+: it
// is replaced when it loses Stable or Fast); pickFlags those a new one
// needs (CRN_NEED_UPTIME). Running and Valid are needed to be used.
func (m *Manager) keepFlags() dir.Flags {
	if m.opts.RelaxFlags {
		return 0
	}
	return dir.FlagStable | dir.FlagFast
}

func (m *Manager) pickFlags() dir.Flags {
	if m.opts.RelaxFlags {
		return 0
	}
	return dir.FlagStable
}

// describe names a guard for the logs: $HEX~nickname when known.
func (m *Manager) describe(id [20]byte) string {
	s := "$" + strings.ToUpper(hex.EncodeToString(id[:]))
	if m.dir != nil && m.dir.Consensus != nil {
		if r := m.dir.Consensus.RelayByID(id); r != nil && r.Nickname != "" {
			s += "~" + r.Nickname
		}
	}
	return s
}

// SetConsensus installs a new directory: guards that expired, left the
// consensus or lost Stable or Fast are removed, the set is filled up to
// guard-hs-l2-number, and the change is persisted. d is kept and must not
// be modified afterwards.
func (m *Manager) SetConsensus(d *path.Dir) {
	if d == nil || d.Consensus == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dir = d
	m.maintainLocked()
}

// maintainLocked is C tor's maintain_layer2_guards.
func (m *Manager) maintainLocked() {
	if m.dir == nil || m.dir.Consensus == nil {
		return
	}
	now := m.now()
	c := m.dir.Consensus
	_, maxLife := m.lifetimes()
	// A date further than the longest lifetime is from a clock that went
	// back, or a damaged state; it is believed only while the clock itself
	// is doubtful (the consensus is not usable at now).
	clockOK := c.Usable(now, 0)
	kept := m.guards[:0]
	for _, g := range m.guards {
		r := c.RelayByID(g.id)
		reason := ""
		switch {
		case !g.expires.After(now):
			reason = "expired"
		case clockOK && g.expires.After(now.Add(maxLife)):
			reason = "far-future"
		case r == nil:
			reason = "missing"
		case !r.Flags.Has(m.keepFlags()):
			reason = "unsuitable"
		}
		if reason != "" {
			m.log.Infof("Removing %s Layer2 guard %s", reason, m.describe(g.id))
			m.dirty = true
			continue
		}
		kept = append(kept, g)
	}
	clear(m.guards[len(kept):])
	m.guards = kept
	if need := m.number() - len(m.guards); need > 0 {
		m.addLocked(now, need)
	}
	m.saveLocked()
}

// addLocked chooses up to need new layer-2 guards: bandwidth-weighted
// middles (C tor's router_choose_random_node with CRN_NEED_UPTIME), none
// already in the set; relays of one family may both be chosen.
func (m *Manager) addLocked(now time.Time, need int) {
	m.log.Infof("Adding %d guards to Layer2 routerset", need)
	want := len(m.guards) + need
	have := make(map[[20]byte]bool, len(m.guards)+need)
	for _, g := range m.guards {
		have[g.id] = true
	}
	opts := &path.Options{Exclude: m.opts.Exclude}
	var cands []*path.Node
	for _, n := range m.dir.Candidates(path.Middle, opts, nil) {
		if !have[n.Identity] && n.Flags.Has(m.pickFlags()) {
			cands = append(cands, n)
		}
	}
	for range need {
		n, err := path.Pick(m.rng, m.dir.Consensus, cands, path.Middle)
		if err != nil {
			m.log.Infof("Found only %d of %d layer-2 guards: %v", len(m.guards), want, err)
			return
		}
		g := l2{id: n.Identity, expires: now.Add(m.lifetime()).Truncate(time.Second)}
		m.guards = append(m.guards, g)
		m.dirty = true
		m.log.Infof("Adding Layer2 guard %s", m.describe(g.id))
		for i, c := range cands {
			if c == n {
				cands = append(cands[:i], cands[i+1:]...)
				break
			}
		}
	}
}

// Pick returns a layer-2 guard for the second hop of a circuit built
// through d: one of the set, chosen uniformly among those that d lists as
// Running and Valid with a microdescriptor, that the configuration does
// not exclude and for which usable (if not nil) returns true (C tor's
// pick_restricted_middle_node). The caller's usable rules out the
// circuit's other hops; it is called with the Manager's lock held and must
// not call the Manager. The set is maintained first, with d as the
// directory in use. An error wrapping ErrNoLayer2Guard means none fits.
func (m *Manager) Pick(d *path.Dir, usable func(*path.Node) bool) (*path.Node, error) {
	if d == nil || d.Consensus == nil {
		return nil, errfmt.Errorf("choosing a layer-2 guard: %w (no directory)", ErrNoLayer2Guard)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// A circuit may be built from a directory older than the one
	// installed last: the set is kept against the newest.
	if m.dir == nil || !d.Consensus.ValidAfter.Before(m.dir.Consensus.ValidAfter) {
		m.dir = d
	}
	m.maintainLocked()
	var fit []*path.Node
	for _, g := range m.guards {
		n := d.ByID(g.id)
		if n == nil || !n.Flags.Has(dir.FlagRunning|dir.FlagValid) {
			continue
		}
		if m.opts.Exclude != nil && m.opts.Exclude(n) {
			continue
		}
		if usable != nil && !usable(n) {
			continue
		}
		fit = append(fit, n)
	}
	if len(fit) == 0 {
		return nil, errfmt.Errorf("choosing a layer-2 guard: %w (%d in the set, none fits this circuit)", ErrNoLayer2Guard, len(m.guards))
	}
	return fit[m.rng.IntN(len(fit))], nil
}

// Purge forgets every layer-2 guard and chooses a new set (SIGNAL NEWNYM,
// C tor's purge_vanguards_lite).
func (m *Manager) Purge() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.guards) > 0 {
		m.log.Infof("Forgetting %d Layer2 guards (new identity)", len(m.guards))
		m.dirty = true
	}
	clear(m.guards)
	m.guards = m.guards[:0]
	m.maintainLocked()
	m.saveLocked()
}

// Guards returns the set, in the order the guards were chosen.
func (m *Manager) Guards() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Info, len(m.guards))
	for i, g := range m.guards {
		out[i] = Info{ID: g.id, Expires: g.expires}
		if m.dir != nil && m.dir.Consensus != nil {
			if r := m.dir.Consensus.RelayByID(g.id); r != nil {
				out[i].Nickname = r.Nickname
			}
		}
	}
	return out
}

// Contains reports whether id is one of the layer-2 guards.
func (m *Manager) Contains(id [20]byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range m.guards {
		if g.id == id {
			return true
		}
	}
	return false
}

func (m *Manager) saveLocked() {
	if err := m.saveErrLocked(); err != nil {
		m.log.Warnf("%v", err)
	}
}

func (m *Manager) saveErrLocked() error {
	if !m.dirty || m.opts.Store == nil {
		return nil
	}
	if err := m.opts.Store.Write(m.name, encodeState(m.guards)); err != nil {
		return errfmt.Errorf("saving layer-2 guard state %q: %w", m.name, err)
	}
	m.dirty = false
	return nil
}

// Save writes the set now if it changed since the last write. The Manager
// saves by itself after every change; Save is for a shutdown after a
// failed write.
func (m *Manager) Save() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saveErrLocked()
}

// Encode returns the set as it would be persisted.
func (m *Manager) Encode() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return encodeState(m.guards)
}
