package dirmgr

import (
	"fmt"

	"tinytor/tor/dir"
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
