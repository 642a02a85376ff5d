package dirmgr

import (
	"errors"
	"io/fs"
	"time"

	"tinytor/tor/dir"
	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
)

// docGetter fetches the document at path, sending the request headers
// hdrs, and returns its body (at most max bytes).
type docGetter func(path string, hdrs []dir.Header, max int64) ([]byte, error)

// fetchConsensus is fetchConsensusDiff over a getter that cannot send
// request headers: it always downloads the full consensus.
func (m *Manager) fetchConsensus(get getter, old *NetDir) (*NetDir, error) {
	return m.fetchConsensusDiff(func(p string, _ []dir.Header, max int64) ([]byte, error) { return get(p, max) }, old)
}

// fetchConsensusDiff downloads and verifies a consensus, fetching the
// authority certificates it needs. It returns the new directory view,
// carrying over the microdescriptors of old that are still listed.
//
// If old's consensus is recent enough and the cache file holds its text,
// it asks for a diff from it (dir-spec 4.5.2, as C tor's
// dir_consensus_request_set_additional_headers); a cache answers with a
// diff or with the full consensus. A diff that cannot be applied, or
// whose result does not parse or verify, is logged and counted, and the
// full consensus is fetched instead.
func (m *Manager) fetchConsensusDiff(get docGetter, old *NetDir) (*NetDir, error) {
	m.cfg.Progress.Reach(event.PhaseRequestingStatus)
	plain := func(p string, max int64) ([]byte, error) { return get(p, nil, max) }
	path := dir.ConsensusPath(nil)
	base := m.diffBase(old)
	var hdrs []dir.Header
	if base != nil {
		hdrs = []dir.Header{dir.DiffRequestHeader(dir.DigestAsSigned(base))}
	}
	body, err := get(path, hdrs, maxConsensusSize)
	if err != nil {
		return nil, err
	}
	m.consensusFetches.Add(1)
	if !dir.IsDiff(body) {
		return m.acceptConsensus(plain, body, old)
	}
	if base == nil {
		return nil, errors.New("received a consensus diff we did not ask for")
	}
	diffLen := len(body)
	doc, err := dir.ApplyDiff(base, body, maxConsensusSize)
	base, body = nil, nil
	if err == nil {
		var d *NetDir
		d, err = m.acceptConsensus(plain, doc, old)
		if err == nil {
			m.diffsApplied.Add(1)
			m.cfg.Log.Noticef("Downloaded a consensus diff (%d bytes) and applied it, resulting in a new consensus document (%d bytes, valid after %s).",
				diffLen, len(doc), netdoc.Time(d.Consensus.ValidAfter))
			return d, nil
		}
		if _, ok := errors.AsType[*NotNewerError](err); ok {
			// The diff worked; the cache has nothing newer (or offers an
			// older consensus): a full download would not help.
			return nil, err
		}
		err = netdoc.Reason(err, "the consensus it produced")
	}
	m.diffFallbacks.Add(1)
	m.cfg.Log.Warnf("Could not apply the consensus diff (%d bytes) received from the directory cache: %v. Fetching the full consensus instead.", diffLen, err)
	doc, err = get(path, nil, maxConsensusSize)
	if err != nil {
		return nil, netdoc.Reason(err, "fetching the full consensus after a failed diff")
	}
	m.consensusFetches.Add(1)
	if dir.IsDiff(doc) {
		return nil, errors.New("received a consensus diff although we asked for the full consensus")
	}
	return m.acceptConsensus(plain, doc, old)
}

// diffBase returns the text of old's consensus, read from the cache
// file, if a cache may send a diff from it: as C tor, only if its
// valid-after is less than the consensus parameter
// try-diff-for-consensus-newer-than (default 72) hours ago. It returns
// nil if there is no such consensus or if the file holds another one
// (then the full consensus is fetched).
func (m *Manager) diffBase(old *NetDir) []byte {
	if old == nil || old.Consensus == nil || m.cfg.Cache == nil || m.cfg.Cache.Store == nil {
		return nil
	}
	c := old.Consensus
	maxAge := time.Duration(c.Param("try-diff-for-consensus-newer-than", 72, 0, 8192)) * time.Hour
	if c.ValidAfter.Before(m.cfg.Now().Add(-maxAge)) {
		return nil
	}
	doc, err := m.cfg.Cache.Store.ReadFile(dir.ConsensusFile)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			m.cfg.Log.Infof("Not asking for a consensus diff: reading our cached consensus: %v", err)
		}
		return nil
	}
	if !c.MatchesDocument(doc) {
		m.cfg.Log.Infof("Not asking for a consensus diff: the cached %s is not the consensus in use (valid after %s).",
			dir.ConsensusFile, netdoc.Time(c.ValidAfter))
		return nil
	}
	return doc
}

// acceptConsensus parses and verifies a downloaded consensus document
// (fetching missing certificates with get), caches it, and returns the
// directory view it makes with what old knew.
func (m *Manager) acceptConsensus(get getter, doc []byte, old *NetDir) (*NetDir, error) {
	auths := m.v3Authorities()
	m.cfg.Progress.Reach(event.PhaseLoadingStatus)
	cons, err := dir.ParseConsensus(doc)
	if err != nil {
		return nil, netdoc.Reason(err, "received consensus")
	}
	if err := m.checkNewer(cons); err != nil {
		return nil, err
	}
	now := m.cfg.Now()
	if !cons.Usable(now, consensusSkew) {
		return nil, errfmt.Errorf("received consensus is not usable now (valid-after %s, valid-until %s, our clock %s)",
			netdoc.Time(cons.ValidAfter), netdoc.Time(cons.ValidUntil), netdoc.Time(now))
	}
	certs, err := m.verifyConsensus(get, cons, old, auths, now)
	if err != nil {
		return nil, err
	}
	for _, e := range cons.Dropped {
		m.cfg.Log.Infof("Ignoring a router entry of the consensus: %v", e)
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
			return nil, netdoc.Reason(err, "fetching authority certificates")
		}
		fetched, err := dir.ParseAuthCerts(body)
		if err != nil {
			return nil, netdoc.Reason(err, "received authority certificates")
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
		return nil, errfmt.Errorf("consensus has valid signatures from %d of %d authorities, %d needed",
			len(rep.Signed), len(auths), rep.Required)
	}
	m.cfg.Log.Noticef("Downloaded a consensus valid until %s with %d relays, signed by %d of %d authorities.",
		netdoc.Time(cons.ValidUntil), len(cons.Relays), len(rep.Signed), len(auths))
	return certs, nil
}
