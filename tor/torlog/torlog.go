// Package torlog writes log lines in C tor's style:
//
//	Nov 27 02:48:56.123 [notice] Bootstrapped 100% (done): Done
//
// A Logger is safe for concurrent use. There is no package-level logger:
// whoever needs to log is handed a *Logger.
package torlog

import (
	"fmt"
	"io"
	"strings"
	"time"

	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
)

// Severity is a C tor log level.
type Severity int

// The C tor severities, from most to least verbose.
const (
	Debug Severity = iota
	Info
	Notice
	Warn
	Err
)

var severityNames = [...]string{"debug", "info", "notice", "warn", "err"}

// String returns the C tor name of s ("notice", "warn", ...).
func (s Severity) String() string {
	if s < Debug || s > Err {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity parses a C tor severity name ("debug", "info", "notice",
// "warn", "err"; "error" and "warning" are accepted as C tor does).
func ParseSeverity(name string) (Severity, error) {
	switch strings.ToLower(name) {
	case "debug":
		return Debug, nil
	case "info":
		return Info, nil
	case "notice":
		return Notice, nil
	case "warn", "warning":
		return Warn, nil
	case "err", "error":
		return Err, nil
	}
	return 0, errfmt.Errorf("unknown log severity %q (want debug, info, notice, warn or err)", name)
}

// Sink is one log destination with the range of severities it takes.
type Sink struct {
	Min, Max Severity
	W        io.Writer
}

// Logger writes each message to every sink whose range contains its severity.
type Logger struct {
	mu    lock.Mutex
	sinks []Sink
	now   func() time.Time
	hooks []func(Severity, string)
}

// New returns a Logger writing to the given sinks.
func New(sinks ...Sink) *Logger {
	return &Logger{sinks: sinks, now: time.Now}
}

// Discard returns a Logger that writes nothing.
func Discard() *Logger { return New() }

// SetSinks replaces the sinks (used on reload).
func (l *Logger) SetSinks(sinks ...Sink) {
	l.mu.Lock()
	l.sinks = sinks
	l.mu.Unlock()
}

// OnMessage registers f to be called with every message logged at Notice or
// above (the control port's NOTICE/WARN/ERR events subscribe here). f must
// not block and must not log.
func (l *Logger) OnMessage(f func(Severity, string)) {
	l.mu.Lock()
	l.hooks = append(l.hooks, f)
	l.mu.Unlock()
}

// Enabled reports whether any sink takes messages of severity s.
func (l *Logger) Enabled(s Severity) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.sinks {
		if s >= k.Min && s <= k.Max {
			return true
		}
	}
	return len(l.hooks) > 0 && s >= Notice
}

// Logf logs a formatted message at severity s.
func (l *Logger) Logf(s Severity, format string, args ...any) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var msg string
	formatted := false
	for _, k := range l.sinks {
		if s < k.Min || s > k.Max {
			continue
		}
		if !formatted {
			msg = fmt.Sprintf(format, args...)
			formatted = true
		}
		line := l.now().Format("Jan 02 15:04:05.000") + " [" + s.String() + "] " + msg + "\n"
		io.WriteString(k.W, line)
	}
	if s >= Notice && len(l.hooks) > 0 {
		if !formatted {
			msg = fmt.Sprintf(format, args...)
		}
		for _, h := range l.hooks {
			h(s, msg)
		}
	}
}

// Debugf logs at debug severity.
func (l *Logger) Debugf(format string, args ...any) { l.Logf(Debug, format, args...) }

// Infof logs at info severity.
func (l *Logger) Infof(format string, args ...any) { l.Logf(Info, format, args...) }

// Noticef logs at notice severity.
func (l *Logger) Noticef(format string, args ...any) { l.Logf(Notice, format, args...) }

// Warnf logs at warn severity.
func (l *Logger) Warnf(format string, args ...any) { l.Logf(Warn, format, args...) }

// Errf logs at err severity.
func (l *Logger) Errf(format string, args ...any) { l.Logf(Err, format, args...) }

// Sinks returns a copy of the logger's sinks.
func (l *Logger) Sinks() []Sink {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Sink(nil), l.sinks...)
}
