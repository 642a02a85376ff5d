package dirmgr

import (
	"context"
	"errors"
	"io"
	"strings"

	"tinytor/tor/chanmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/dir/netdoc"
	"tinytor/tor/event"
	"tinytor/tor/guard"
	"tinytor/tor/path"
)

// dirGuardTries is how many directory guards one Update asks before it
// falls back to other directory caches.
const dirGuardTries = 3

// Update fetches what the directory lacks (a fresh consensus if
// needConsensus, certificates, microdescriptors). Once bootstrapped it
// asks directory guards first (guard-spec: the same sample as the entry
// guards, used for one-hop BEGIN_DIR fetches), so that few relays learn
// the client's fetch pattern; then, or before bootstrap, the directory
// caches of the consensus, and the fallback directories and authorities
// last. It stops at the first source that succeeds, or when ctx ends, or
// when a source answers with the consensus we already have (caches have
// not got a newer one yet: the refresh schedule tries again later).
func (m *Manager) Update(ctx context.Context, needConsensus bool) error {
	var lastErr error
	if m.cfg.BridgesOnly {
		_, err := m.updateFromGuards(ctx, needConsensus)
		if err != nil {
			return netdoc.Reason(err, "fetching directory information through the bridges")
		}
		return nil
	}
	if m.Current().Enough() && m.cfg.Guards != nil {
		done, err := m.updateFromGuards(ctx, needConsensus)
		if done || ctx.Err() != nil {
			return err
		}
		if err != nil {
			lastErr = err
		}
	}
	srcs := m.sources()
	if len(srcs) == 0 {
		return errors.New("no directory authorities or fallback directories with an ORPort are configured")
	}
	for _, src := range srcs {
		err := m.fetchLogged(ctx, src, needConsensus)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lastErr = err
		if sameConsensus(err) {
			return err
		}
	}
	return netdoc.Reason(lastErr, "every directory source failed; last")
}

// sameConsensus reports whether err says the source had only the
// consensus in use.
func sameConsensus(err error) bool {
	var nn *NotNewerError
	return errors.As(err, &nn) && nn.Got.Equal(nn.Have)
}

// updateFromGuards tries up to dirGuardTries directory guards. done is
// true when one of them answered (err is then nil, or the "same
// consensus" error); the guard manager learns which guards worked.
func (m *Manager) updateFromGuards(ctx context.Context, needConsensus bool) (done bool, err error) {
	isCache := func(n *path.Node) bool { return n.Flags.Has(dir.FlagV2Dir) && (n.ORPort != 0 || n.IPv6Port != 0) }
	kind := "directory guard "
	if m.cfg.BridgesOnly {
		kind = "bridge "
	}
	for range dirGuardTries {
		n, h, perr := m.cfg.Guards.Pick(guard.ForDir, isCache)
		if perr != nil {
			return false, perr
		}
		src := guardSource(kind, n)
		err = m.fetchLogged(ctx, src, needConsensus)
		switch {
		case err == nil || sameConsensus(err):
			h.Succeeded()
			h.Close()
			return true, err
		case ctx.Err() != nil:
			h.Close()
			return true, ctx.Err()
		}
		var ue *unreachableError
		if errors.As(err, &ue) {
			// A guard that cannot be reached is down (guard-spec); one
			// that answered badly is left to the document checks.
			h.Failed()
		}
		h.Close()
	}
	return false, err
}

// fetchLogged is fetchFrom that logs the outcome, but for a fetch that
// ctx ended or that found only the consensus in use.
func (m *Manager) fetchLogged(ctx context.Context, src source, needConsensus bool) error {
	err := m.fetchFrom(ctx, src, needConsensus)
	switch {
	case err == nil:
		m.cfg.Log.Infof("Fetched directory information from %s (%s).", src.name, src.addr)
	case ctx.Err() == nil && !sameConsensus(err):
		m.cfg.Log.Infof("Directory fetch from %s (%s) failed: %v", src.name, src.addr, err)
	}
	return err
}

// fetchFrom opens a one-hop directory circuit to src and fetches over it.
func (m *Manager) fetchFrom(ctx context.Context, src source, needConsensus bool) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	p := m.cfg.Progress
	p.Reach(event.PhaseConn)
	ch, err := m.cfg.Channels.Get(ctx, src.addr, src.id, src.nick)
	if err != nil {
		return &unreachableError{err}
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
		return &unreachableError{netdoc.Reason(err, "one-hop directory circuit")}
	}
	defer circ.Close()
	getWith := func(p string, hdrs []dir.Header, max int64) ([]byte, error) {
		st, err := circ.OpenDirStream(ctx)
		if err != nil {
			return nil, netdoc.Reason(err, "BEGIN_DIR")
		}
		stop := context.AfterFunc(ctx, func() { st.Close() })
		defer stop()
		defer st.Close()
		cr := &countingReader{ReadWriter: st}
		body, err := dir.GetWithHeaders(cr, "", p, hdrs, max)
		m.countBytes(p, cr.n)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, netdoc.Reason(err, "GET %s", []byte(p))
		}
		return body, nil
	}

	d := m.Current()
	if needConsensus || d == nil {
		nd, err := m.fetchConsensusDiff(getWith, d)
		if err != nil {
			return err
		}
		d = nd
		m.install(d, false)
	}
	get := func(p string, max int64) ([]byte, error) { return getWith(p, nil, max) }
	return m.fetchMicrodescs(get, d)
}

type getter func(path string, max int64) ([]byte, error)

// unreachableError is a directory source that could not be reached: no
// channel or no one-hop circuit.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// countingReader counts the bytes read through it.
type countingReader struct {
	io.ReadWriter
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadWriter.Read(p)
	c.n += int64(n)
	return n, err
}

// countBytes adds n bytes fetched for the document at path p to its
// type's counter.
func (m *Manager) countBytes(p string, n int64) {
	switch {
	case strings.HasPrefix(p, "/tor/status-vote/"):
		m.consensusBytes.Add(n)
	case strings.HasPrefix(p, "/tor/micro/"):
		m.mdBytes.Add(n)
	case strings.HasPrefix(p, "/tor/keys/"):
		m.certBytes.Add(n)
	}
}
