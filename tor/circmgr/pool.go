package circmgr

import (
	"context"
	"errors"
	"time"

	"tinytor/tor/circuit"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/path"
)

// ErrUnknownCircuit is returned by Close for an ID that names no open
// circuit of the pool.
var ErrUnknownCircuit = errors.New("unknown circuit")

// ErrCircuitInUse is returned by Close with ifUnused for a circuit that
// still carries streams.
var ErrCircuitInUse = errors.New("circuit is in use")

// Exit is a circuit of the pool, kept for streams.
type Exit struct {
	Circ *circuit.Circuit
	// ID is the circuit's number on the control port.
	ID uint64
	// Last is the exit relay.
	Last *path.Node
	// iso is the isolation key of the streams the circuit carries; it is
	// set by the first stream (a clean circuit has none).
	iso        any
	dirtySince time.Time
	streams    int
	// retired circuits take no new streams (NEWNYM, or an exit that
	// refused).
	retired bool
}

func (e *Exit) alive() bool {
	select {
	case <-e.Circ.Done():
		return false
	default:
		return true
	}
}

// pool holds the exit circuits.
type pool struct {
	mu    lock.Mutex
	circs []*Exit
}

// Take returns a pool circuit that may carry a stream to port for the
// isolation key iso (non-nil, comparable), marking it used by one more
// stream, or nil. Circuits in avoid are passed over.
func (m *Manager) Take(port uint16, iso any, avoid map[*Exit]bool) *Exit {
	now, dirtiness := m.cfg.Now(), m.dirtiness()
	p := &m.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	var clean *Exit
	for _, e := range p.circs {
		if e.retired || avoid[e] || !e.alive() || !path.CanExitTo(e.Last, port) {
			continue
		}
		if e.iso == nil {
			if clean == nil {
				clean = e
			}
			continue
		}
		if e.iso == iso && now.Sub(e.dirtySince) < dirtiness {
			e.streams++
			return e
		}
	}
	if clean != nil {
		clean.iso, clean.dirtySince = iso, now
		clean.streams++
	}
	return clean
}

// Build builds an exit circuit for ports and adds it to the pool. With a
// non-nil iso the circuit joins the pool already claimed by one stream of
// that isolation key, so that no other stream can take it first; with nil
// it is a clean (prebuilt) circuit.
func (m *Manager) Build(ctx context.Context, iso any, ports ...uint16) (*Exit, error) {
	b, err := m.buildExit(ctx, ports...)
	if err != nil {
		return nil, err
	}
	e := &Exit{Circ: b.circ, ID: b.id, Last: b.hops[len(b.hops)-1]}
	if iso != nil {
		e.iso, e.dirtySince, e.streams = iso, m.cfg.Now(), 1
	}
	m.pool.add(e)
	return e, nil
}

func (p *pool) add(e *Exit) {
	p.mu.Lock()
	p.circs = append(p.circs, e)
	p.mu.Unlock()
}

// Release records that a stream on e ended.
func (m *Manager) Release(e *Exit) {
	m.pool.mu.Lock()
	e.streams--
	m.pool.mu.Unlock()
}

// sweep closes circuits that are dead, or retired or too dirty with no
// streams left, and returns how many clean circuits allow each port.
func (p *pool) sweep(now time.Time, dirtiness time.Duration, ports []uint16) map[uint16]int {
	p.mu.Lock()
	var keep, closing []*Exit
	clean := map[uint16]int{}
	for _, e := range p.circs {
		switch {
		case !e.alive():
		case e.streams <= 0 && (e.retired || e.iso != nil && now.Sub(e.dirtySince) >= dirtiness):
			closing = append(closing, e)
		default:
			keep = append(keep, e)
			if e.iso == nil && !e.retired {
				for _, port := range ports {
					if path.CanExitTo(e.Last, port) {
						clean[port]++
					}
				}
			}
		}
	}
	p.circs = keep
	p.mu.Unlock()
	for _, e := range closing {
		e.Circ.Close()
	}
	return clean
}

// RetireAll marks every circuit unusable for new streams (NEWNYM).
func (m *Manager) RetireAll() {
	p := &m.pool
	p.mu.Lock()
	for _, e := range p.circs {
		e.retired = true
	}
	p.mu.Unlock()
}

// Retire marks e unusable for new streams.
func (m *Manager) Retire(e *Exit) {
	m.pool.mu.Lock()
	e.retired = true
	m.pool.mu.Unlock()
}

// CloseAll closes every pool circuit and ends the measurement circuits
// (on shutdown).
func (m *Manager) CloseAll() {
	m.stopLife()
	p := &m.pool
	p.mu.Lock()
	circs := p.circs
	p.circs = nil
	p.mu.Unlock()
	for _, e := range circs {
		e.Circ.Close()
	}
}

// ShedIdle closes the exit circuits that carry no stream, to give memory
// back under pressure, and returns how many it closed. Circuits with open
// streams are kept.
func (m *Manager) ShedIdle() int { return m.shed(false) }

// ShedDirtyIdle closes the pool circuits that carry no stream but have
// carried some (dirty: only their own isolation key could use them again)
// and returns how many it closed; clean circuits kept for predicted ports
// stay. The board calls it at moderate memory pressure, before it has to
// refuse streams.
func (m *Manager) ShedDirtyIdle() int { return m.shed(true) }

func (m *Manager) shed(dirtyOnly bool) int {
	p := &m.pool
	p.mu.Lock()
	var keep, closing []*Exit
	for _, e := range p.circs {
		if e.streams <= 0 && (!dirtyOnly || !e.dirtySince.IsZero()) {
			closing = append(closing, e)
		} else {
			keep = append(keep, e)
		}
	}
	p.circs = keep
	p.mu.Unlock()
	for _, e := range closing {
		e.Circ.Close()
	}
	return len(closing)
}

// Close closes the pool circuit the control port calls id. With ifUnused
// it refuses (ErrCircuitInUse) a circuit that carries streams.
func (m *Manager) Close(id uint64, ifUnused bool) error {
	p := &m.pool
	p.mu.Lock()
	var found *Exit
	for _, e := range p.circs {
		if e.ID == id && e.alive() {
			found = e
			break
		}
	}
	if found == nil {
		p.mu.Unlock()
		return errfmt.Errorf("circuit %d: %w", id, ErrUnknownCircuit)
	}
	if ifUnused && found.streams > 0 {
		p.mu.Unlock()
		return errfmt.Errorf("circuit %d: %w", id, ErrCircuitInUse)
	}
	found.retired = true
	p.mu.Unlock()
	return found.Circ.Close()
}

// CongestionStats returns the congestion and flow control state of each
// open exit circuit of the pool.
func (m *Manager) CongestionStats() []circuit.CongestionStats {
	p := &m.pool
	p.mu.Lock()
	circs := append([]*Exit(nil), p.circs...)
	p.mu.Unlock()
	out := make([]circuit.CongestionStats, 0, len(circs))
	for _, e := range circs {
		if e.alive() {
			out = append(out, e.Circ.CongestionStats())
		}
	}
	return out
}
