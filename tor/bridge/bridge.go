// Package bridge keeps the bridges of the Bridge lines usable: it fetches
// each bridge's own server descriptor from the bridge over a one-hop
// BEGIN_DIR circuit (/tor/server/authority, as C tor's
// fetch_bridge_descriptors), verifies it (signatures, and the identity the
// bridge proved on the link and the Bridge line's fingerprint), caches it
// and refreshes it, and presents the bridges as a directory view of their
// own, which the guard manager samples from when UseBridges is set
// (guard-spec: with bridges, the sampled guards are the bridges).
package bridge

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/chanmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
	"tinytor/tor/link"
	"tinytor/tor/lock"
	"tinytor/tor/path"
	"tinytor/tor/torlog"
)

// CacheName is the file in the CacheDirectory that holds the bridges'
// descriptors (C tor keeps them in cached-descriptors too).
const CacheName = "cached-bridge-descriptors"

const (
	// maxDescriptorSize bounds one fetched descriptor.
	maxDescriptorSize = 64 << 10
	// fetchTimeout bounds one bridge's fetch.
	fetchTimeout = 60 * time.Second
	// refreshAfter is how old a descriptor gets before it is fetched
	// again (C tor refetches a bridge's descriptor hourly or so while it
	// is in use; relays publish a new one at least every 18 hours).
	refreshAfter = time.Hour
)

// Channels opens channels to bridges (tor/chanmgr).
type Channels interface {
	Get(ctx context.Context, addr netip.AddrPort, id link.Identity, nickname string) (*link.Channel, error)
}

// Config is what a Manager works with.
type Config struct {
	// Bridges are the Bridge lines.
	Bridges []config.Bridge
	// Channels opens the channels (through transports as configured).
	Channels Channels
	// Pool supplies the one-hop circuits' cells.
	Pool *cell.Pool
	// Log receives C tor style lines; nil discards them.
	Log *torlog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Cache stores the descriptors; nil keeps them in memory only.
	Cache dir.FileStore
}

// Status is one bridge's state, for GETINFO and the metrics page.
type Status struct {
	Bridge config.Bridge
	// Nickname and Identity come from its descriptor (Identity from the
	// link when only the link has been seen).
	Nickname string
	Identity [20]byte
	// HaveDescriptor is whether a verified descriptor is held, Published
	// its time.
	HaveDescriptor bool
	Published      time.Time
	// LastError is the latest fetch failure, "" after a success.
	LastError string
	// Attempts counts the descriptor fetches tried, Failures those that
	// failed since the last success; NextAttempt is when the next fetch is
	// due (GETINFO downloads/bridge/<digest>).
	Attempts, Failures int
	NextAttempt        time.Time
}

type entry struct {
	line    config.Bridge
	desc    *dir.ServerDescriptor
	text    []byte
	fetched time.Time
	lastErr error

	attempts, failures int
	tried              time.Time
}

// Manager holds the bridges' descriptors.
type Manager struct {
	cfg Config

	mu      lock.Mutex
	entries []*entry
	view    *path.Dir
}

// New returns a Manager for cfg's bridges, with no descriptors yet.
func New(cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = torlog.Discard()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{cfg: cfg}
	for _, b := range cfg.Bridges {
		m.entries = append(m.entries, &entry{line: b})
	}
	return m
}

// ByAddr returns the Bridge line of the bridge at addr.
func (m *Manager) ByAddr(addr netip.AddrPort) (config.Bridge, bool) {
	for _, e := range m.entries {
		if e.line.Addr == addr {
			return e.line, true
		}
	}
	return config.Bridge{}, false
}

// LoadCache reads cached descriptors back; those that still verify and
// match a Bridge line are used until fresh ones arrive. It reports how
// many it loaded.
func (m *Manager) LoadCache() int {
	if m.cfg.Cache == nil {
		return 0
	}
	data, err := m.cfg.Cache.ReadFile(CacheName)
	if err != nil || len(data) == 0 {
		return 0
	}
	now := m.cfg.Now()
	n := 0
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, doc := range splitDescriptors(data) {
		sd, err := dir.ParseBridgeDescriptor(doc, nil, now)
		if err != nil {
			m.cfg.Log.Infof("Skipping a cached bridge descriptor: %v", err)
			continue
		}
		for _, e := range m.entries {
			if e.desc == nil && matches(e.line, sd) {
				e.desc, e.text = sd, doc
				n++
			}
		}
	}
	m.view = nil
	return n
}

// splitDescriptors splits concatenated descriptors at each "router " line.
func splitDescriptors(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		i := bytes.Index(data[1:], []byte("\nrouter "))
		if i < 0 {
			out = append(out, data)
			break
		}
		out = append(out, data[:i+2])
		data = data[i+2:]
	}
	return out
}

// matches reports whether sd is the descriptor of the bridge of line b:
// the address the Bridge line names (a transport's bridge may listen
// elsewhere, so only its fingerprint counts) and its fingerprint.
func matches(b config.Bridge, sd *dir.ServerDescriptor) bool {
	if b.HasFingerprint && b.Fingerprint != sd.Fingerprint {
		return false
	}
	if b.Transport != "" {
		return b.HasFingerprint
	}
	if sd.Address == b.Addr {
		return true
	}
	for _, a := range sd.ORAddresses {
		if a == b.Addr {
			return true
		}
	}
	return false
}

// Have reports whether at least one bridge has a verified descriptor.
func (m *Manager) Have() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		if e.desc != nil {
			return true
		}
	}
	return false
}

// Fetch fetches the descriptors that are missing or older than the
// refresh age (all of them when force is set), every bridge at once. It
// returns nil when at least one bridge has a descriptor afterwards, else
// an error naming each bridge's failure.
func (m *Manager) Fetch(ctx context.Context, force bool) error {
	now := m.cfg.Now()
	var wg sync.WaitGroup
	m.mu.Lock()
	for _, e := range m.entries {
		if !force && e.desc != nil && now.Sub(e.fetched) < refreshAfter {
			continue
		}
		wg.Add(1)
		go func(e *entry) {
			defer wg.Done()
			sd, text, err := m.fetchOne(ctx, e.line)
			m.mu.Lock()
			defer m.mu.Unlock()
			e.lastErr = err
			e.attempts++
			e.tried = m.cfg.Now()
			if err != nil {
				e.failures++
				m.cfg.Log.Warnf("Unable to fetch the descriptor of bridge %s: %v", e.line.Addr, err)
				return
			}
			if e.desc == nil {
				m.cfg.Log.Noticef("new bridge descriptor '%s' (fresh): %s~%s [%s] at %s", sd.Nickname, link.Identity{RSA: sd.Fingerprint},
					sd.Nickname, base64.RawStdEncoding.EncodeToString(sd.Ed25519ID[:]), e.line.Addr.Addr())
			}
			e.failures = 0
			e.desc, e.text, e.fetched = sd, text, m.cfg.Now()
			m.view = nil
		}(e)
	}
	m.mu.Unlock()
	wg.Wait()
	m.save()
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []string
	for _, e := range m.entries {
		if e.desc != nil {
			return nil
		}
		if e.lastErr != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", e.line.Addr, e.lastErr))
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errfmt.Errorf("no bridge descriptor: %s", strings.Join(errs, "; "))
}

// save writes the descriptors held to the cache.
func (m *Manager) save() {
	if m.cfg.Cache == nil {
		return
	}
	var b bytes.Buffer
	m.mu.Lock()
	for _, e := range m.entries {
		if e.text != nil {
			b.Write(e.text)
			if !bytes.HasSuffix(e.text, []byte("\n")) {
				b.WriteByte('\n')
			}
		}
	}
	m.mu.Unlock()
	if b.Len() == 0 {
		return
	}
	if err := m.cfg.Cache.WriteFile(CacheName, b.Bytes()); err != nil {
		m.cfg.Log.Warnf("Writing %s: %v", CacheName, err)
	}
}

// fetchOne fetches and verifies the descriptor of bridge b.
func (m *Manager) fetchOne(ctx context.Context, b config.Bridge) (*dir.ServerDescriptor, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	want := link.Identity{}
	if b.HasFingerprint {
		want.RSA = b.Fingerprint
	}
	ch, err := m.cfg.Channels.Get(ctx, b.Addr, want, "")
	if err != nil {
		return nil, nil, err
	}
	proved := ch.Identity()
	circ, err := circuit.CreateFast(ctx, chanmgr.Circuits(ch), circuit.Config{Pool: m.cfg.Pool, Log: m.cfg.Log})
	if err != nil {
		return nil, nil, netdoc.Reason(err, "one-hop circuit")
	}
	defer circ.Close()
	st, err := circ.OpenDirStream(ctx)
	if err != nil {
		return nil, nil, netdoc.Reason(err, "BEGIN_DIR")
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	defer st.Close()
	body, err := dir.Get(st, "/tor/server/authority", maxDescriptorSize)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, nil, netdoc.Reason(err, "GET /tor/server/authority")
	}
	var wantFP *[20]byte
	if b.HasFingerprint {
		wantFP = &b.Fingerprint
	}
	sd, err := dir.ParseBridgeDescriptor(body, wantFP, m.cfg.Now())
	if err != nil {
		return nil, nil, netdoc.Reason(err, "its descriptor")
	}
	if sd.Fingerprint != proved.RSA {
		return nil, nil, errfmt.Errorf("its descriptor is for %X, but the bridge proved identity %X on the link", sd.Fingerprint, proved.RSA)
	}
	if proved.HasEd25519() && sd.Ed25519ID != proved.Ed25519 {
		return nil, nil, errors.New("its descriptor's Ed25519 identity is not the one the bridge proved on the link")
	}
	return sd, body, nil
}

// Dir returns the bridges that have a descriptor as a directory view of
// their own: one node per bridge, reached at its Bridge line's address,
// flagged Guard, Running, Valid, Stable, Fast and V2Dir (a bridge serves
// the directory to its users), all of equal weight. Its consensus is
// empty but for the relays and a validity around now. It returns nil
// while no bridge has a descriptor. The view is kept until descriptors
// change.
func (m *Manager) Dir() *path.Dir {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.view != nil {
		return m.view
	}
	var relays []dir.Relay
	var mds []*dir.Microdesc
	for _, e := range m.entries {
		sd := e.desc
		if sd == nil {
			continue
		}
		r := dir.Relay{
			Identity: sd.Fingerprint,
			Nickname: sd.Nickname,
			Flags:    dir.FlagGuard | dir.FlagRunning | dir.FlagValid | dir.FlagStable | dir.FlagFast | dir.FlagV2Dir,
		}
		if a := e.line.Addr.Addr(); a.Is4() {
			r.Addr, r.ORPort = a.As4(), e.line.Addr.Port()
		} else {
			r.IPv6, r.IPv6Port = a.As16(), e.line.Addr.Port()
		}
		relays = append(relays, r)
		mds = append(mds, &dir.Microdesc{NtorOnionKey: sd.NtorOnionKey, HasNtorKey: true, Ed25519ID: sd.Ed25519ID, HasEd25519: true, Family: sd.Family})
	}
	if len(relays) == 0 {
		return nil
	}
	now := m.cfg.Now()
	c := &dir.Consensus{ValidAfter: now.Add(-time.Hour), FreshUntil: now.Add(24 * time.Hour), ValidUntil: now.Add(24 * time.Hour), Relays: relays}
	d := &path.Dir{Consensus: c}
	for i := range c.Relays {
		d.Nodes = append(d.Nodes, &path.Node{Relay: &c.Relays[i], MD: mds[i]})
	}
	m.view = d
	return d
}

// Status returns each bridge's state, in Bridge line order.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.entries))
	for _, e := range m.entries {
		s := Status{Bridge: e.line, Attempts: e.attempts, Failures: e.failures}
		switch {
		case e.desc != nil && !e.fetched.IsZero():
			s.NextAttempt = e.fetched.Add(refreshAfter)
		case !e.tried.IsZero():
			s.NextAttempt = e.tried.Add(refreshAfter / 4)
		default:
			s.NextAttempt = m.cfg.Now()
		}
		if e.desc != nil {
			s.Nickname, s.Identity, s.HaveDescriptor, s.Published = e.desc.Nickname, e.desc.Fingerprint, true, e.desc.Published
		} else if e.line.HasFingerprint {
			s.Identity = e.line.Fingerprint
		}
		if e.lastErr != nil {
			s.LastError = e.lastErr.Error()
		}
		out = append(out, s)
	}
	return out
}

// Maintain refreshes the descriptors until ctx ends, calling changed with
// the new view after each refresh that changed it.
func (m *Manager) Maintain(ctx context.Context, changed func(*path.Dir)) {
	t := time.NewTicker(refreshAfter / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		before := m.Dir()
		if err := m.Fetch(ctx, false); err != nil && ctx.Err() == nil {
			m.cfg.Log.Warnf("Bridge descriptors: %v", err)
		}
		if d := m.Dir(); d != before && d != nil {
			changed(d)
		}
	}
}
