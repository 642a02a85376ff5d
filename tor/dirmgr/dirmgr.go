// Package dirmgr is the directory manager: it loads the directory cache,
// fetches what the client lacks (consensus, authority certificates,
// microdescriptors) over one-hop directory circuits, verifies and caches
// it, refreshes the consensus on C tor's schedule, and holds the current
// view of the network (a NetDir) that path selection reads.
package dirmgr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/chanmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/event"
	"tinytor/tor/link"
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
}

// Stats returns the download counters.
func (m *Manager) Stats() Stats {
	return Stats{m.consensusFetches.Load(), m.mdFetches.Load(), m.certFetches.Load()}
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

// install makes d the directory in use.
func (m *Manager) install(d *NetDir, cached bool) {
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
		l.Consensus.ValidUntil.UTC().Format(time.DateTime), len(l.Consensus.Relays), len(d.Microdescs))
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
			m.cfg.Log.Warnf("Could not refresh the directory: %v", err)
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

// source is a relay that serves directory documents over BEGIN_DIR.
type source struct {
	name string
	nick string
	addr netip.AddrPort
	id   link.Identity
	// hop, when the cache knows the relay's ntor key, lets the one-hop
	// circuit use ntor instead of CREATE_FAST (tor-spec 5.1.5).
	hop *circuit.HopInfo
}

// sources lists where to fetch directory documents from, in the order to
// try: with a consensus, the directory caches it lists (as C tor clients
// do, sparing the authorities); then fallbacks and authorities in random
// order.
func (m *Manager) sources() []source {
	var caches, boot []source
	d := m.Current()
	if d != nil && d.Consensus != nil {
		for i := range d.Consensus.Relays {
			r := &d.Consensus.Relays[i]
			if r.Flags.Has(dir.FlagV2Dir) && r.Flags.Has(dir.FlagRunning) && r.ORPort != 0 {
				caches = append(caches, source{name: "directory cache " + r.Nickname, nick: r.Nickname, addr: r.ORAddrPort(), id: link.Identity{RSA: r.Identity}})
			}
		}
	}
	cfg := m.cfg.Torrc()
	for _, a := range cfg.Authorities() {
		if a.ORPort == 0 || !a.IsV3() {
			continue
		}
		boot = append(boot, source{
			name: "directory authority " + a.Nickname,
			nick: a.Nickname,
			addr: netip.AddrPortFrom(a.Addr.Addr(), a.ORPort),
			id:   link.Identity{RSA: a.Fingerprint},
		})
	}
	for _, f := range cfg.Fallbacks() {
		boot = append(boot, source{
			name: "fallback directory " + f.Addr.String(),
			addr: netip.AddrPortFrom(f.Addr, f.ORPort),
			id:   link.Identity{RSA: f.ID},
		})
	}
	rng.Shuffle(m.cfg.Rand, caches)
	rng.Shuffle(m.cfg.Rand, boot)
	all := append(caches, boot...)
	if d.Enough() {
		for i := range all {
			all[i].withNtorKey(d.Paths)
		}
	}
	return all
}

// withNtorKey sets s.hop when the directory knows s's microdescriptor at
// the address s is reached on.
func (s *source) withNtorKey(p *path.Dir) {
	n := p.ByID(s.id.RSA)
	if n == nil || n.MD == nil || n.ORAddrPort() != s.addr {
		return
	}
	h := circuit.HopInfo{RSAID: n.Identity, NtorKey: n.MD.NtorOnionKey, Addrs: []netip.AddrPort{s.addr}}
	if n.MD.HasEd25519 {
		h.Ed25519ID = n.MD.Ed25519ID
		s.id.Ed25519 = n.MD.Ed25519ID
	}
	s.hop = &h
}

// Update fetches what the directory lacks (a fresh consensus if
// needConsensus, certificates, microdescriptors), trying sources in turn
// until one succeeds or ctx ends.
func (m *Manager) Update(ctx context.Context, needConsensus bool) error {
	srcs := m.sources()
	if len(srcs) == 0 {
		return errors.New("no directory authorities or fallback directories with an ORPort are configured")
	}
	var lastErr error
	for _, src := range srcs {
		err := m.fetchFrom(ctx, src, needConsensus)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lastErr = err
		m.cfg.Log.Infof("Directory fetch from %s (%s) failed: %v", src.name, src.addr, err)
	}
	return fmt.Errorf("every directory source failed; last: %w", lastErr)
}

// fetchFrom opens a one-hop directory circuit to src and fetches over it.
func (m *Manager) fetchFrom(ctx context.Context, src source, needConsensus bool) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	p := m.cfg.Progress
	p.Reach(event.PhaseConn)
	ch, err := m.cfg.Channels.Get(ctx, src.addr, src.id, src.nick)
	if err != nil {
		return err
	}
	p.Reach(event.PhaseConnDone)
	p.Reach(event.PhaseHandshake)
	p.Reach(event.PhaseHandshakeDone)
	p.Reach(event.PhaseOneHopCreate)
	ccfg := circuit.Config{Pool: m.cfg.Pool, Log: m.cfg.Log, SendmeAcceptMinVersion: m.Current().SendmeAcceptMinVersion()}
	var circ *circuit.Circuit
	if src.hop != nil {
		circ, err = circuit.Create(ctx, chanmgr.Circuits(ch), *src.hop, ccfg)
	} else {
		circ, err = circuit.CreateFast(ctx, chanmgr.Circuits(ch), ccfg)
	}
	if err != nil {
		return fmt.Errorf("one-hop directory circuit: %w", err)
	}
	defer circ.Close()
	get := func(p string, max int64) ([]byte, error) {
		st, err := circ.OpenDirStream(ctx)
		if err != nil {
			return nil, fmt.Errorf("BEGIN_DIR: %w", err)
		}
		stop := context.AfterFunc(ctx, func() { st.Close() })
		defer stop()
		defer st.Close()
		body, err := dir.Get(st, p, max)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("GET %s: %w", p, ctx.Err())
			}
			return nil, fmt.Errorf("GET %s: %w", p, err)
		}
		return body, nil
	}

	d := m.Current()
	if needConsensus || d == nil {
		nd, err := m.fetchConsensus(get, d)
		if err != nil {
			return err
		}
		d = nd
		m.install(d, false)
	}
	return m.fetchMicrodescs(get, d)
}

type getter func(path string, max int64) ([]byte, error)

// fetchConsensus downloads and verifies a consensus, fetching the
// authority certificates it needs. It returns the new directory view,
// carrying over the microdescriptors of old that are still listed.
func (m *Manager) fetchConsensus(get getter, old *NetDir) (*NetDir, error) {
	m.cfg.Progress.Reach(event.PhaseRequestingStatus)
	auths := m.v3Authorities()
	doc, err := get(dir.ConsensusPath(nil), maxConsensusSize)
	if err != nil {
		return nil, err
	}
	m.consensusFetches.Add(1)
	m.cfg.Progress.Reach(event.PhaseLoadingStatus)
	cons, err := dir.ParseConsensus(doc)
	if err != nil {
		return nil, fmt.Errorf("received consensus: %w", err)
	}
	now := m.cfg.Now()
	if !cons.Usable(now, consensusSkew) {
		return nil, fmt.Errorf("received consensus is not usable now (valid-after %s, valid-until %s, our clock %s)",
			cons.ValidAfter.UTC().Format(time.DateTime), cons.ValidUntil.UTC().Format(time.DateTime), now.UTC().Format(time.DateTime))
	}
	certs, err := m.verifyConsensus(get, cons, old, auths, now)
	if err != nil {
		return nil, err
	}
	if err := m.cfg.Cache.SaveConsensus(doc); err != nil {
		m.cfg.Log.Warnf("Could not cache the consensus: %v", err)
	}
	d := &NetDir{Consensus: cons, Certs: certs, Microdescs: map[[32]byte]*dir.Microdesc{}}
	if old != nil {
		for i := range cons.Relays {
			if md := old.Microdescs[cons.Relays[i].Microdesc]; md != nil {
				d.Microdescs[md.Digest] = md
			}
		}
		d.mdDocs = old.mdDocs
	}
	return d, nil
}

// verifyConsensus checks cons's signatures, fetching the authority
// certificates it lacks, and returns the certificates to keep.
func (m *Manager) verifyConsensus(get getter, cons *dir.Consensus, old *NetDir, auths [][20]byte, now time.Time) ([]*dir.AuthCert, error) {
	var certs []*dir.AuthCert
	if old != nil {
		certs = old.Certs
	} else if l := m.cfg.Cache.Load(auths, now, consensusSkew); l != nil {
		certs = l.Certs
	}
	rep := cons.CheckSignatures(certs, auths, now)
	if !rep.OK() && len(rep.MissingCerts) > 0 {
		m.cfg.Progress.Reach(event.PhaseLoadingKeys)
		body, err := get(dir.CertsByKeyPath(rep.MissingCerts), maxCertsSize)
		if err != nil {
			return nil, fmt.Errorf("fetching authority certificates: %w", err)
		}
		fetched, err := dir.ParseAuthCerts(body)
		if err != nil {
			return nil, fmt.Errorf("received authority certificates: %w", err)
		}
		for _, ct := range fetched {
			if err := ct.Verify(now); err != nil {
				m.cfg.Log.Warnf("Rejecting authority certificate for %X: %v", ct.Fingerprint, err)
				continue
			}
			certs = append(certs, ct)
			m.certFetches.Add(1)
		}
		if err := m.cfg.Cache.SaveCerts(certs); err != nil {
			m.cfg.Log.Warnf("Could not cache authority certificates: %v", err)
		}
		rep = cons.CheckSignatures(certs, auths, now)
	}
	if !rep.OK() {
		for _, p := range rep.Problems {
			m.cfg.Log.Warnf("Consensus signature problem: %v", p)
		}
		return nil, fmt.Errorf("consensus has valid signatures from %d of %d authorities, %d needed",
			len(rep.Signed), len(auths), rep.Required)
	}
	m.cfg.Log.Noticef("Downloaded a consensus valid until %s with %d relays, signed by %d of %d authorities.",
		cons.ValidUntil.UTC().Format(time.DateTime), len(cons.Relays), len(rep.Signed), len(auths))
	return certs, nil
}

// fetchMicrodescs downloads the microdescriptors d lacks, in batches,
// and installs a view with them.
func (m *Manager) fetchMicrodescs(get getter, d *NetDir) error {
	missing := d.missingMicrodescs()
	if len(missing) == 0 {
		return nil
	}
	m.cfg.Progress.Reach(event.PhaseRequestingDescriptors)
	paths, batches := dir.MicrodescPaths(missing)
	nd := &NetDir{Consensus: d.Consensus, Certs: d.Certs, Microdescs: make(map[[32]byte]*dir.Microdesc, len(d.Microdescs)+len(missing)), mdDocs: d.mdDocs}
	for k, v := range d.Microdescs {
		nd.Microdescs[k] = v
	}
	var firstErr error
	for i, p := range paths {
		body, err := get(p, maxMicrodescSize)
		if err == nil {
			var b *dir.MicrodescBatch
			b, err = dir.ParseRequestedMicrodescs(body, batches[i])
			if err == nil {
				m.cfg.Progress.Reach(event.PhaseLoadingDescriptors)
				for _, md := range b.Found {
					nd.Microdescs[md.Digest] = md
				}
				m.mdFetches.Add(int64(len(b.Found)))
				nd.mdDocs = append(nd.mdDocs, body)
				if len(b.Unrequested) > 0 {
					m.cfg.Log.Infof("Dropped %d unrequested microdescriptors.", len(b.Unrequested))
				}
			}
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("microdescriptors: %w", err)
		}
	}
	m.install(nd, false)
	m.saveMicrodescs(nd)
	if !nd.Enough() {
		if firstErr != nil {
			return firstErr
		}
		return fmt.Errorf("have microdescriptors for %d of %d relays: not enough to build circuits",
			len(nd.Microdescs), len(nd.Consensus.Relays))
	}
	return nil
}

// saveMicrodescs rewrites the microdescriptor cache with those d uses.
func (m *Manager) saveMicrodescs(d *NetDir) {
	n, err := m.cfg.Cache.SaveMicrodescs(d.mdDocs, func(dg [32]byte) bool { _, ok := d.Microdescs[dg]; return ok })
	if err != nil {
		m.cfg.Log.Warnf("Could not cache microdescriptors: %v", err)
		return
	}
	// The cache file now holds exactly what is kept: re-read it so that the
	// fetched response bodies can be freed.
	if doc, err := m.cfg.Cache.Store.ReadFile(dir.MicrodescsFile); err == nil {
		d.mdDocs = [][]byte{doc}
	}
	m.cfg.Log.Debugf("Cached %d microdescriptors.", n)
}
