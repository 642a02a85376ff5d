package dirmgr

import (
	"context"
	"errors"
	"fmt"

	"tinytor/tor/chanmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/event"
)

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
