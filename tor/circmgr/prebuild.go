package circmgr

import (
	"context"
	"time"

	"tinytor/tor/path"
)

// predictedPortLifetime is how long a port used by a stream stays
// predicted (C tor's PredictedPortsRelevanceTime).
const predictedPortLifetime = time.Hour

// prebuildInterval is how often the circuit pool is checked.
const prebuildInterval = 2 * time.Second

// NotePort records that a stream asked for port, so that clean circuits
// for it are kept ready.
func (m *Manager) NotePort(port uint16) {
	m.portsMu.Lock()
	m.ports[port] = m.cfg.Now()
	m.portsMu.Unlock()
}

// predictedPorts returns the ports used within predictedPortLifetime,
// forgetting older ones.
func (m *Manager) predictedPorts() []uint16 {
	m.portsMu.Lock()
	defer m.portsMu.Unlock()
	now := m.cfg.Now()
	var out []uint16
	for p, t := range m.ports {
		if now.Sub(t) > predictedPortLifetime {
			delete(m.ports, p)
			continue
		}
		out = append(out, p)
	}
	return out
}

// Prebuild keeps a clean circuit ready for every predicted port, so the
// first request after idle does not wait for a build, closes circuits
// that are too dirty to take new streams, and builds the test circuits
// that learn the circuit build timeout, until ctx ends.
func (m *Manager) Prebuild(ctx context.Context) {
	t := time.NewTicker(prebuildInterval)
	defer t.Stop()
	defer m.wg.Wait()
	for {
		m.testCircuit(ctx)
		ports := m.predictedPorts()
		clean := m.pool.sweep(m.cfg.Now(), m.dirtiness(), ports)
		for _, p := range ports {
			if clean[p] > 0 {
				continue
			}
			if f := m.cfg.AllowPrebuild; f != nil && !f() {
				break // under memory pressure: build nothing ahead of need
			}
			e, err := m.Build(ctx, nil, p)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				m.cfg.Log.Infof("Could not prebuild a circuit for port %d: %v", p, err)
				break
			}
			for _, q := range ports {
				if path.CanExitTo(e.Last, q) {
					clean[q]++
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
