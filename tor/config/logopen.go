package config

import (
	"errors"
	"io"
	"os"
	"strconv"

	"tinytor/tor/torlog"
)

// OpenLogs builds the logger that targets (the torrc's Log lines) ask
// for: stdout and stderr write to the writers given, files are opened
// for appending (mode 0600), syslog is the daemon facility. closeLogs
// closes the files and the syslog connection it opened.
func OpenLogs(targets []LogTarget, stdout, stderr io.Writer) (log *torlog.Logger, closeLogs func(), err error) {
	var sinks []torlog.Sink
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	for _, t := range targets {
		var w io.Writer
		switch t.Dest {
		case LogStdout:
			w = stdout
		case LogStderr:
			w = stderr
		case LogFile:
			f, err := os.OpenFile(t.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				closeAll()
				return nil, nil, wrapErr("opening log file", "", err)
			}
			closers = append(closers, f)
			w = f
		case LogSyslog:
			sw, err := openSyslog()
			if err != nil {
				closeAll()
				return nil, nil, wrapErr("opening syslog", "", err)
			}
			closers = append(closers, sw)
			w = sw
		default:
			closeAll()
			return nil, nil, errors.New("unsupported log destination " + strconv.Itoa(int(t.Dest)))
		}
		sinks = append(sinks, torlog.Sink{Min: t.Min, Max: t.Max, W: w})
	}
	return torlog.New(sinks...), closeAll, nil
}
