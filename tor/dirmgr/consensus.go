package dirmgr

import (
	"fmt"
	"time"

	"tinytor/tor/dir"
	"tinytor/tor/event"
)

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
	if err := m.checkNewer(cons); err != nil {
		return nil, err
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
