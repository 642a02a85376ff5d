package tor

import (
	"fmt"
	"sync"

	"tinytor/tor/torlog"
)

// Phase is a bootstrap phase, with C tor's percentages, tags and summaries
// (control-spec "Bootstrap phases").
type Phase struct {
	Percent int
	Tag     string
	Summary string
}

// The bootstrap phases in the order a client passes them.
var (
	PhaseStarting              = Phase{0, "starting", "Starting"}
	PhaseConn                  = Phase{5, "conn", "Connecting to a relay"}
	PhaseConnDone              = Phase{10, "conn_done", "Connected to a relay"}
	PhaseHandshake             = Phase{14, "handshake", "Handshaking with a relay"}
	PhaseHandshakeDone         = Phase{15, "handshake_done", "Handshake with a relay done"}
	PhaseOneHopCreate          = Phase{20, "onehop_create", "Establishing an encrypted directory connection"}
	PhaseRequestingStatus      = Phase{25, "requesting_status", "Asking for networkstatus consensus"}
	PhaseLoadingStatus         = Phase{30, "loading_status", "Loading networkstatus consensus"}
	PhaseLoadingKeys           = Phase{40, "loading_keys", "Loading authority key certs"}
	PhaseRequestingDescriptors = Phase{45, "requesting_descriptors", "Asking for relay descriptors"}
	PhaseLoadingDescriptors    = Phase{50, "loading_descriptors", "Loading relay descriptors"}
	PhaseEnoughDirInfo         = Phase{75, "enough_dirinfo", "Loaded enough directory info to build circuits"}
	PhaseAPConn                = Phase{76, "ap_conn", "Connecting to a relay to build circuits"}
	PhaseAPConnDone            = Phase{77, "ap_conn_done", "Connected to a relay to build circuits"}
	PhaseAPHandshake           = Phase{79, "ap_handshake", "Finishing handshake with a relay to build circuits"}
	PhaseAPHandshakeDone       = Phase{80, "ap_handshake_done", "Handshake finished with a relay to build circuits"}
	PhaseCircuitCreate         = Phase{90, "circuit_create", "Establishing a Tor circuit"}
	PhaseDone                  = Phase{100, "done", "Done"}
)

// BootstrapStatus is what the client reports of its bootstrap: the phase
// reached and, when stuck, the last problem met.
type BootstrapStatus struct {
	Phase   Phase
	Problem string // empty unless the last step failed
}

// String formats the status like C tor's log line, without the prefix.
func (s BootstrapStatus) String() string {
	return fmt.Sprintf("%d%% (%s): %s", s.Phase.Percent, s.Phase.Tag, s.Phase.Summary)
}

// ControlString formats the status as GETINFO status/bootstrap-phase does.
func (s BootstrapStatus) ControlString() string {
	sev := "NOTICE"
	extra := ""
	if s.Problem != "" {
		sev = "WARN"
		extra = fmt.Sprintf(" WARNING=%q", s.Problem)
	}
	return fmt.Sprintf("%s BOOTSTRAP PROGRESS=%d TAG=%s SUMMARY=%q%s", sev, s.Phase.Percent, s.Phase.Tag, s.Phase.Summary, extra)
}

// bootstrapReporter tracks the bootstrap phase. Progress only moves forward:
// reporting an earlier phase again (a second directory fetch, say) is quiet.
type bootstrapReporter struct {
	log *torlog.Logger

	mu        sync.Mutex
	status    BootstrapStatus
	listeners []func(BootstrapStatus)
}

func newBootstrapReporter(log *torlog.Logger) *bootstrapReporter {
	return &bootstrapReporter{log: log, status: BootstrapStatus{Phase: PhaseStarting}}
}

// reach records that phase p was reached and logs it as C tor does.
func (r *bootstrapReporter) reach(p Phase) {
	r.mu.Lock()
	if p.Percent <= r.status.Phase.Percent {
		r.mu.Unlock()
		return
	}
	r.status = BootstrapStatus{Phase: p}
	st := r.status
	ls := r.listeners
	r.mu.Unlock()
	r.log.Noticef("Bootstrapped %s", st)
	for _, f := range ls {
		f(st)
	}
}

// problem records why the current step failed; it is logged at warn with
// the phase it blocks, as C tor's "Problem bootstrapping" lines.
func (r *bootstrapReporter) problem(reason string) {
	r.mu.Lock()
	if r.status.Phase == PhaseDone {
		r.mu.Unlock()
		return
	}
	r.status.Problem = reason
	st := r.status
	ls := r.listeners
	r.mu.Unlock()
	r.log.Warnf("Problem bootstrapping. Stuck at %s. (%s)", st, reason)
	for _, f := range ls {
		f(st)
	}
}

func (r *bootstrapReporter) current() BootstrapStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *bootstrapReporter) subscribe(f func(BootstrapStatus)) {
	r.mu.Lock()
	r.listeners = append(r.listeners, f)
	r.mu.Unlock()
}
