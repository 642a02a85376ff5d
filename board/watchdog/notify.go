package watchdog

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"time"
)

// Notifier sends sd_notify(3) messages to systemd without libsystemd: one
// unix datagram per message to the socket named by $NOTIFY_SOCKET. A name
// starting with '@' is in the abstract namespace (the '@' stands for the
// leading NUL byte; Go's net package does that translation).
type Notifier struct {
	addr *net.UnixAddr
}

// NewNotifier returns a Notifier for the socket path (as in
// $NOTIFY_SOCKET), or nil, nil if path is empty (not run by systemd).
func NewNotifier(path string) (*Notifier, error) {
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, valueError("NOTIFY_SOCKET", path, " is neither an absolute path nor an abstract '@' name")
	}
	if len(path) < 2 {
		return nil, valueError("NOTIFY_SOCKET", path, " is too short")
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
}

// NotifierFromEnv is NewNotifier(getenv("NOTIFY_SOCKET")).
func NotifierFromEnv(getenv func(string) string) (*Notifier, error) {
	return NewNotifier(getenv("NOTIFY_SOCKET"))
}

// Send sends the newline-joined assignments ("READY=1", "STATUS=...") as
// one datagram. Sending on a nil Notifier does nothing.
func (n *Notifier) Send(assignments ...string) error {
	if n == nil {
		return nil
	}
	for _, a := range assignments {
		if !strings.Contains(a, "=") || strings.Contains(a, "\n") {
			return valueError("bad sd_notify assignment", a, "")
		}
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return opError("connecting to NOTIFY_SOCKET", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(assignments, "\n"))); err != nil {
		return opError("sending to NOTIFY_SOCKET", n.addr.Name, err)
	}
	return nil
}

// Ready sends READY=1 (startup finished; for Type=notify units).
func (n *Notifier) Ready() error { return n.Send("READY=1") }

// Stopping sends STOPPING=1.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Status sends STATUS=s (shown by systemctl status). Newlines in s are
// replaced by spaces.
func (n *Notifier) Status(s string) error {
	return n.Send("STATUS=" + strings.ReplaceAll(s, "\n", " "))
}

// Kick sends WATCHDOG=1, making a Notifier a Kicker.
func (n *Notifier) Kick() error { return n.Send("WATCHDOG=1") }

// ErrNoWatchdog is returned by WatchdogInterval when systemd's watchdog is
// not enabled for this process.
var ErrNoWatchdog = errors.New("systemd watchdog not enabled")

// WatchdogInterval parses $WATCHDOG_USEC (and $WATCHDOG_PID, which, if set,
// must equal pid) as systemd sets them for a unit with WatchdogSec=. It
// returns the timeout; kick at KickInterval of it. ErrNoWatchdog means the
// watchdog is off (variables unset, or meant for another process).
func WatchdogInterval(getenv func(string) string, pid int) (time.Duration, error) {
	us := getenv("WATCHDOG_USEC")
	if us == "" {
		return 0, ErrNoWatchdog
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		v, err := strconv.Atoi(p)
		if err != nil || v <= 0 {
			return 0, valueError("bad WATCHDOG_PID", p, "")
		}
		if v != pid {
			return 0, ErrNoWatchdog
		}
	}
	v, err := strconv.ParseUint(us, 10, 63)
	if err != nil || v == 0 {
		return 0, valueError("bad WATCHDOG_USEC", us, ": want a positive number of microseconds")
	}
	if v > uint64(1<<63-1)/1000 {
		return 0, valueError("WATCHDOG_USEC", us, " out of range")
	}
	return time.Duration(v) * time.Microsecond, nil
}
