package pt

import (
	"bufio"
	"errors"
	"io"
	"strings"

	"tinytor/tor/errfmt"
	"tinytor/tor/torlog"
)

// Event is a LOG or STATUS line from a transport proxy, for the control
// port's PT_LOG and PT_STATUS events.
type Event struct {
	// Type is "LOG" or "STATUS".
	Type string
	// Args are the line's arguments, after PT=<path of the program>, as C
	// tor sends them in its events.
	Args []KV
}

// Configuration stages of a session.
const (
	stageVersion = iota // waiting for VERSION
	stageMethods        // accepting PROXY DONE, CMETHOD, CMETHOD-ERROR
	stageDone           // CMETHODS DONE received
)

// session follows the stdout of one run of a transport proxy.
type session struct {
	label   string // program path, for logs
	log     *torlog.Logger
	want    map[string]bool
	proxy   bool // TOR_PT_PROXY was set
	onEvent func(Event)

	stage     int
	proxyDone bool
	methods   map[string]Method
	errs      map[string]error
}

func newSession(label string, log *torlog.Logger, want []string, proxy bool, onEvent func(Event)) *session {
	s := &session{label: label, log: log, want: map[string]bool{}, proxy: proxy, onEvent: onEvent,
		methods: map[string]Method{}, errs: map[string]error{}}
	for _, n := range want {
		s.want[n] = true
	}
	return s
}

// outcome ends the configuration protocol: err nil means CMETHODS DONE was
// received and s.methods and s.errs are final.
type outcome struct {
	err       error
	permanent bool // restarting the same program would fail the same way
}

// line handles one stdout line and returns the outcome when configuration
// ends with it.
func (s *session) line(l string) *outcome {
	s.log.Debugf("Got a line from managed proxy '%s': (%s)", s.label, clip(l))
	kw, rest, _ := strings.Cut(l, " ")
	fail := func(format string, args ...any) *outcome {
		return &outcome{err: errfmt.Errorf(format, args...), permanent: true}
	}
	inStage := func(st int) bool {
		return s.stage == st
	}
	switch kw {
	case "LOG":
		s.logLine(rest)
		return nil
	case "STATUS":
		s.statusLine(rest)
		return nil
	case "VERSION-ERROR":
		return fail("transport proxy supports no protocol version we offer (VERSION-ERROR %s)", clip(rest))
	case "ENV-ERROR":
		return fail("transport proxy could not understand its environment (ENV-ERROR %s)", clip(rest))
	case "PROXY-ERROR":
		return fail("transport proxy could not use the outgoing proxy (PROXY-ERROR %s)", clip(rest))
	case "VERSION", "CMETHOD", "CMETHOD-ERROR":
		// handled below
	case "CMETHODS", "PROXY":
		if rest == "DONE" {
			break
		}
		fallthrough
	default:
		s.log.Noticef("Unknown line received by managed proxy '%s' (%s).", s.label, clip(l))
		return nil
	}
	if s.stage == stageDone {
		s.log.Warnf("Managed proxy '%s' sent %q after CMETHODS DONE; ignoring it.", s.label, clip(l))
		return nil
	}
	switch {
	case kw == "VERSION" && inStage(stageVersion):
		if rest != "1" {
			return fail("transport proxy chose protocol version %q; only 1 is supported", clip(rest))
		}
		s.stage = stageMethods
	case kw == "PROXY" && rest == "DONE" && inStage(stageMethods):
		if !s.proxy {
			s.log.Noticef("Managed proxy '%s' said PROXY DONE but no outgoing proxy was configured.", s.label)
		}
		s.proxyDone = true
	case kw == "CMETHOD" && inStage(stageMethods):
		m, err := parseCMethod(rest)
		if err != nil {
			return fail("bad CMETHOD line: %w", err)
		}
		if !s.want[m.name] {
			s.log.Infof("Managed proxy '%s' launched transport %s, which we did not ask for; ignoring it.", s.label, m.name)
			return nil
		}
		s.log.Infof("Transport %s at %s with SOCKS %d. Attached to managed proxy '%s'.", m.name, m.addr, m.socks, s.label)
		s.methods[m.name] = Method{Transport: m.name, SOCKS: m.socks, Addr: m.addr}
		delete(s.errs, m.name)
	case kw == "CMETHOD-ERROR" && inStage(stageMethods):
		name, msg, _ := strings.Cut(rest, " ")
		s.log.Warnf("Client managed proxy '%s' encountered a method error. (%s)", s.label, clip(rest))
		if s.want[name] {
			s.errs[name] = errfmt.Errorf("transport proxy could not launch %s: %s", name, clip(msg))
			delete(s.methods, name)
		}
	case kw == "CMETHODS" && rest == "DONE" && inStage(stageMethods):
		if s.proxy && !s.proxyDone {
			return fail("transport proxy did not configure the outgoing proxy (no PROXY DONE)")
		}
		s.stage = stageDone
		for n := range s.want {
			if _, ok := s.methods[n]; !ok && s.errs[n] == nil {
				s.errs[n] = errfmt.Errorf("transport proxy does not provide %s (not in its CMETHOD lines)", n)
			}
		}
		if len(s.methods) == 0 {
			s.log.Warnf("Managed proxy '%s' was spawned successfully, but it didn't launch any pluggable transport listeners!", s.label)
		}
		return &outcome{}
	default:
		return fail("unexpected line during configuration: %q", clip(l))
	}
	return nil
}

// severities maps pt-spec LOG severities to tinytor's.
var severities = map[string]torlog.Severity{
	"debug": torlog.Debug, "info": torlog.Info, "notice": torlog.Notice,
	"warning": torlog.Warn, "error": torlog.Err,
}

func (s *session) logLine(rest string) {
	kvs, err := parseKVs(rest)
	if err != nil {
		s.log.Warnf("Managed proxy '%s' wrote an invalid LOG message: %s (%v)", s.label, clip(rest), err)
		return
	}
	msg, ok := lookup(kvs, "MESSAGE")
	sevName, ok2 := lookup(kvs, "SEVERITY")
	sev, ok3 := severities[sevName]
	if !ok || !ok2 || !ok3 {
		s.log.Warnf("Managed proxy '%s' wrote a LOG line without a MESSAGE or a valid SEVERITY: %s", s.label, clip(rest))
		return
	}
	s.log.Logf(sev, "Managed proxy '%s': %s", s.label, clip(msg))
	s.event("LOG", kvs)
}

func (s *session) statusLine(rest string) {
	kvs, err := parseKVs(rest)
	if err == nil {
		if _, ok := lookup(kvs, "TRANSPORT"); !ok {
			err = errors.New("no TRANSPORT")
		}
	}
	if err != nil {
		s.log.Warnf("Managed proxy '%s' wrote an invalid STATUS message: %s (%v)", s.label, clip(rest), err)
		return
	}
	s.log.Debugf("Managed proxy '%s' status: %s", s.label, clip(rest))
	s.event("STATUS", kvs)
}

func (s *session) event(typ string, kvs []KV) {
	if s.onEvent != nil {
		s.onEvent(Event{Type: typ, Args: append([]KV{{"PT", s.label}}, kvs...)})
	}
}

// maxLine bounds one line read from a transport proxy.
const maxLine = 8192

// readLines calls fn with each line of r, without its line terminator,
// until r ends. Longer lines than maxLine are dropped with a warning.
func readLines(r io.Reader, log *torlog.Logger, label string, fn func(string)) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			log.Warnf("Managed proxy '%s' wrote a line longer than %d bytes; dropped it.", label, maxLine)
			if err != nil {
				return
			}
			continue
		}
		if l := strings.TrimRight(string(b), "\r\n"); l != "" {
			fn(l)
		}
		if err != nil {
			return
		}
	}
}
