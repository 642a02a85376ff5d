package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat. Linux
// fixes it at 100 for user space on every architecture.
const clkTck = 100

// impl is one Tor client under test.
type impl struct {
	name string
	// args returns the command line for a torrc (argv[0] first).
	args func(torrc string) []string
}

// client is a running Tor client started by this program.
type client struct {
	impl      *impl
	dir       string
	cmd       *exec.Cmd
	socks     string // host:port
	control   string // host:port, or "" without a control port
	cookie    string // control cookie path
	started   time.Time
	bootstrap time.Duration // start to "Bootstrapped 100%"
	done      chan struct{} // closed when the process has exited
	waitErr   error
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startClient writes a torrc in dir (the network's fragment, a fresh
// DataDirectory, a SocksPort and notice logging to stdout, plus a
// ControlPort with cookie authentication if withControl), starts the
// client and waits for "Bootstrapped 100%" or timeout.
func startClient(ctx context.Context, im *impl, fragment []byte, dir string, withControl bool, timeout time.Duration) (*client, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w", im.name, err)
	}
	data := filepath.Join(dir, "data")
	if err := os.RemoveAll(data); err != nil {
		return nil, fmt.Errorf("%s: clearing %s: %w", im.name, data, err)
	}
	sp, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &client{impl: im, dir: dir, socks: fmt.Sprintf("127.0.0.1:%d", sp), done: make(chan struct{})}
	var b strings.Builder
	b.Write(fragment)
	if len(fragment) > 0 && fragment[len(fragment)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "DataDirectory %s\nSocksPort %s\nLog notice stdout\n", data, c.socks)
	if withControl {
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		c.control = fmt.Sprintf("127.0.0.1:%d", cp)
		c.cookie = filepath.Join(data, "control_auth_cookie")
		fmt.Fprintf(&b, "ControlPort %s\nCookieAuthentication 1\n", c.control)
	}
	torrc := filepath.Join(dir, "torrc")
	if err := os.WriteFile(torrc, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("%s: writing torrc: %w", im.name, err)
	}
	argv := im.args(torrc)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", im.name, err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", im.name, err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	logf, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", im.name, err)
	}
	c.cmd = cmd
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: starting %s: %w", im.name, argv[0], err)
	}
	ready := make(chan time.Time, 1)
	var scanDone sync.WaitGroup
	scanDone.Add(1)
	go func() {
		defer scanDone.Done()
		defer logf.Close()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent && strings.Contains(line, "Bootstrapped 100%") {
				ready <- time.Now()
				sent = true
			}
			fmt.Fprintln(logf, line)
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		scanDone.Wait()
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case t := <-ready:
		c.bootstrap = t.Sub(c.started)
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("%s exited before bootstrapping (%v); see %s/stdout.log and stderr.log", im.name, c.waitErr, dir)
	case <-timer.C:
		c.stop()
		return nil, fmt.Errorf("%s did not bootstrap within %v; see %s/stdout.log", im.name, timeout, dir)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// stop ends the client (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (c *client) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	pid := c.cmd.Process.Pid
	// The client runs in its own process group (Setpgid) whose id is its
	// pid: signal that group so nothing it spawned outlives it.
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-c.done:
		return
	case <-time.After(5 * time.Second):
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	<-c.done
}

// exited returns an error naming how the client ended (with the first
// line of a Go panic from its stderr), or nil while it runs.
func (c *client) exited() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	why := ""
	if b, err := os.ReadFile(filepath.Join(c.dir, "stderr.log")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
				why = ": " + line
				break
			}
		}
	}
	return fmt.Errorf("%s exited (%v)%s; see %s/stderr.log", c.impl.name, c.waitErr, why, c.dir)
}

// explain adds to err that the client has exited, if it has.
func (c *client) explain(err error) error {
	// Give the waiter a moment to see a process that just died.
	select {
	case <-c.done:
	case <-time.After(200 * time.Millisecond):
	}
	if e := c.exited(); e != nil {
		return fmt.Errorf("%w (%v)", err, e)
	}
	return err
}

// pid returns the client's process id.
func (c *client) pid() int { return c.cmd.Process.Pid }

// cpuTime returns utime+stime of pid from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time: %w", err)
	}
	return parseStat(b)
}

// parseStat extracts utime+stime from the text of /proc/PID/stat. The
// command name (field 2) is in parentheses and may contain spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no ')' after the command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/PID/stat: utime %q: %w", f[11], err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/PID/stat: stime %q: %w", f[12], err)
	}
	if ut > 1<<40 || st > 1<<40 {
		return 0, fmt.Errorf("/proc/PID/stat: implausible utime %d or stime %d", ut, st)
	}
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// memStatus returns VmHWM and VmRSS of pid in bytes.
func memStatus(pid int) (hwm, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading memory status: %w", err)
	}
	return parseStatus(b)
}

// parseStatus extracts VmHWM and VmRSS (reported in kB) from the text of
// /proc/PID/status.
func parseStatus(b []byte) (hwm, rss int64, err error) {
	var haveHWM, haveRSS bool
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc/PID/status: %s: unexpected value %q", key, strings.TrimSpace(val))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 || n > 1<<40 {
			return 0, 0, fmt.Errorf("/proc/PID/status: %s: bad number %q", key, f[0])
		}
		if key == "VmHWM" {
			hwm, haveHWM = n*1024, true
		} else {
			rss, haveRSS = n*1024, true
		}
	}
	if !haveHWM || !haveRSS {
		return 0, 0, errors.New("/proc/PID/status: no VmHWM or VmRSS line")
	}
	return hwm, rss, nil
}
