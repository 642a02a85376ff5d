package pt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Config describes one "ClientTransportPlugin name[,name...] exec PATH
// [ARGS...]" line and how to run it.
type Config struct {
	// Transports are the names the program should launch.
	Transports []string
	// Path and Args are the program and its arguments.
	Path string
	Args []string
	// StateDir is TOR_PT_STATE_LOCATION: DataDirectory/pt_state/. It is
	// created if missing.
	StateDir string
	// Proxy is TOR_PT_PROXY, an upstream proxy URI (see ProxyURI), or "".
	Proxy string
	// Log receives C tor style messages; nil discards them.
	Log *torlog.Logger
	// OnEvent, if set, is called with each LOG and STATUS line (for
	// PT_LOG and PT_STATUS control events). It must not block.
	OnEvent func(Event)
	// OnLaunch, if set, is called with each method of a run once the
	// program has configured itself (the TRANSPORT_LAUNCHED control
	// event). It must not block.
	OnLaunch func(Method)
	// Env is the environment the TOR_PT_* variables are added to;
	// nil means this process's environment, as C tor passes its own.
	Env []string

	// StartTimeout bounds the wait for CMETHODS DONE (default 60s).
	StartTimeout time.Duration
	// Grace is how long Close waits after closing stdin, and then after
	// SIGTERM, before the next step (default 3s).
	Grace time.Duration
	// MinBackoff and MaxBackoff bound the delay before a restart, which
	// doubles after each death of a child that ran less than a minute
	// (defaults 1s and 5min).
	MinBackoff, MaxBackoff time.Duration
}

// Managed supervises a managed transport proxy: it launches the program,
// follows its configuration protocol, restarts it with backoff when it
// dies, and ends it on Close. Its methods are safe for concurrent use.
type Managed struct {
	cfg   Config
	log   *torlog.Logger
	env   []string
	names []string

	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mu       lock.Mutex
	changed  chan struct{} // closed and replaced on every change below
	methods  map[string]Method
	errs     map[string]error // per-transport failures of the current run
	fatal    error            // the program cannot work: no restart
	pid      int
	restarts int
	lastErr  error
	closed   bool
}

// Start checks cfg and launches the program in the background. The
// methods become available through Method once it has configured itself.
func Start(cfg Config) (*Managed, error) {
	if len(cfg.Transports) == 0 {
		return nil, errors.New("pt: no transport name")
	}
	for _, n := range cfg.Transports {
		if !ValidName(n) {
			return nil, errfmt.Errorf("pt: transport name %q is not a C identifier", n)
		}
	}
	path, err := findProgram(cfg.Path)
	if err != nil {
		return nil, errfmt.Errorf("pt: transport proxy for %s: %w", strings.Join(cfg.Transports, ","), err)
	}
	if !filepath.IsAbs(cfg.StateDir) {
		return nil, errfmt.Errorf("pt: state directory %q is not an absolute path", cfg.StateDir)
	}
	if cfg.Proxy != "" && !strings.HasPrefix(cfg.Proxy, "socks4a://") &&
		!strings.HasPrefix(cfg.Proxy, "socks5://") && !strings.HasPrefix(cfg.Proxy, "http://") {
		return nil, errfmt.Errorf("pt: unsupported upstream proxy %q", cfg.Proxy)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, errfmt.Errorf("pt: %w", err)
	}
	cfg.Path = path
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.StartTimeout, 60*time.Second)
	def(&cfg.Grace, 3*time.Second)
	def(&cfg.MinBackoff, time.Second)
	def(&cfg.MaxBackoff, 5*time.Minute)
	m := &Managed{
		cfg:     cfg,
		log:     cfg.Log,
		names:   append([]string(nil), cfg.Transports...),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	if m.log == nil {
		m.log = torlog.Discard()
	}
	m.env = environ(cfg)
	go m.supervise()
	return m, nil
}

// environ builds the child's environment: the inherited one without stale
// TOR_PT_ variables, plus the ones pt-spec asks for.
func environ(cfg Config) []string {
	base := cfg.Env
	if base == nil {
		base = os.Environ()
	}
	var env []string
	for _, kv := range base {
		if !strings.HasPrefix(kv, "TOR_PT_") {
			env = append(env, kv)
		}
	}
	state := cfg.StateDir
	if !strings.HasSuffix(state, "/") {
		state += "/"
	}
	env = append(env,
		"TOR_PT_MANAGED_TRANSPORT_VER=1",
		"TOR_PT_STATE_LOCATION="+state,
		"TOR_PT_EXIT_ON_STDIN_CLOSE=1",
		"TOR_PT_CLIENT_TRANSPORTS="+strings.Join(cfg.Transports, ","))
	if cfg.Proxy != "" {
		env = append(env, "TOR_PT_PROXY="+cfg.Proxy)
	}
	return env
}

// Names lists the transports.
func (m *Managed) Names() []string { return append([]string(nil), m.names...) }

// Method returns the method for transport name, waiting while the program
// starts or restarts. It fails at once if the transport failed for good
// (the program refused its configuration or could not launch name), and
// when ctx ends, with the last launch error if any.
func (m *Managed) Method(ctx context.Context, name string) (Method, error) {
	known := false
	for _, n := range m.names {
		known = known || n == name
	}
	if !known {
		return Method{}, errfmt.Errorf("no transport called %s in this plugin", name)
	}
	for {
		m.mu.Lock()
		meth, ok := m.methods[name]
		err, fatal, closed, ch, last := m.errs[name], m.fatal, m.closed, m.changed, m.lastErr
		m.mu.Unlock()
		switch {
		case closed:
			return Method{}, ErrClosed
		case ok:
			return meth, nil
		case fatal != nil:
			return Method{}, errfmt.Errorf("transport %s: %w", name, fatal)
		case err != nil:
			return Method{}, errfmt.Errorf("transport %s: %w", name, err)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if last != nil {
				return Method{}, errfmt.Errorf("transport %s not ready: %w (last error: %v)", name, ctx.Err(), last)
			}
			return Method{}, errfmt.Errorf("transport %s not ready: %w", name, ctx.Err())
		}
	}
}

// Dial connects to bridge through transport name, waiting for its method.
func (m *Managed) Dial(ctx context.Context, name string, bridge netip.AddrPort, args []KV) (net.Conn, error) {
	meth, err := m.Method(ctx, name)
	if err != nil {
		return nil, err
	}
	return meth.Dial(ctx, bridge, args)
}

// Status describes each transport.
func (m *Managed) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	var st []Status
	for _, n := range m.names {
		s := Status{Transport: n, Managed: true, Path: m.cfg.Path, PID: m.pid, Restarts: m.restarts, State: Launching}
		if m.lastErr != nil {
			s.LastError = m.lastErr.Error()
		}
		if meth, ok := m.methods[n]; ok {
			s.State, s.Method = Running, meth
		} else if err := m.errs[n]; err != nil {
			s.State, s.LastError = Failed, err.Error()
		}
		if m.fatal != nil {
			s.State, s.LastError = Failed, m.fatal.Error()
		}
		st = append(st, s)
	}
	return st
}

// Close ends the program (closing its stdin, then SIGTERM, then SIGKILL,
// Grace apart) and waits until it and all goroutines are gone.
func (m *Managed) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.notifyLocked()
		m.mu.Unlock()
		close(m.closing)
	})
	<-m.done
	return nil
}

func (m *Managed) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// update changes the shared state under the lock and wakes waiters.
func (m *Managed) update(f func()) {
	m.mu.Lock()
	f()
	m.notifyLocked()
	m.mu.Unlock()
}

// supervise runs the program until Close, restarting it when it dies.
func (m *Managed) supervise() {
	defer close(m.done)
	delay := m.cfg.MinBackoff
	for {
		started := time.Now()
		permanent, err := m.runOnce()
		if err == nil { // closing
			return
		}
		if permanent {
			m.log.Warnf("Managed proxy '%s' failed the configuration protocol and will not be restarted: %v", m.cfg.Path, err)
			m.update(func() { m.fatal, m.lastErr = err, err })
			<-m.closing
			return
		}
		if time.Since(started) >= time.Minute {
			delay = m.cfg.MinBackoff
		}
		m.log.Warnf("Managed proxy '%s' (%s): %v; restarting it in %v.", m.cfg.Path, strings.Join(m.names, ","), err, delay)
		m.update(func() { m.lastErr = err })
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-m.closing:
			t.Stop()
			return
		}
		delay = min(2*delay, m.cfg.MaxBackoff)
		m.update(func() { m.restarts++ })
	}
}

// child is one run of the program.
type child struct {
	proc    *os.Process
	stdin   *os.File // our end, held open while the child should run
	exited  chan struct{}
	state   *os.ProcessState // once exited is closed
	waitErr error
	readers sync.WaitGroup
	outR    *os.File
	errR    *os.File
}

// runOnce launches the program and follows it until it dies (returning why)
// or Close is called (returning nil after ending it).
func (m *Managed) runOnce() (permanent bool, err error) {
	c, err := m.launch()
	if err != nil {
		return false, err
	}
	defer c.cleanup()
	m.log.Infof("Managed proxy at '%s' has spawned with PID '%d'.", m.cfg.Path, c.proc.Pid)
	m.update(func() { m.pid, m.errs, m.methods = c.proc.Pid, nil, nil })
	defer m.update(func() { m.pid, m.methods = 0, nil })

	s := newSession(m.cfg.Path, m.log, m.names, m.cfg.Proxy != "", m.cfg.OnEvent)
	configured := make(chan *outcome, 1)
	c.readers.Add(2)
	go func() {
		defer c.readers.Done()
		sent := false
		readLines(c.outR, m.log, m.cfg.Path, func(l string) {
			o := s.line(l)
			switch {
			case o == nil:
			case !sent:
				sent = true
				configured <- o
			case o.err != nil:
				m.log.Warnf("Managed proxy '%s' after configuration: %v", m.cfg.Path, o.err)
			}
		})
	}()
	go func() {
		defer c.readers.Done()
		readLines(c.errR, m.log, m.cfg.Path, func(l string) {
			m.log.Infof("Managed proxy at '%s' reported via standard error: %s", m.cfg.Path, clip(l))
		})
	}()

	timer := time.NewTimer(m.cfg.StartTimeout)
	defer timer.Stop()
	select {
	case o := <-configured:
		if o.err != nil {
			m.stop(c)
			return o.permanent, o.err
		}
	case <-c.exited:
		// Its last words may explain why (VERSION-ERROR...).
		c.drain(time.Second)
		select {
		case o := <-configured:
			if o.err != nil {
				return o.permanent, o.err
			}
		default:
		}
		return false, errfmt.Errorf("exited while configuring (%s)", c.exitStatus())
	case <-timer.C:
		m.stop(c)
		return false, errfmt.Errorf("no CMETHODS DONE within %v", m.cfg.StartTimeout)
	case <-m.closing:
		m.stop(c)
		return false, nil
	}
	// s.methods and s.errs are no longer written: the reader only
	// handles LOG and STATUS lines from now on.
	m.update(func() { m.methods, m.errs = s.methods, s.errs })
	var names []string
	for n, meth := range s.methods {
		names = append(names, fmt.Sprintf("%s at %s", n, meth.Addr))
	}
	m.log.Noticef("Managed proxy '%s' configured: %s.", m.cfg.Path, strings.Join(names, ", "))
	if m.cfg.OnLaunch != nil {
		for _, meth := range s.methods {
			m.cfg.OnLaunch(meth)
		}
	}
	select {
	case <-c.exited:
		return false, errfmt.Errorf("process terminated (%s)", c.exitStatus())
	case <-m.closing:
		m.stop(c)
		return false, nil
	}
}

func (m *Managed) launch() (*child, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, errfmt.Errorf("stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, errfmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, errfmt.Errorf("stderr pipe: %w", err)
	}
	// os.StartProcess rather than os/exec: the same fork and exec,
	// without linking os/exec into the router binary.
	proc, err := os.StartProcess(m.cfg.Path, append([]string{m.cfg.Path}, m.cfg.Args...),
		&os.ProcAttr{Env: m.env, Files: []*os.File{inR, outW, errW}})
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, errfmt.Errorf("launch failed: %w", err)
	}
	c := &child{proc: proc, stdin: inW, outR: outR, errR: errR, exited: make(chan struct{})}
	go func() {
		c.state, c.waitErr = proc.Wait()
		close(c.exited)
	}()
	return c, nil
}

// stop ends the child as pt-spec 3.4 says: close stdin, wait, SIGTERM,
// wait, SIGKILL.
func (m *Managed) stop(c *child) {
	c.stdin.Close()
	steps := []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}
	for _, sig := range steps {
		t := time.NewTimer(m.cfg.Grace)
		select {
		case <-c.exited:
			t.Stop()
			return
		case <-t.C:
		}
		m.log.Infof("Managed proxy '%s' (pid %d) is still running; sending %v.", m.cfg.Path, c.proc.Pid, sig)
		_ = c.proc.Signal(sig)
	}
	<-c.exited
}

// drain waits up to d for the readers to reach the end of the pipes, then
// closes them (a grandchild may hold them open) and waits for the readers.
func (c *child) drain(d time.Duration) {
	done := make(chan struct{})
	go func() {
		c.readers.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	c.outR.Close()
	c.errR.Close()
	<-done
}

// cleanup runs once the child has exited.
func (c *child) cleanup() {
	c.stdin.Close()
	c.drain(time.Second)
}

// exitStatus describes how the child ended ("exit status 1", "signal:
// killed").
func (c *child) exitStatus() string {
	if c.waitErr != nil {
		return c.waitErr.Error()
	}
	return c.state.String()
}

// findProgram returns the path of the executable file p, searching $PATH
// when p has no slash, as a shell would.
func findProgram(p string) (string, error) {
	isExec := func(f string) error {
		fi, err := os.Stat(f)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return errfmt.Errorf("%s is not an executable file", f)
		}
		return nil
	}
	if strings.Contains(p, "/") {
		return p, isExec(p)
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			continue
		}
		if f := filepath.Join(dir, p); isExec(f) == nil {
			if !filepath.IsAbs(f) {
				return "", errfmt.Errorf("%s found in a relative $PATH entry; give an absolute path", p)
			}
			return f, nil
		}
	}
	return "", errfmt.Errorf("program %q not found in $PATH", p)
}
