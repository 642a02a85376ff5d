// Package watchdog keeps a hardware watchdog and systemd's watchdog fed,
// but only while tinytor's core is healthy.
//
// Components register with a Heartbeat and call Beat periodically. A
// Watchdog checks the Heartbeat on every tick and kicks its Kickers (the
// /dev/watchdog Device, the systemd Notifier) only if every registered
// component beat within its deadline. If one stalls (a deadlock, a stuck
// goroutine), kicks stop and the hardware reboots the router, or systemd
// restarts the service.
package watchdog

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"

	"tinytor/tor/errfmt"
)

// DefaultDevicePath is the Linux watchdog device.
const DefaultDevicePath = "/dev/watchdog"

// Device is an open Linux watchdog device.
//
// On a real watchdog it uses the WDIOC_SETTIMEOUT and WDIOC_KEEPALIVE
// ioctls. If the path is not a watchdog device (a regular file or a pipe,
// as in tests, or a driver without ioctl support) the ioctls fail with
// ENOTTY (ENOSYS under qemu-user); the Device then falls back to writing one byte 'k'
// per kick, which every Linux watchdog driver also accepts as a keepalive,
// and the timeout is left as the driver has it. UsesIoctl reports which
// mode is in use.
//
// Close performs the "magic close": it writes 'V' before closing, which
// tells a driver built without CONFIG_WATCHDOG_NOWAYOUT to disarm. Only call
// Close on a clean exit; on a crash the device stays armed and the router
// reboots.
type Device struct {
	fd      int
	path    string
	ioctl   bool
	timeout time.Duration
}

// OpenDevice opens the watchdog at path (DefaultDevicePath if empty) and
// asks for the given timeout (rounded up to whole seconds; 0 keeps the
// driver's). Opening a watchdog arms it: kick it within the timeout.
func OpenDevice(path string, timeout time.Duration) (*Device, error) {
	if path == "" {
		path = DefaultDevicePath
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, opError("opening", path, err)
	}
	d := &Device{fd: fd, path: path, ioctl: true, timeout: timeout}
	if timeout > 0 {
		secs := int((timeout + time.Second - 1) / time.Second)
		err = unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, secs)
	} else {
		// Probe for ioctl support with a harmless keepalive.
		err = unix.IoctlSetPointerInt(fd, unix.WDIOC_KEEPALIVE, 0)
	}
	switch {
	case err == nil:
	case errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ENOSYS):
		// Not a device that takes ioctls (a regular file or a pipe:
		// ENOTTY), or an emulator that does not pass watchdog ioctls
		// through (qemu-user: ENOSYS).
		d.ioctl = false
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP):
		// A driver that cannot set this timeout: keep its own, still
		// kick with the ioctl if it is a character device.
		var st unix.Stat_t
		d.ioctl = unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR
		if d.ioctl {
			d.timeout = 0
		}
	default:
		unix.Close(fd)
		return nil, opError("setting timeout on", path, err)
	}
	if d.ioctl {
		if secs, err := unix.IoctlGetInt(fd, unix.WDIOC_GETTIMEOUT); err == nil && secs > 0 {
			d.timeout = time.Duration(secs) * time.Second
		}
	}
	return d, nil
}

// UsesIoctl reports whether kicks use WDIOC_KEEPALIVE (true) or the
// one-byte write fallback (false).
func (d *Device) UsesIoctl() bool { return d.ioctl }

// Timeout is the device's timeout as reported by the driver (or as
// requested, in fallback mode).
func (d *Device) Timeout() time.Duration { return d.timeout }

// Kick resets the watchdog timer.
func (d *Device) Kick() error {
	var err error
	if d.ioctl {
		err = unix.IoctlSetPointerInt(d.fd, unix.WDIOC_KEEPALIVE, 0)
	} else {
		_, err = unix.Write(d.fd, []byte{'k'})
	}
	if err != nil {
		return opError("kicking", d.path, err)
	}
	return nil
}

// Close disarms the watchdog with the magic close ('V', then close).
func (d *Device) Close() error {
	_, werr := unix.Write(d.fd, []byte{'V'})
	cerr := unix.Close(d.fd)
	if werr != nil {
		return opError("magic close of", d.path, werr)
	}
	if cerr != nil {
		return opError("closing", d.path, cerr)
	}
	return nil
}

// opError wraps the error of operation op on the file or socket name.
func opError(op, name string, err error) error {
	return errfmt.Errorf("watchdog: %s %s: %w", op, name, err)
}

// valueError says what is wrong with value, the named setting: "watchdog:
// <name> <quoted value><why>".
func valueError(name, value, why string) error {
	return errfmt.Errorf("watchdog: %s %q%s", name, value, why)
}

// String names the device for logs.
func (d *Device) String() string { return d.path }
