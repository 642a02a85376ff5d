// Package bootstrap tracks how far the client has come towards building
// circuits, logs each phase as C tor does ("Bootstrapped 50% ...") and
// publishes it on the event bus.
package bootstrap

import (
	"tinytor/tor/event"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Reporter tracks the bootstrap phase. Progress only moves forward:
// reporting an earlier phase again (a second directory fetch, say) is
// quiet.
type Reporter struct {
	log *torlog.Logger
	bus *event.Bus

	mu     lock.Mutex
	status event.Bootstrap
	via    event.Phase // replaces PhaseConn; see ConnectVia
}

// ConnectVia makes connections to relays go through a pluggable
// transport (PhaseConnPT) or an upstream proxy (PhaseConnProxy): as in C
// tor, that phase is reported instead of PhaseConn, and the dialer
// reports the matching "done" phase.
func (r *Reporter) ConnectVia(p event.Phase) {
	r.mu.Lock()
	r.via = p
	r.mu.Unlock()
}

// New returns a Reporter at PhaseStarting that logs to log and publishes
// on bus (either may be nil).
func New(log *torlog.Logger, bus *event.Bus) *Reporter {
	if log == nil {
		log = torlog.Discard()
	}
	return &Reporter{log: log, bus: bus, status: event.Bootstrap{Phase: event.PhaseStarting}}
}

// Reach records that phase p was reached and logs it as C tor does.
func (r *Reporter) Reach(p event.Phase) {
	r.mu.Lock()
	if p == event.PhaseConn && r.via.Tag != "" {
		p = r.via
	}
	if p.Percent <= r.status.Phase.Percent {
		r.mu.Unlock()
		return
	}
	r.status = event.Bootstrap{Phase: p}
	st := r.status
	r.mu.Unlock()
	r.log.Noticef("Bootstrapped %s", st)
	r.bus.Publish(st)
}

// Problem records why the current step failed; it is logged at warn with
// the phase it blocks, as C tor's "Problem bootstrapping" lines.
func (r *Reporter) Problem(reason string) {
	r.mu.Lock()
	if r.status.Phase == event.PhaseDone {
		r.mu.Unlock()
		return
	}
	r.status.Problem = reason
	st := r.status
	r.mu.Unlock()
	r.log.Warnf("Problem bootstrapping. Stuck at %s. (%s)", st, reason)
	r.bus.Publish(st)
}

// Current returns the status reached.
func (r *Reporter) Current() event.Bootstrap {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}
