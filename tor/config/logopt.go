package config

import (
	"errors"
	"strconv"
	"strings"

	"tinytor/tor/torlog"
)

// LogDest says where a Log line sends messages.
type LogDest int

// The log destinations of C tor's Log option that tinytor supports.
const (
	LogStdout LogDest = iota
	LogStderr
	LogSyslog
	LogFile
)

// LogTarget is one Log line: "minSeverity[-maxSeverity] stderr|stdout|syslog"
// or "minSeverity[-maxSeverity] file PATH".
type LogTarget struct {
	Min, Max torlog.Severity
	Dest     LogDest
	Path     string // for LogFile
}

func parseLog(v string) (t LogTarget, err error) {
	sev, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(sev, "[") {
		return t, errors.New("log domains ([domain,...]severity) are not supported by tinytor")
	}
	lo, hi, isRange := strings.Cut(sev, "-")
	if t.Min, err = torlog.ParseSeverity(lo); err != nil {
		return t, err
	}
	t.Max = torlog.Err
	if isRange {
		if t.Max, err = torlog.ParseSeverity(hi); err != nil {
			return t, err
		}
		if t.Max < t.Min {
			return t, badValue("severity range %q is reversed (write it least severe first, e.g. info-notice)", sev)
		}
	}
	dest, path, _ := strings.Cut(rest, " ")
	path = strings.TrimSpace(path)
	switch strings.ToLower(dest) {
	case "", "stdout":
		t.Dest = LogStdout
	case "stderr":
		t.Dest = LogStderr
	case "syslog":
		t.Dest = LogSyslog
	case "file":
		if path == "" {
			return t, errors.New("'file' log destination needs a file name")
		}
		t.Dest, t.Path = LogFile, path
		return t, nil
	default:
		return t, badValue("unknown log destination %q (want stdout, stderr, syslog or file PATH)", dest)
	}
	if path != "" {
		return t, badValue("excess data %q after log destination "+strconv.Quote(dest), path)
	}
	return t, nil
}
