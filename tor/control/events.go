package control

import (
	"strconv"
	"strings"
	"time"

	"tinytor/tor/torlog"
)

// Event is one asynchronous event. It is sent as "650 Type Body", or, when
// Body spans several lines, as "650+Type", the dot-stuffed body, "." and
// "650 OK".
type Event struct {
	Type string
	Body string
	// Data, with Block, is the data of an event sent as
	// "650+Type Body", the dot-stuffed lines of Data, ".", "650 OK"
	// (HS_DESC_CONTENT); Data may be empty.
	Data  string
	Block bool
}

// EventNames are the event names SETEVENTS accepts, in C tor's order (the
// value of GETINFO events/names). A name here that tinytor never produces
// is accepted and simply never fires.
var eventNames = []string{
	"CIRC", "CIRC_MINOR", "STREAM", "ORCONN", "BW", "DEBUG", "INFO", "NOTICE",
	"WARN", "ERR", "NEWDESC", "ADDRMAP", "DESCCHANGED", "NS", "STATUS_GENERAL",
	"STATUS_CLIENT", "STATUS_SERVER", "GUARD", "STREAM_BW", "CLIENTS_SEEN",
	"NEWCONSENSUS", "BUILDTIMEOUT_SET", "SIGNAL", "CONF_CHANGED", "CONN_BW",
	"CELL_STATS", "CIRC_BW", "TRANSPORT_LAUNCHED", "HS_DESC", "HS_DESC_CONTENT",
	"NETWORK_LIVENESS", "PT_LOG", "PT_STATUS",
}

// listedEvents is how many of eventNames GETINFO events/names lists: C tor
// 0.4.9 accepts PT_LOG and PT_STATUS in SETEVENTS but leaves them out of
// that list.
const listedEvents = 31

// EventNames returns the event names GETINFO events/names lists (SETEVENTS
// also accepts PT_LOG and PT_STATUS, as C tor).
func EventNames() []string { return append([]string(nil), eventNames[:listedEvents]...) }

func knownEvent(name string) bool {
	for _, n := range eventNames {
		if n == name {
			return true
		}
	}
	return false
}

// kvs returns s with " KEY=value" appended for each pair of keys and
// values whose value is not empty.
func kvs(s string, pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			s += " " + pairs[i] + "=" + pairs[i+1]
		}
	}
	return s
}

// remoteReason is REMOTE_REASON's value: only given with a REASON.
func remoteReason(reason, remote string) string {
	if reason == "" {
		return ""
	}
	return remote
}

// isoTimeFrac formats t as control-spec ISOTime2Frac with microseconds, as
// C tor does for TIME_CREATED.
func isoTimeFrac(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000")
}

// CircEvent is a CIRC event (control-spec 4.1.1).
type CircEvent struct {
	ID           string
	Status       string   // LAUNCHED, BUILT, GUARD_WAIT, EXTENDED, FAILED, CLOSED
	Path         []string // LongNames: "$FINGERPRINT~nickname"
	BuildFlags   []string // ONEHOP_TUNNEL, IS_INTERNAL, NEED_CAPACITY, NEED_UPTIME
	Purpose      string
	HSState      string
	RendQuery    string
	TimeCreated  time.Time
	Reason       string
	RemoteReason string
}

// Event formats c.
func (c CircEvent) Event() Event {
	s := c.ID + " " + c.Status
	if len(c.Path) > 0 {
		s += " " + strings.Join(c.Path, ",")
	}
	created := ""
	if !c.TimeCreated.IsZero() {
		created = isoTimeFrac(c.TimeCreated)
	}
	return Event{Type: "CIRC", Body: kvs(s, "BUILD_FLAGS", strings.Join(c.BuildFlags, ","), "PURPOSE", c.Purpose,
		"HS_STATE", c.HSState, "REND_QUERY", c.RendQuery, "TIME_CREATED", created,
		"REASON", c.Reason, "REMOTE_REASON", remoteReason(c.Reason, c.RemoteReason))}
}

// StreamEvent is a STREAM event (control-spec 4.1.2).
type StreamEvent struct {
	ID           string
	Status       string // NEW, NEWRESOLVE, REMAP, SENTCONNECT, SENTRESOLVE, SUCCEEDED, FAILED, CLOSED, DETACHED
	CircID       string // "0" when not attached
	Target       string // host:port
	Reason       string
	RemoteReason string
	Source       string // CACHE or EXIT, for REMAP
	SourceAddr   string // address:port of the SOCKS client
	Purpose      string // DIR_FETCH, DIR_UPLOAD, DNS_REQUEST, DIRPORT_TEST, USER
}

// Event formats s.
func (s StreamEvent) Event() Event {
	circ := s.CircID
	if circ == "" {
		circ = "0"
	}
	return Event{Type: "STREAM", Body: kvs(s.ID+" "+s.Status+" "+circ+" "+s.Target,
		"REASON", s.Reason, "REMOTE_REASON", remoteReason(s.Reason, s.RemoteReason),
		"SOURCE", s.Source, "SOURCE_ADDR", s.SourceAddr, "PURPOSE", s.Purpose)}
}

// ORConnEvent is an ORCONN event (control-spec 4.1.3).
type ORConnEvent struct {
	Target string // LongName or address:port
	Status string // NEW, LAUNCHED, CONNECTED, FAILED, CLOSED
	Reason string
	NCircs int // omitted when 0
	ID     string
}

// Event formats o.
func (o ORConnEvent) Event() Event {
	ncircs := ""
	if o.NCircs > 0 {
		ncircs = strconv.Itoa(o.NCircs)
	}
	return Event{Type: "ORCONN", Body: kvs(o.Target+" "+o.Status, "REASON", o.Reason, "NCIRCS", ncircs, "ID", o.ID)}
}

// BWEvent returns a BW event: bytes read and written in the last second.
func BWEvent(read, written uint64) Event {
	return Event{Type: "BW", Body: strconv.FormatUint(read, 10) + " " + strconv.FormatUint(written, 10)}
}

// StatusArg is one keyword=value argument of a status event.
type StatusArg struct{ Key, Value string }

// StatusEvent is a STATUS_GENERAL / STATUS_CLIENT / STATUS_SERVER event
// (control-spec 4.1.10), e.g. STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100.
type StatusEvent struct {
	Type     string // STATUS_CLIENT etc.
	Severity string // NOTICE, WARN, ERR
	Action   string
	Args     []StatusArg
}

// Event formats s; a value that is not 1*(ALNUM / "_") is quoted.
func (s StatusEvent) Event() Event {
	b := s.Severity + " " + s.Action
	for _, a := range s.Args {
		v := a.Value
		if !isStatusWord(v) {
			v = QuoteString(v)
		}
		b += " " + a.Key + "=" + v
	}
	return Event{Type: s.Type, Body: b}
}

func isStatusWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// HSDescEvent is an HS_DESC event (control-spec 4.1.25).
type HSDescEvent struct {
	Action       string // REQUESTED, UPLOAD, RECEIVED, UPLOADED, IGNORE, FAILED, CREATED
	Address      string // onion address without ".onion", or UNKNOWN
	AuthType     string // NO_AUTH, BASIC_AUTH, STEALTH_AUTH, UNKNOWN
	HSDir        string // LongName or UNKNOWN
	DescriptorID string
	Reason       string
	HSDirIndex   string
}

// Event formats h.
func (h HSDescEvent) Event() Event {
	s := h.Action
	for _, f := range [...]string{h.Address, h.AuthType, h.HSDir} {
		if f == "" {
			f = "UNKNOWN"
		}
		s += " " + f
	}
	if h.DescriptorID != "" {
		s += " " + h.DescriptorID
	}
	return Event{Type: "HS_DESC", Body: kvs(s, "REASON", h.Reason, "HSDIR_INDEX", h.HSDirIndex)}
}

// HSDescContentEvent is an HS_DESC_CONTENT event (control-spec 4.1.26):
// a descriptor a client fetched, empty when the HSDir had none.
type HSDescContentEvent struct {
	Address      string // onion address without ".onion"
	DescriptorID string
	HSDir        string // LongName or UNKNOWN
	Content      string
}

// Event formats h.
func (h HSDescContentEvent) Event() Event {
	hsdir := h.HSDir
	if hsdir == "" {
		hsdir = "UNKNOWN"
	}
	return Event{Type: "HS_DESC_CONTENT", Body: h.Address + " " + h.DescriptorID + " " + hsdir, Data: h.Content, Block: true}
}

// LogEvent returns the DEBUG/INFO/NOTICE/WARN/ERR event for a log message.
func LogEvent(sev torlog.Severity, msg string) Event {
	return Event{Type: strings.ToUpper(sev.String()), Body: strings.TrimRight(msg, "\r\n")}
}
