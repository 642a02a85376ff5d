// Package dirmgr is the directory manager: it loads the directory cache,
// fetches what the client lacks (consensus, authority certificates,
// microdescriptors) over one-hop directory circuits, verifies and caches
// it, refreshes the consensus on C tor's schedule, and holds the current
// view of the network (a NetDir) that path selection reads.
package dirmgr

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/chanmgr"
	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/dir/netdoc"
	"tinytor/tor/event"
	"tinytor/tor/guard"
	"tinytor/tor/path"
	"tinytor/tor/rng"
	"tinytor/tor/torlog"
)

// Limits on directory responses (C tor's MAX_DIR_DL_SIZE is 40 MB; a
// router cannot afford that, and the live microdesc consensus is ~3 MB).
const (
	maxConsensusSize = 8 << 20
	maxCertsSize     = 1 << 20
	maxMicrodescSize = 4 << 20
	// fetchTimeout bounds one directory fetch attempt from one source.
	fetchTimeout = 90 * time.Second
	// consensusSkew is how far a consensus's valid-after may lie in our
	// future before we refuse it (clock skew tolerance).
	consensusSkew = time.Hour
	// pathsNeeded is C tor's PathsNeededToBuildCircuits default.
	pathsNeeded = 0.6
)

// NetDir is one consistent view of the network: a verified consensus, the
// certificates that verified it, and the microdescriptors known for it.
// A NetDir is never changed once installed: a new document gives a new one.
type NetDir struct {
	Consensus  *dir.Consensus
	Certs      []*dir.AuthCert
	Microdescs map[[32]byte]*dir.Microdesc
	// Paths is the path-selection view of the consensus and microdescs.
	Paths *path.Dir
	// mdDocs are the texts the microdescriptors came from, kept to write
	// the cache.
	mdDocs [][]byte
}

// Enough reports whether circuits can be built from d.
func (d *NetDir) Enough() bool {
	return d != nil && d.Consensus != nil && path.EnoughDirInfo(d.Consensus, d.Microdescs, pathsNeeded)
}

// SendmeAcceptMinVersion is the consensus parameter circuits obey (0
// without a consensus).
func (d *NetDir) SendmeAcceptMinVersion() int {
	if d == nil || d.Consensus == nil {
		return 0
	}
	return int(d.Consensus.Param("sendme_accept_min_version", 0, 0, 255))
}

// missingMicrodescs lists the digests the consensus names that d lacks.
func (d *NetDir) missingMicrodescs() [][32]byte {
	var out [][32]byte
	for i := range d.Consensus.Relays {
		r := &d.Consensus.Relays[i]
		if !r.Flags.Has(dir.FlagRunning) {
			continue
		}
		if _, ok := d.Microdescs[r.Microdesc]; !ok {
			out = append(out, r.Microdesc)
		}
	}
	return out
}

// Progress is told the bootstrap phases a fetch reaches.
type Progress interface{ Reach(event.Phase) }

// Config is what a Manager works with.
type Config struct {
	// Torrc returns the configuration in force (authorities, fallbacks).
	Torrc func() *config.Config
	Log   *torlog.Logger
	Now   func() time.Time
	// Cache stores the documents.
	Cache *dir.Cache
	// Channels opens the links to directory sources.
	Channels *chanmgr.Manager
	// Pool supplies the directory circuits' cells.
	Pool *cell.Pool
	// Progress is told the bootstrap phases; Events receives a
	// event.Consensus for each consensus put in use.
	Progress Progress
	Events   *event.Bus
	Rand     *rng.Source
	// Guards, once the client is bootstrapped, gives the directory
	// guards; nil fetches from any directory cache.
	Guards *guard.Manager
	// BridgesOnly (UseBridges) fetches from the guards alone, which are
	// bridges, from the first fetch on: no directory cache, fallback or
	// authority is ever contacted directly.
	BridgesOnly bool
	// OnInstall is called with each NetDir put in use, before Current
	// returns it (the guard manager's view of the consensus).
	OnInstall func(*NetDir)
}

// Manager fetches, verifies, caches and refreshes the directory.
type Manager struct {
	cfg Config

	mu     sync.RWMutex
	netdir *NetDir

	consensusFetches, mdFetches, certFetches atomic.Int64
	consensusBytes, mdBytes, certBytes       atomic.Int64
	// mdRejected counts the malformed microdescriptors skipped.
	mdRejected atomic.Int64
	// diffsApplied and diffFallbacks count the consensus diffs used and
	// those refused (the full consensus was fetched instead).
	diffsApplied, diffFallbacks atomic.Int64
}

// New returns a Manager with no directory yet.
func New(cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = torlog.Discard()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg}
}

// Stats are the documents downloaded so far.
type Stats struct {
	ConsensusFetches, MicrodescFetches, CertFetches int64
	// The bytes fetched by document type, as they crossed the BEGIN_DIR
	// streams (HTTP headers and compressed bodies).
	ConsensusBytes, MicrodescBytes, CertBytes int64
	// MicrodescsRejected counts the malformed microdescriptors skipped in
	// downloads (each logged at warn).
	MicrodescsRejected int64
	// ConsensusDiffs counts the consensus diffs applied;
	// ConsensusDiffFallbacks those that failed (malformed, not from our
	// consensus, a wrong result), after which the full consensus was
	// fetched.
	ConsensusDiffs, ConsensusDiffFallbacks int64
}

// Stats returns the download counters.
func (m *Manager) Stats() Stats {
	return Stats{
		ConsensusFetches:       m.consensusFetches.Load(),
		MicrodescFetches:       m.mdFetches.Load(),
		CertFetches:            m.certFetches.Load(),
		ConsensusBytes:         m.consensusBytes.Load(),
		MicrodescBytes:         m.mdBytes.Load(),
		CertBytes:              m.certBytes.Load(),
		MicrodescsRejected:     m.mdRejected.Load(),
		ConsensusDiffs:         m.diffsApplied.Load(),
		ConsensusDiffFallbacks: m.diffFallbacks.Load(),
	}
}

// Current returns the directory view in use, or nil.
func (m *Manager) Current() *NetDir {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.netdir
}

// v3Authorities returns the v3 identities that must sign the consensus.
func (m *Manager) v3Authorities() [][20]byte {
	var ids [][20]byte
	for _, a := range m.cfg.Torrc().Authorities() {
		if a.IsV3() {
			ids = append(ids, a.V3Ident)
		}
	}
	return ids
}

// NotNewerError is a consensus refused because it is not newer than the
// one in use: never replacing a consensus with an older one keeps a
// directory cache from rolling the client back (and its clock with it),
// as C tor's networkstatus_set_current_consensus does.
type NotNewerError struct {
	// Got and Have are the valid-after times of the consensus offered and
	// of the one in use.
	Got, Have time.Time
}

func (e *NotNewerError) Error() string {
	have := netdoc.Time(e.Have).String()
	if e.Got.Equal(e.Have) {
		return "received the consensus we have (valid-after " + have + ")"
	}
	return "received a consensus valid after " + netdoc.Time(e.Got).String() +
		", older than the one in use (valid after " + have + "): refusing it"
}

// checkNewer refuses a consensus whose valid-after is not later than that
// of the consensus in use.
func (m *Manager) checkNewer(cons *dir.Consensus) error {
	cur := m.Current()
	if cur == nil || cur.Consensus == nil || cons.ValidAfter.After(cur.Consensus.ValidAfter) {
		return nil
	}
	err := &NotNewerError{Got: cons.ValidAfter, Have: cur.Consensus.ValidAfter}
	if cons.ValidAfter.Before(cur.Consensus.ValidAfter) {
		m.cfg.Log.Warnf("Refusing a consensus valid after %s from a directory cache: the consensus in use is newer (valid after %s).",
			netdoc.Time(cons.ValidAfter), netdoc.Time(cur.Consensus.ValidAfter))
	}
	return err
}

// install makes d the directory in use. A consensus older than the one in
// use is never installed (checkNewer refuses it before it gets here; this
// is the last guard).
func (m *Manager) install(d *NetDir, cached bool) {
	if cur := m.Current(); cur != nil && d.Consensus.ValidAfter.Before(cur.Consensus.ValidAfter) {
		m.cfg.Log.Warnf("Not installing a consensus valid after %s over a newer one.", netdoc.Time(d.Consensus.ValidAfter))
		return
	}
	d.Paths = path.NewDir(d.Consensus, d.Microdescs)
	m.cfg.Events.Publish(event.Consensus{ValidAfter: d.Consensus.ValidAfter, FreshUntil: d.Consensus.FreshUntil,
		ValidUntil: d.Consensus.ValidUntil, Cached: cached})
	if m.cfg.OnInstall != nil {
		m.cfg.OnInstall(d)
	}
	m.mu.Lock()
	m.netdir = d
	m.mu.Unlock()
}

// LoadCache reads the cached documents and, if they still verify, makes
// them the directory in use. It reports whether a usable consensus was
// found.
func (m *Manager) LoadCache() bool {
	l := m.cfg.Cache.Load(m.v3Authorities(), m.cfg.Now(), consensusSkew)
	for _, p := range l.Problems {
		m.cfg.Log.Noticef("Ignoring cached directory information: %v", p)
	}
	if l.Consensus == nil {
		return false
	}
	d := &NetDir{Consensus: l.Consensus, Certs: l.Certs, Microdescs: map[[32]byte]*dir.Microdesc{}}
	for _, md := range l.Microdescs {
		d.Microdescs[md.Digest] = md
	}
	if len(l.MicrodescsDoc) > 0 {
		d.mdDocs = [][]byte{l.MicrodescsDoc}
	}
	m.install(d, true)
	m.cfg.Log.Noticef("Loaded a cached consensus valid until %s with %d relays and %d of their microdescriptors.",
		netdoc.Time(l.Consensus.ValidUntil), len(l.Consensus.Relays), len(d.Microdescs))
	return true
}

// retryDelays are the delays after a failed directory step (C tor's
// client schedule starts fast and backs off).
var retryDelays = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 60 * time.Second}

// RetryDelay is the delay before the next try after attempt failures.
func RetryDelay(attempt int) time.Duration {
	if attempt >= len(retryDelays) {
		return retryDelays[len(retryDelays)-1]
	}
	return retryDelays[attempt]
}

// Maintain refetches the consensus on C tor's schedule (dir-spec 5.1) and
// the microdescriptors it then lacks, until ctx ends.
func (m *Manager) Maintain(ctx context.Context) {
	failures := 0
	for {
		next := dir.NextConsensusFetch(m.Current().Consensus, m.cfg.Now(), m.cfg.Rand)
		if failures > 0 {
			next = m.cfg.Now().Add(RetryDelay(failures))
		}
		if !Sleep(ctx, next.Sub(m.cfg.Now())) {
			return
		}
		if err := m.Update(ctx, true); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			var nn *NotNewerError
			if errors.As(err, &nn) && nn.Got.Equal(nn.Have) {
				m.cfg.Log.Infof("Could not refresh the directory yet: %v", err)
			} else {
				m.cfg.Log.Warnf("Could not refresh the directory: %v", err)
			}
			continue
		}
		failures = 0
	}
}

// Sleep waits for d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
