package tor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/link"
	"tinytor/tor/path"
)

// Limits on directory responses (C tor's MAX_DIR_DL_SIZE is 40 MB; a
// router cannot afford that, and the live microdesc consensus is ~3 MB).
const (
	maxConsensusSize = 8 << 20
	maxCertsSize     = 1 << 20
	maxMicrodescSize = 4 << 20
	// dirFetchTimeout bounds one directory fetch attempt from one source.
	dirFetchTimeout = 90 * time.Second
	// consensusSkew is how far a consensus's valid-after may lie in our
	// future before we refuse it (clock skew tolerance).
	consensusSkew = time.Hour
	// pathsNeeded is C tor's PathsNeededToBuildCircuits default.
	pathsNeeded = 0.6
)

// netDir is one consistent view of the network: a verified consensus, the
// certificates that verified it, and the microdescriptors known for it.
type netDir struct {
	consensus *dir.Consensus
	certs     []*dir.AuthCert
	mds       map[[32]byte]*dir.Microdesc
	// mdDocs are the texts the microdescriptors came from, kept to write
	// the cache.
	mdDocs [][]byte
	paths  *path.Dir
}

// enough reports whether circuits can be built from d.
func (d *netDir) enough() bool {
	return d != nil && d.consensus != nil && path.EnoughDirInfo(d.consensus, d.mds, pathsNeeded)
}

// missingMicrodescs lists the digests the consensus names that d lacks.
func (d *netDir) missingMicrodescs() [][32]byte {
	var out [][32]byte
	for i := range d.consensus.Relays {
		r := &d.consensus.Relays[i]
		if !r.Flags.Has(dir.FlagRunning) {
			continue
		}
		if _, ok := d.mds[r.Microdesc]; !ok {
			out = append(out, r.Microdesc)
		}
	}
	return out
}

// v3Authorities returns the v3 identities that must sign the consensus.
func (c *Client) v3Authorities() [][20]byte {
	var ids [][20]byte
	for _, a := range c.conf().Authorities() {
		if a.IsV3() {
			ids = append(ids, a.V3Ident)
		}
	}
	return ids
}

// currentDir returns the directory view in use, or nil.
func (c *Client) currentDir() *netDir {
	c.dirMu.RLock()
	defer c.dirMu.RUnlock()
	return c.netdir
}

// installDir makes d the directory in use.
func (c *Client) installDir(d *netDir) {
	d.paths = path.NewDir(d.consensus, d.mds)
	if f := c.cfg.ObserveConsensus; f != nil {
		f(d.consensus.ValidAfter, d.consensus.FreshUntil, d.consensus.ValidUntil)
	}
	c.dirMu.Lock()
	c.netdir = d
	c.dirMu.Unlock()
	c.guards.SetConsensus(d.paths)
}

// loadCachedDir reads the cached documents and, if they still verify,
// makes them the directory in use. It reports whether a usable consensus
// was found.
func (c *Client) loadCachedDir() bool {
	l := c.cache.Load(c.v3Authorities(), c.now(), consensusSkew)
	for _, p := range l.Problems {
		c.log.Noticef("Ignoring cached directory information: %v", p)
	}
	if l.Consensus == nil {
		return false
	}
	d := &netDir{consensus: l.Consensus, certs: l.Certs, mds: map[[32]byte]*dir.Microdesc{}}
	for _, md := range l.Microdescs {
		d.mds[md.Digest] = md
	}
	if len(l.MicrodescsDoc) > 0 {
		d.mdDocs = [][]byte{l.MicrodescsDoc}
	}
	c.installDir(d)
	c.log.Noticef("Loaded a cached consensus valid until %s with %d relays and %d of their microdescriptors.",
		l.Consensus.ValidUntil.UTC().Format(time.DateTime), len(l.Consensus.Relays), len(d.mds))
	return true
}

// dirSource is a relay that serves directory documents over BEGIN_DIR.
type dirSource struct {
	name string
	nick string
	addr netip.AddrPort
	id   link.Identity
}

// dirSources lists where to fetch directory documents from, in the order
// to try: with a consensus, the directory caches it lists (as C tor
// clients do, sparing the authorities); then fallbacks and authorities in
// random order.
func (c *Client) dirSources() []dirSource {
	var caches, boot []dirSource
	if d := c.currentDir(); d != nil && d.consensus != nil {
		for i := range d.consensus.Relays {
			r := &d.consensus.Relays[i]
			if r.Flags.Has(dir.FlagV2Dir) && r.Flags.Has(dir.FlagRunning) && r.ORPort != 0 {
				caches = append(caches, dirSource{name: "directory cache " + r.Nickname, nick: r.Nickname, addr: r.ORAddrPort(), id: link.Identity{RSA: r.Identity}})
			}
		}
	}
	for _, a := range c.conf().Authorities() {
		if a.ORPort == 0 || !a.IsV3() {
			continue
		}
		boot = append(boot, dirSource{
			name: "directory authority " + a.Nickname,
			nick: a.Nickname,
			addr: netip.AddrPortFrom(a.Addr.Addr(), a.ORPort),
			id:   link.Identity{RSA: a.Fingerprint},
		})
	}
	for _, f := range c.conf().Fallbacks() {
		boot = append(boot, dirSource{
			name: "fallback directory " + f.Addr.String(),
			addr: netip.AddrPortFrom(f.Addr, f.ORPort),
			id:   link.Identity{RSA: f.ID},
		})
	}
	c.shuffle(caches)
	c.shuffle(boot)
	return append(caches, boot...)
}

func (c *Client) shuffle(s []dirSource) {
	for i := len(s) - 1; i > 0; i-- {
		j := c.randIntN(i + 1)
		s[i], s[j] = s[j], s[i]
	}
}

// updateDirectory fetches what the directory lacks (a fresh consensus if
// needConsensus, certificates, microdescriptors), trying sources in turn
// until one succeeds or ctx ends.
func (c *Client) updateDirectory(ctx context.Context, needConsensus bool) error {
	sources := c.dirSources()
	if len(sources) == 0 {
		return errors.New("no directory authorities or fallback directories with an ORPort are configured")
	}
	var lastErr error
	for _, src := range sources {
		err := c.fetchFrom(ctx, src, needConsensus)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lastErr = err
		c.log.Infof("Directory fetch from %s (%s) failed: %v", src.name, src.addr, err)
	}
	return fmt.Errorf("every directory source failed; last: %w", lastErr)
}

// fetchFrom opens a one-hop directory circuit to src and fetches over it.
func (c *Client) fetchFrom(ctx context.Context, src dirSource, needConsensus bool) error {
	ctx, cancel := context.WithTimeout(ctx, dirFetchTimeout)
	defer cancel()
	c.boot.reach(PhaseConn)
	ch, err := c.chans.get(ctx, src.addr, src.id, src.nick)
	if err != nil {
		return err
	}
	c.boot.reach(PhaseConnDone)
	c.boot.reach(PhaseHandshake)
	c.boot.reach(PhaseHandshakeDone)
	c.boot.reach(PhaseOneHopCreate)
	circ, err := circuit.CreateFast(ctx, circChannel{ch}, c.circuitConfig())
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

	d := c.currentDir()
	if needConsensus || d == nil {
		nd, err := c.fetchConsensus(get, d)
		if err != nil {
			return err
		}
		d = nd
		c.installDir(d)
	}
	return c.fetchMicrodescs(get, d)
}

type getter func(path string, max int64) ([]byte, error)

// fetchConsensus downloads and verifies a consensus, fetching the
// authority certificates it needs. It returns the new directory view,
// carrying over the microdescriptors of old that are still listed.
func (c *Client) fetchConsensus(get getter, old *netDir) (*netDir, error) {
	c.boot.reach(PhaseRequestingStatus)
	auths := c.v3Authorities()
	doc, err := get(dir.ConsensusPath(nil), maxConsensusSize)
	if err != nil {
		return nil, err
	}
	c.consensusFetches.Add(1)
	c.boot.reach(PhaseLoadingStatus)
	cons, err := dir.ParseConsensus(doc)
	if err != nil {
		return nil, fmt.Errorf("received consensus: %w", err)
	}
	now := c.now()
	if !cons.Usable(now, consensusSkew) {
		return nil, fmt.Errorf("received consensus is not usable now (valid-after %s, valid-until %s, our clock %s)",
			cons.ValidAfter.UTC().Format(time.DateTime), cons.ValidUntil.UTC().Format(time.DateTime), now.UTC().Format(time.DateTime))
	}
	var certs []*dir.AuthCert
	if old != nil {
		certs = old.certs
	} else if l := c.cache.Load(auths, now, consensusSkew); l != nil {
		certs = l.Certs
	}
	rep := cons.CheckSignatures(certs, auths, now)
	if !rep.OK() && len(rep.MissingCerts) > 0 {
		c.boot.reach(PhaseLoadingKeys)
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
				c.log.Warnf("Rejecting authority certificate for %X: %v", ct.Fingerprint, err)
				continue
			}
			certs = append(certs, ct)
			c.certFetches.Add(1)
		}
		if err := c.cache.SaveCerts(certs); err != nil {
			c.log.Warnf("Could not cache authority certificates: %v", err)
		}
		rep = cons.CheckSignatures(certs, auths, now)
	}
	if !rep.OK() {
		for _, p := range rep.Problems {
			c.log.Warnf("Consensus signature problem: %v", p)
		}
		return nil, fmt.Errorf("consensus has valid signatures from %d of %d authorities, %d needed",
			len(rep.Signed), len(auths), rep.Required)
	}
	if err := c.cache.SaveConsensus(doc); err != nil {
		c.log.Warnf("Could not cache the consensus: %v", err)
	}
	c.log.Noticef("Downloaded a consensus valid until %s with %d relays, signed by %d of %d authorities.",
		cons.ValidUntil.UTC().Format(time.DateTime), len(cons.Relays), len(rep.Signed), len(auths))
	d := &netDir{consensus: cons, certs: certs, mds: map[[32]byte]*dir.Microdesc{}}
	if old != nil {
		for i := range cons.Relays {
			if md := old.mds[cons.Relays[i].Microdesc]; md != nil {
				d.mds[md.Digest] = md
			}
		}
		d.mdDocs = old.mdDocs
	}
	return d, nil
}

// fetchMicrodescs downloads the microdescriptors d lacks, in batches,
// and installs a view with them.
func (c *Client) fetchMicrodescs(get getter, d *netDir) error {
	missing := d.missingMicrodescs()
	if len(missing) == 0 {
		return nil
	}
	c.boot.reach(PhaseRequestingDescriptors)
	paths, batches := dir.MicrodescPaths(missing)
	nd := &netDir{consensus: d.consensus, certs: d.certs, mds: make(map[[32]byte]*dir.Microdesc, len(d.mds)+len(missing)), mdDocs: d.mdDocs}
	for k, v := range d.mds {
		nd.mds[k] = v
	}
	var firstErr error
	for i, p := range paths {
		body, err := get(p, maxMicrodescSize)
		if err == nil {
			var b *dir.MicrodescBatch
			b, err = dir.ParseRequestedMicrodescs(body, batches[i])
			if err == nil {
				c.boot.reach(PhaseLoadingDescriptors)
				for _, md := range b.Found {
					nd.mds[md.Digest] = md
				}
				c.mdFetches.Add(int64(len(b.Found)))
				nd.mdDocs = append(nd.mdDocs, body)
				if len(b.Unrequested) > 0 {
					c.log.Infof("Dropped %d unrequested microdescriptors.", len(b.Unrequested))
				}
			}
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("microdescriptors: %w", err)
		}
	}
	c.installDir(nd)
	c.saveMicrodescs(nd)
	if !nd.enough() {
		if firstErr != nil {
			return firstErr
		}
		return fmt.Errorf("have microdescriptors for %d of %d relays: not enough to build circuits",
			len(nd.mds), len(nd.consensus.Relays))
	}
	return nil
}

// saveMicrodescs rewrites the microdescriptor cache with those d uses.
func (c *Client) saveMicrodescs(d *netDir) {
	n, err := c.cache.SaveMicrodescs(d.mdDocs, func(dg [32]byte) bool { _, ok := d.mds[dg]; return ok })
	if err != nil {
		c.log.Warnf("Could not cache microdescriptors: %v", err)
		return
	}
	// The cache file now holds exactly what is kept: re-read it so that the
	// fetched response bodies can be freed.
	if doc, err := c.cache.Store.ReadFile(dir.MicrodescsFile); err == nil {
		d.mdDocs = [][]byte{doc}
	}
	c.log.Debugf("Cached %d microdescriptors.", n)
}
