package pt

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tinytor/tor/torlog"
)

// logBuf collects log output and lets a test wait for a line.
type logBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newLogBuf() *logBuf { return &logBuf{changed: make(chan struct{})} }

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wait waits until the log contains all of subs.
func (l *logBuf) wait(t *testing.T, subs ...string) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		s, ch := l.b.String(), l.changed
		l.mu.Unlock()
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(s, sub)
		}
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("log never contained %q; log:\n%s", subs, s)
		}
	}
}

// echoServer accepts connections on 127.0.0.1 and echoes them.
func echoServer(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

type fake struct {
	m     *Managed
	dir   string // where the fake records
	state string
	log   *logBuf

	mu     sync.Mutex
	events []Event
}

// reexec reports whether this test binary can be run again as a process
// of its own: not under qemu-user (make test-cross runs go test -exec
// qemu-...-static), where the kernel cannot run the foreign binary.
var reexec = sync.OnceValue(func() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return exec.Command(exe, "-test.run=^$").Run()
})

// startFake starts the test binary as a transport proxy in mode.
func startFake(t *testing.T, mode string, names []string, tweak func(*Config)) *fake {
	t.Helper()
	if err := reexec(); errors.Is(err, syscall.ENOEXEC) {
		t.Skipf("the fake transport is this test binary, which cannot run outside the emulator here: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{dir: t.TempDir(), state: filepath.Join(t.TempDir(), "pt_state"), log: newLogBuf()}
	cfg := Config{
		Transports: names,
		Path:       exe,
		Args:       []string{"fakept", mode, f.dir},
		StateDir:   f.state,
		Log:        torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: f.log}),
		OnEvent: func(e Event) {
			f.mu.Lock()
			f.events = append(f.events, e)
			f.mu.Unlock()
		},
		// The race detector otherwise makes every exit take a second.
		Env:        []string{"PATH=/usr/bin:/bin", "KEEP=1", "TOR_PT_STALE=1", "GORACE=atexit_sleep_ms=0"},
		Grace:      500 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	t.Cleanup(func() { m.Close() })
	return f
}

func tctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// waitState waits until cond holds on m's state.
func waitState(t *testing.T, m *Managed, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		ok, ch := cond(), m.changed
		m.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo through the transport: %q, %v", got, err)
	}
}

// authRecords returns what the fake's SOCKS server saw in the auth fields.
func authRecords(t *testing.T, dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "auth-*"))
	var recs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fields []string
		for _, h := range strings.Fields(string(b)) {
			d, _ := hex.DecodeString(h)
			fields = append(fields, string(d))
		}
		recs = append(recs, strings.Join(fields, "|"))
	}
	return recs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestLaunchDialClose(t *testing.T) {
	f := startFake(t, "ok", []string{"fake", "unknown"}, nil)
	meth, err := f.m.Method(tctx(t, 20*time.Second), "fake")
	if err != nil {
		t.Fatal(err)
	}
	if meth.SOCKS != 5 || meth.Transport != "fake" || !meth.Addr.Addr().IsLoopback() {
		t.Errorf("method %+v", meth)
	}
	st := f.m.Status()
	if len(st) != 2 || st[0].State != Running || st[0].PID == 0 || st[0].Restarts != 0 || !st[0].Managed {
		t.Errorf("status %+v", st)
	}
	if st[1].State != Failed || !strings.Contains(st[1].LastError, "not in its CMETHOD lines") {
		t.Errorf("status of a transport the program ignores: %+v", st[1])
	}
	pid := st[0].PID

	// The environment pt-spec asks for, on top of the inherited one
	// without stale TOR_PT_ variables.
	env, err := os.ReadFile(filepath.Join(f.dir, "env-"+strconv.Itoa(pid)))
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := strings.Join([]string{
		"KEEP=1",
		"TOR_PT_CLIENT_TRANSPORTS=fake,unknown",
		"TOR_PT_EXIT_ON_STDIN_CLOSE=1",
		"TOR_PT_MANAGED_TRANSPORT_VER=1",
		"TOR_PT_STATE_LOCATION=" + f.state + "/",
	}, "\n")
	if string(env) != wantEnv {
		t.Errorf("child environment:\n%s\nwant:\n%s", env, wantEnv)
	}
	if fi, err := os.Stat(f.state); err != nil || !fi.IsDir() {
		t.Errorf("state directory not created: %v", err)
	}

	// Arguments reach the transport, escaped, in the SOCKS5 username with
	// a NUL password.
	target := echoServer(t)
	c, err := meth.Dial(tctx(t, 10*time.Second), target, []KV{{"cert", `AB=C;D\E`}, {"iat-mode", "0"}})
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "hello")
	// Long arguments spill into the password.
	long := strings.Repeat("x", 400)
	c, err = f.m.Dial(tctx(t, 10*time.Second), "fake", target, []KV{{"k", long}})
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "again")
	// No arguments: no authentication.
	c, err = meth.Dial(tctx(t, 10*time.Second), target, nil)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "noargs")
	recs := authRecords(t, f.dir)
	enc := "k=" + long
	for _, want := range []string{`cert=AB\=C\;D\\E;iat-mode=0|` + "\x00", enc[:255] + "|" + enc[255:], ""} {
		if !contains(recs, want) {
			t.Errorf("transport did not receive auth %q; got %q", want, recs)
		}
	}
	if _, err := meth.Dial(tctx(t, 10*time.Second), target, []KV{{"k", strings.Repeat("y", 600)}}); err == nil ||
		!strings.Contains(err.Error(), "more than the 510") {
		t.Errorf("over-long arguments: err = %v", err)
	}

	// stdout and stderr lines reach the log, LOG and STATUS the events.
	f.log.wait(t,
		"[info] Managed proxy at '"+f.m.cfg.Path+"' reported via standard error: fake stderr line",
		`[notice] Managed proxy '`+f.m.cfg.Path+`': hello "world"`,
		"[notice] Unknown line received by managed proxy",
		"BOGUS this line is unknown")
	f.mu.Lock()
	events := f.events
	f.mu.Unlock()
	if len(events) != 2 || events[0].Type != "LOG" || events[0].Args[0] != (KV{"PT", f.m.cfg.Path}) ||
		events[0].Args[2] != (KV{"MESSAGE", `hello "world"`}) ||
		events[1].Type != "STATUS" || events[1].Args[3] != (KV{"CONNECT", "Success"}) {
		t.Errorf("events %+v", events)
	}

	if st := f.m.Status()[0]; st.Restarts != 0 || st.PID != pid {
		t.Errorf("child did not stay up with its stdin held open: %+v", st)
	}
	if err := f.m.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Errorf("child %d still exists after Close", pid)
	}
	if _, err := f.m.Method(context.Background(), "fake"); !errors.Is(err, ErrClosed) {
		t.Errorf("Method after Close: %v", err)
	}
	if strings.Contains(f.log.String(), "sending") {
		t.Errorf("child needed a signal to exit although it exits on stdin close:\n%s", f.log)
	}
}

func TestSOCKS4Method(t *testing.T) {
	f := startFake(t, "ok", []string{"fake4"}, nil)
	meth, err := f.m.Method(tctx(t, 20*time.Second), "fake4")
	if err != nil {
		t.Fatal(err)
	}
	if meth.SOCKS != 4 {
		t.Fatalf("method %+v", meth)
	}
	c, err := meth.Dial(tctx(t, 10*time.Second), echoServer(t), []KV{{"a", "1"}, {"b", "x;y"}})
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "four")
	if recs := authRecords(t, f.dir); !contains(recs, `a=1;b=x\;y`) {
		t.Errorf("SOCKS4 user ID: %q", recs)
	}
}

func TestProxyEnv(t *testing.T) {
	f := startFake(t, "ok", []string{"fake"}, func(c *Config) { c.Proxy = "socks5://u:p@127.0.0.1:1080" })
	if _, err := f.m.Method(tctx(t, 20*time.Second), "fake"); err != nil {
		t.Fatal(err)
	}
	env, _ := os.ReadFile(filepath.Join(f.dir, "env-"+strconv.Itoa(f.m.Status()[0].PID)))
	if !strings.Contains(string(env), "\nTOR_PT_PROXY=socks5://u:p@127.0.0.1:1080") {
		t.Errorf("no TOR_PT_PROXY in %s", env)
	}

	g := startFake(t, "noproxydone", []string{"fake"}, func(c *Config) { c.Proxy = "http://127.0.0.1:3128" })
	_, err := g.m.Method(tctx(t, 20*time.Second), "fake")
	if err == nil || !strings.Contains(err.Error(), "no PROXY DONE") {
		t.Fatalf("transport that ignores the proxy: err = %v", err)
	}
}

func TestCMethodError(t *testing.T) {
	f := startFake(t, "ok", []string{"broken", "fake"}, nil)
	if _, err := f.m.Method(tctx(t, 20*time.Second), "fake"); err != nil {
		t.Fatal(err)
	}
	_, err := f.m.Method(tctx(t, time.Second), "broken")
	if err == nil || !strings.Contains(err.Error(), "no rocks available") || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Method(broken) = %v, want the CMETHOD-ERROR message at once", err)
	}
	st := f.m.Status()
	if st[0].State != Failed || st[1].State != Running {
		t.Errorf("status %+v", st)
	}
	f.log.wait(t, "[warn] Client managed proxy '"+f.m.cfg.Path+"' encountered a method error. (broken no rocks available)")
	if _, err := f.m.Method(context.Background(), "obfs4"); err == nil {
		t.Error("Method for a transport not in the line succeeded")
	}
}

func TestVersionError(t *testing.T) {
	f := startFake(t, "versionerror", []string{"fake"}, nil)
	_, err := f.m.Method(tctx(t, 20*time.Second), "fake")
	if err == nil || !strings.Contains(err.Error(), "VERSION-ERROR no-version") {
		t.Fatalf("err = %v", err)
	}
	st := f.m.Status()[0]
	if st.State != Failed || st.Restarts != 0 || st.PID != 0 {
		t.Errorf("status %+v", st)
	}
	f.log.wait(t, "[warn] Managed proxy '"+f.m.cfg.Path+"' failed the configuration protocol and will not be restarted")
}

func TestCrashRestart(t *testing.T) {
	f := startFake(t, "ok", []string{"fake"}, nil)
	target := echoServer(t)
	for i := 1; i <= 2; i++ {
		meth, err := f.m.Method(tctx(t, 20*time.Second), "fake")
		if err != nil {
			t.Fatal(err)
		}
		pid := f.m.Status()[0].PID
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitState(t, f.m, "restart", func() bool {
			_, ok := f.m.methods["fake"]
			return f.m.restarts == i && ok
		})
		if !gone(pid) {
			t.Errorf("killed child %d was not reaped", pid)
		}
		st := f.m.Status()[0]
		if st.PID == pid || st.State != Running || !strings.Contains(st.LastError, "signal: killed") {
			t.Errorf("status after restart %d: %+v", i, st)
		}
		if meth2, _ := f.m.Method(context.Background(), "fake"); meth2 == meth {
			t.Errorf("same listener after restart: %v", meth)
		}
		c, err := f.m.Dial(tctx(t, 10*time.Second), "fake", target, []KV{{"n", strconv.Itoa(i)}})
		if err != nil {
			t.Fatal(err)
		}
		echo(t, c, "after restart")
	}
	// The backoff doubles for a child that keeps dying.
	f.log.wait(t, "[warn] Managed proxy '"+f.m.cfg.Path+"' (fake): process terminated (signal: killed); restarting it in 50ms.",
		"restarting it in 100ms.")
}

func TestNoDone(t *testing.T) {
	f := startFake(t, "nodone", []string{"fake"}, func(c *Config) {
		c.StartTimeout = 300 * time.Millisecond
		c.MinBackoff = time.Minute
	})
	var pid int
	waitState(t, f.m, "launch", func() bool { pid = f.m.pid; return pid != 0 })
	_, err := f.m.Method(tctx(t, 20*time.Second), "never")
	if err == nil {
		t.Fatal("Method for an unknown name succeeded")
	}
	waitState(t, f.m, "timeout", func() bool { return f.m.lastErr != nil })
	_, err = f.m.Method(tctx(t, 100*time.Millisecond), "fake")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no CMETHODS DONE within 300ms") {
		t.Fatalf("err = %v", err)
	}
	if !gone(pid) {
		t.Errorf("child %d that never finished configuring still exists", pid)
	}
	if st := f.m.Status()[0]; st.State != Launching || st.PID != 0 {
		t.Errorf("status while waiting to restart: %+v", st)
	}
}

func TestCloseStubborn(t *testing.T) {
	f := startFake(t, "stubborn", []string{"stub"}, func(c *Config) { c.Grace = 200 * time.Millisecond })
	if _, err := f.m.Method(tctx(t, 20*time.Second), "stub"); err != nil {
		t.Fatal(err)
	}
	pid := f.m.Status()[0].PID
	f.m.Close()
	if !gone(pid) {
		t.Fatalf("child %d survived Close", pid)
	}
	f.log.wait(t, "sending terminated", "sending killed")
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Transports: []string{"obfs4"}, Path: "/nonexistent/obfs4proxy", StateDir: dir}, "/nonexistent/obfs4proxy"},
		{Config{Transports: []string{"obfs4"}, Path: "no-such-transport-program", StateDir: dir}, "not found"},
		{Config{Transports: []string{"obfs-4"}, Path: "/bin/true", StateDir: dir}, "not a C identifier"},
		{Config{Transports: []string{"obfs4"}, Path: "/bin/true", StateDir: "pt_state"}, "not an absolute path"},
		{Config{Transports: []string{"obfs4"}, Path: "/bin/true", StateDir: dir, Proxy: "ftp://x"}, "unsupported upstream proxy"},
	} {
		if _, err := Start(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestExternal(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:9999")
	e, err := NewExternal([]string{"obfs4", "meek"}, 5, addr)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.Method(context.Background(), "meek")
	if err != nil || m != (Method{Transport: "meek", SOCKS: 5, Addr: addr}) {
		t.Errorf("Method = %+v, %v", m, err)
	}
	if _, err := e.Method(context.Background(), "snowflake"); err == nil {
		t.Error("unknown name accepted")
	}
	if st := e.Status(); len(st) != 2 || st[1].State != Running || st[1].Method.Transport != "meek" {
		t.Errorf("status %+v", st)
	}
	e.Close()
	if _, err := e.Method(context.Background(), "meek"); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if _, err := NewExternal([]string{"x"}, 6, addr); err == nil {
		t.Error("SOCKS 6 accepted")
	}
	var _ Provider = e
	var _ Provider = (*Managed)(nil)
}

func TestProxyURI(t *testing.T) {
	a := netip.MustParseAddrPort("[2001:db8::1]:1080")
	for _, c := range []struct{ kind, user, pass, want string }{
		{"socks4", "", "", "socks4a://[2001:db8::1]:1080"},
		{"socks5", "", "", "socks5://[2001:db8::1]:1080"},
		{"socks5", "u", "p", "socks5://u:p@[2001:db8::1]:1080"},
		{"http", "u", "p", "http://u:p@[2001:db8::1]:1080"},
	} {
		if got, err := ProxyURI(c.kind, a, c.user, c.pass); err != nil || got != c.want {
			t.Errorf("ProxyURI(%s) = %q, %v", c.kind, got, err)
		}
	}
}

func TestGoroutinesEnd(t *testing.T) {
	before := runtime.NumGoroutine()
	f := startFake(t, "ok", []string{"fake"}, nil)
	if _, err := f.m.Method(tctx(t, 20*time.Second), "fake"); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(f.m.Status()[0].PID, syscall.SIGKILL)
	waitState(t, f.m, "restart", func() bool { _, ok := f.m.methods["fake"]; return ok && f.m.restarts == 1 })
	f.m.Close()
	// Goroutine exits cannot be awaited: poll for a while.
	for i := 0; i < 100 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestLaunchFailureRetries(t *testing.T) {
	// Executable, but the kernel cannot run it: every launch fails.
	prog := filepath.Join(t.TempDir(), "pt")
	if err := os.WriteFile(prog, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	log := newLogBuf()
	m, err := Start(Config{Transports: []string{"obfs4"}, Path: prog, StateDir: t.TempDir(),
		Log: torlog.New(torlog.Sink{Min: torlog.Info, Max: torlog.Err, W: log}), MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitState(t, m, "two relaunches", func() bool { return m.restarts >= 2 })
	_, err = m.Method(tctx(t, 50*time.Millisecond), "obfs4")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "launch failed") {
		t.Errorf("err = %v", err)
	}
	if st := m.Status()[0]; st.State != Launching || !strings.Contains(st.LastError, "launch failed") {
		t.Errorf("status %+v", st)
	}
	log.wait(t, "launch failed", "restarting it in 10ms", "restarting it in 20ms")
}
