package dirmgr

import (
	"errors"

	"tinytor/tor/dir"
	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
)

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
			if b != nil {
				// Malformed and unrequested microdescriptors are dropped
				// one by one; the requested good ones are kept.
				if errors.Is(err, dir.ErrUnrequestedMicrodesc) {
					m.cfg.Log.Infof("Dropped %d unrequested microdescriptors.", len(b.Unrequested))
					err = nil
				}
				m.rejectMicrodescs(b.Skipped)
				m.cfg.Progress.Reach(event.PhaseLoadingDescriptors)
				for _, md := range b.Found {
					nd.Microdescs[md.Digest] = md
				}
				m.mdFetches.Add(int64(len(b.Found)))
				if len(b.Found) > 0 {
					nd.mdDocs = append(nd.mdDocs, body)
				}
			}
		}
		if err != nil && firstErr == nil {
			firstErr = netdoc.Reason(err, "microdescriptors")
		}
	}
	m.install(nd, false)
	m.saveMicrodescs(nd)
	if !nd.Enough() {
		if firstErr != nil {
			return firstErr
		}
		return errfmt.Errorf("have microdescriptors for %d of %d relays: not enough to build circuits",
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

// maxRejectLogs is how many skipped microdescriptors of one response are
// logged one by one; the rest are summed up in one line.
const maxRejectLogs = 5

// rejectMicrodescs counts and logs the malformed microdescriptors of a
// response, as C tor warns "Unparseable microdescriptor found in download
// or generated string" for each.
func (m *Manager) rejectMicrodescs(skipped []*dir.MicrodescError) {
	if len(skipped) == 0 {
		return
	}
	m.mdRejected.Add(int64(len(skipped)))
	for i, s := range skipped {
		if i == maxRejectLogs {
			m.cfg.Log.Warnf("Skipped %d more unparseable microdescriptors in the same download.", len(skipped)-i)
			break
		}
		m.cfg.Log.Warnf("Unparseable microdescriptor %s found in download (entry at line %d): %v. Skipping.",
			dir.DigestString(s.Digest), s.Line, s.Err)
	}
}
