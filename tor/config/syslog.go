package config

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"tinytor/tor/lock"
)

// syslogWriter sends each write to the local syslog daemon as one message
// of the daemon facility at notice priority, tagged "tinytor[PID]", as
// log/syslog's New(LOG_DAEMON|LOG_NOTICE, "tinytor") did. It is written
// here so that the binary does not link net.Dial and with it the name
// resolver (flash is small on routers).
type syslogWriter struct {
	mu   lock.Mutex
	conn net.Conn
}

// syslogPriority is LOG_DAEMON|LOG_NOTICE.
const syslogPriority = 3<<3 | 5

// syslogPaths are where local syslog daemons listen.
var syslogPaths = []string{"/dev/log", "/var/run/syslog", "/var/run/log"}

func openSyslog() (*syslogWriter, error) {
	w := &syslogWriter{}
	if err := w.connect(); err != nil {
		return nil, err
	}
	return w, nil
}

// connect opens a datagram, else stream, Unix socket to the daemon.
func (w *syslogWriter) connect() error {
	var errs []error
	for _, network := range []string{"unixgram", "unix"} {
		for _, path := range syslogPaths {
			c, err := net.DialUnix(network, nil, &net.UnixAddr{Name: path, Net: network})
			if err == nil {
				w.conn = c
				return nil
			}
			errs = append(errs, err)
		}
	}
	return wrapErr("no local syslog daemon", "", errors.Join(errs...))
}

// Write sends p as one message, reconnecting once if the daemon went away.
func (w *syslogWriter) Write(p []byte) (int, error) {
	msg := "<" + strconv.Itoa(syslogPriority) + ">" + time.Now().Format(time.Stamp) + " tinytor[" + strconv.Itoa(os.Getpid()) + "]: " +
		strings.TrimRight(string(p), "\n") + "\n"
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil {
		if _, err := w.conn.Write([]byte(msg)); err == nil {
			return len(p), nil
		}
		w.conn.Close()
		w.conn = nil
	}
	if err := w.connect(); err != nil {
		return 0, err
	}
	if _, err := w.conn.Write([]byte(msg)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the connection to the daemon.
func (w *syslogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}
