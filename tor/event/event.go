// Package event is the one way news leaves tinytor's core: a Bus that the
// client, its managers, the onion code and the logger publish typed events
// on, and that the control port, the metrics page and the board layer
// subscribe to. Publishers do not know who listens.
//
// The events are plain values; formatting them for a protocol (the control
// port's CIRC and STATUS_CLIENT lines, say) is the subscriber's job.
package event

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Event is something reported on a Bus: one of the types of this package.
type Event interface{ isEvent() }

// Bus fans events out to subscribers. The zero value is ready to use; a nil
// *Bus drops what is published on it.
type Bus struct {
	mu      lock.Mutex
	subs    map[int]func(Event)
	nextSub int
	ids     atomic.Uint64
}

// Subscribe calls f with every event published until cancel is called. f
// runs on the publishing goroutine: it must return quickly and must not
// publish or call back into the publisher.
func (b *Bus) Subscribe(f func(Event)) (cancel func()) {
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[int]func(Event){}
	}
	id := b.nextSub
	b.nextSub++
	b.subs[id] = f
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
	}
}

// Publish hands e to every subscriber.
func (b *Bus) Publish(e Event) {
	if b == nil {
		return
	}
	b.mu.Lock()
	subs := make([]func(Event), 0, len(b.subs))
	for _, f := range b.subs {
		subs = append(subs, f)
	}
	b.mu.Unlock()
	for _, f := range subs {
		f(e)
	}
}

// NewID returns a fresh identifier for a circuit, stream or channel, unique
// on this Bus, as the control protocol shows them.
func (b *Bus) NewID() uint64 { return b.ids.Add(1) }

// Probe takes and releases the Bus's lock: a watchdog probe that does not
// return when a subscriber list is wedged.
func (b *Bus) Probe() {
	b.mu.Lock()
	//lint:ignore SA2001 an empty critical section is the probe
	b.mu.Unlock()
}

// RelayRef names a relay as the control protocol's LongName does.
type RelayRef struct {
	ID       [20]byte
	Nickname string
}

// LongName is "$FINGERPRINT~nickname".
func (r RelayRef) LongName() string {
	if r.Nickname == "" {
		return fmt.Sprintf("$%X", r.ID)
	}
	return fmt.Sprintf("$%X~%s", r.ID, r.Nickname)
}

// Circuit is a circuit's state (a CIRC event, a line of GETINFO
// circuit-status).
type Circuit struct {
	ID      uint64
	Status  string // LAUNCHED, EXTENDED, BUILT, FAILED, CLOSED
	Path    []RelayRef
	Purpose string // GENERAL, HS_CLIENT_INTRO, ... (control-spec)
	Flags   []string
	Created time.Time
	Reason  string // for FAILED and CLOSED
	// BuildTime is set on BUILT.
	BuildTime time.Duration
}

// Stream is a stream's state (a STREAM event, a line of GETINFO
// stream-status).
type Stream struct {
	ID     uint64
	Status string // NEW, SENTCONNECT, SUCCEEDED, FAILED, CLOSED, NEWRESOLVE, SENTRESOLVE
	CircID uint64
	Target string
	Reason string
	// Source is the address and port of the application the stream is
	// for (SOURCE_ADDR), when the front end knows it (tor.WithSource).
	Source netip.AddrPort
	// Resolve marks a name lookup (RESOLVE cell) rather than a
	// connection: the control port's PURPOSE=DNS_REQUEST.
	Resolve bool
}

// Channel is a channel's state (an ORCONN event, a line of GETINFO
// orconn-status).
type Channel struct {
	ID     uint64
	Relay  RelayRef
	Addr   string
	Status string // LAUNCHED, CONNECTED, FAILED, CLOSED
	Reason string
	NCircs int
}

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
	PhaseConnPT                = Phase{1, "conn_pt", "Connecting to pluggable transport"}
	PhaseConnDonePT            = Phase{2, "conn_done_pt", "Connected to pluggable transport"}
	PhaseConnProxy             = Phase{3, "conn_proxy", "Connecting to proxy"}
	PhaseConnDoneProxy         = Phase{4, "conn_done_proxy", "Connected to proxy"}
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

// Bootstrap is the client's bootstrap status: the phase reached and, when
// stuck, the last problem met.
type Bootstrap struct {
	Phase   Phase
	Problem string // empty unless the last step failed
}

// String formats the status like C tor's log line, without the prefix.
func (s Bootstrap) String() string {
	return fmt.Sprintf("%d%% (%s): %s", s.Phase.Percent, s.Phase.Tag, s.Phase.Summary)
}

// NewNym reports that a new identity was requested (SIGNAL NEWNYM): every
// layer forgets the circuits and state that linked earlier streams.
type NewNym struct{}

// Consensus reports a verified consensus put in use.
type Consensus struct {
	ValidAfter, FreshUntil, ValidUntil time.Time
	// Cached is true for a consensus loaded from the cache at start: it
	// may be old and says nothing about the time now.
	Cached bool
}

// Netinfo reports the clock skew a relay's NETINFO cell implies: the
// relay's time minus ours.
type Netinfo struct{ Skew time.Duration }

// Log is a message logged at notice or above (control-port NOTICE, WARN and
// ERR events).
type Log struct {
	Severity torlog.Severity
	Message  string
}

// HSDesc is an onion service descriptor event: a client's fetch
// (REQUESTED, RECEIVED, FAILED) or a service's upload (UPLOAD, UPLOADED,
// FAILED), as control-spec's HS_DESC describes.
type HSDesc struct {
	Action     string
	Address    string // service ID, without ".onion"
	ClientAuth bool
	HSDir      RelayRef // zero when no HSDir is concerned
	// DescriptorID is the blinded key in base64 without padding, as C tor
	// writes it; "" when unknown.
	DescriptorID string
	Reason       string // for FAILED: NOT_FOUND, UNEXPECTED, QUERY_NO_HSDIR, ...
	// Service is true for a hosted service's upload events.
	Service bool
}

// HSDescContent is the text of a descriptor a client's fetch got from an
// HSDir (control-spec's HS_DESC_CONTENT): Content is empty when the HSDir
// answered without one (404).
type HSDescContent struct {
	Address      string // service ID, without ".onion"
	DescriptorID string // the blinded key in base64 without padding
	HSDir        RelayRef
	Content      string
}

func (*Circuit) isEvent()       {}
func (*Stream) isEvent()        {}
func (*Channel) isEvent()       {}
func (Bootstrap) isEvent()      {}
func (NewNym) isEvent()         {}
func (Consensus) isEvent()      {}
func (Netinfo) isEvent()        {}
func (Log) isEvent()            {}
func (*HSDesc) isEvent()        {}
func (*HSDescContent) isEvent() {}
func (Transport) isEvent()      {}

// Transport is a LOG or STATUS line of a managed pluggable transport
// (the control port's PT_LOG and PT_STATUS events), or the launch of one
// of its transports (TRANSPORT_LAUNCHED).
type Transport struct {
	// Type is "LOG", "STATUS" or "LAUNCHED".
	Type string
	// Name and Addr are the transport launched and its SOCKS listener
	// (LAUNCHED only).
	Name string
	Addr netip.AddrPort
	// Program is the transport's program, as the ClientTransportPlugin
	// line names it.
	Program string
	// Args are the line's key=value arguments, in order.
	Args [][2]string
}

// BuildTimeoutSet reports that the circuit build timeout was set (the
// control port's BUILDTIMEOUT_SET event, control-spec 4.1.16): learned
// from build times (COMPUTED) or put back to the initial value (RESET).
type BuildTimeoutSet struct {
	// Type is COMPUTED, RESET, SUSPENDED, DISCARD or RESUME.
	Type string
	// TotalTimes is how many build times the history holds.
	TotalTimes int
	// Timeout is the build timeout; Close the time after which a
	// measurement circuit is abandoned.
	Timeout, Close time.Duration
	// Xm and Alpha are the Pareto curve's parameters.
	Xm    time.Duration
	Alpha float64
	// Quantile is the curve's point the timeout is at (1 after a reset).
	Quantile float64
	// TimeoutRate and CloseRate are the shares of recent circuits that
	// timed out and that were abandoned.
	TimeoutRate, CloseRate float64
}

func (*BuildTimeoutSet) isEvent() {}
