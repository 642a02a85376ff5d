package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binaries caches the tinytor builds of this test run, by GOARCH.
var binaries struct {
	sync.Mutex
	dir   string
	paths map[string]string
}

// tinytorBinary builds tinytor for goarch ("" for the host) once per run.
func tinytorBinary(t *testing.T, goarch string) string {
	t.Helper()
	binaries.Lock()
	defer binaries.Unlock()
	if p := binaries.paths[goarch]; p != "" {
		return p
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if binaries.dir == "" {
		binaries.dir, err = os.MkdirTemp("", "tinytor-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binaries.paths = map[string]string{}
	}
	out := filepath.Join(binaries.dir, "tinytor-"+goarch)
	// The flags of the Makefile's build (and cross) targets, as make
	// computes them: the binary under test is the one shipped.
	rule := `tinytor-test-flags: ; @printf '%s\n' 'ldflags=$(LDFLAGS)' $(if $(CROSS_GCFLAGS),'cross=-gcflags=$(CROSS_GCFLAGS)')`
	mk := exec.Command("make", "-s", "--no-print-directory", "--eval", rule, "tinytor-test-flags")
	mk.Dir = root
	mk.Stderr = os.Stderr
	flags, err := mk.Output()
	if err != nil {
		t.Fatalf("the Makefile's build flags (make): %v\n%s", err, flags)
	}
	args := []string{"build", "-trimpath"}
	for _, f := range strings.Split(strings.TrimSpace(string(flags)), "\n") {
		switch {
		case strings.HasPrefix(f, "ldflags="):
			args = append(args, "-"+f)
		case strings.HasPrefix(f, "-gcflags="):
			args = append(args, f)
		case strings.HasPrefix(f, "cross="):
			if goarch != "" {
				args = append(args, strings.TrimPrefix(f, "cross="))
			}
		default:
			t.Fatalf("the Makefile's build flags: unexpected %q in\n%s", f, flags)
		}
	}
	cmd := exec.Command("go", append(args, "-o", out, ".")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH="+goarch, "GOMIPS=softfloat")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building tinytor (%s): %v\n%s", goarch, err, b)
	}
	binaries.paths[goarch] = out
	return out
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return netip.MustParseAddrPort(l.Addr().String())
}

// tinytorProc is a running tinytor whose log lines are collected.
type tinytorProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	socks netip.AddrPort
	dir   string
	torrc string // path of the torrc it was started with

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
	exited  chan struct{}
}

// startTinytor runs tinytor joined to n, with its DataDirectory in
// dataDir (a new one if ""), and extra torrc lines. wrap, if given, is
// the emulator to run the binary under.
func startTinytor(t *testing.T, n *Network, bin, dataDir string, wrap []string, extra ...string) *tinytorProc {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	frag, err := os.ReadFile(n.TorrcFragment)
	if err != nil {
		t.Fatal(err)
	}
	p := &tinytorProc{t: t, socks: freePort(t), dir: dataDir, changed: make(chan struct{}), exited: make(chan struct{})}
	torrc := string(frag) + fmt.Sprintf("\nDataDirectory %s\nSocksPort %s\nLog info stdout\n", dataDir, p.socks) + strings.Join(extra, "\n") + "\n"
	torrcPath := filepath.Join(t.TempDir(), "torrc")
	p.torrc = torrcPath
	if err := os.WriteFile(torrcPath, []byte(torrc), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, wrap...), bin, "-f", torrcPath)
	p.cmd = exec.Command(args[0], args[1:]...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("tinytor log:\n%s", strings.Join(p.log(), "\n"))
		}
	})
	return p
}

func (p *tinytorProc) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// waitFor waits until a log line contains s and returns its index.
func (p *tinytorProc) waitFor(s string, timeout time.Duration) int {
	p.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		p.mu.Lock()
		for i := seen; i < len(p.lines); i++ {
			if strings.Contains(p.lines[i], s) {
				p.mu.Unlock()
				return i
			}
		}
		seen = len(p.lines)
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.exited:
			p.t.Fatalf("tinytor exited before logging %q", s)
		case <-deadline.C:
			p.t.Fatalf("tinytor did not log %q within %s", s, timeout)
		}
	}
}

// stop sends SIGTERM and waits for the process to end.
func (p *tinytorProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("tinytor did not exit within 20 s of SIGTERM")
	}
}

// openFDs counts the process's open file descriptors.
func (p *tinytorProc) openFDs() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		p.t.Fatal(err)
	}
	return len(ents)
}

// dialSOCKS5Auth is DialSOCKS5 with RFC 1929 username/password.
func dialSOCKS5Auth(ctx context.Context, proxy netip.AddrPort, user, pass, host string, port uint16) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", proxy.String())
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) (net.Conn, error) { conn.Close(); return nil, err }
	if _, err := conn.Write([]byte{5, 1, 2}); err != nil {
		return fail(err)
	}
	var b [4]byte
	if _, err := io.ReadFull(conn, b[:2]); err != nil || b[1] != 2 {
		return fail(fmt.Errorf("method choice %v: %v", b[:2], err))
	}
	auth := append([]byte{1, byte(len(user))}, user...)
	auth = append(append(auth, byte(len(pass))), pass...)
	if _, err := conn.Write(auth); err != nil {
		return fail(err)
	}
	if _, err := io.ReadFull(conn, b[:2]); err != nil || b[1] != 0 {
		return fail(fmt.Errorf("auth reply %v: %v", b[:2], err))
	}
	req := append([]byte{5, 1, 0, 3, byte(len(host))}, host...)
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := conn.Write(req); err != nil {
		return fail(err)
	}
	if _, err := io.ReadFull(conn, b[:4]); err != nil {
		return fail(err)
	}
	if b[1] != 0 {
		return fail(socksReplyError(b[1]))
	}
	if _, err := io.ReadFull(conn, make([]byte, 4+2)); err != nil {
		return fail(err)
	}
	return conn, nil
}

// getAs fetches rawURL through proxy as SOCKS user (isolation).
func getAs(ctx context.Context, proxy netip.AddrPort, user, rawURL string) (*Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(u.Port())
	conn, err := dialSOCKS5Auth(ctx, proxy, user, "x", u.Hostname(), uint16(port))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return httpGet(conn, u)
}

func bootstrapped(t *testing.T, p *tinytorProc) {
	t.Helper()
	p.waitFor("Bootstrapped 100% (done): Done", 3*time.Minute)
}

func TestTinytorBootstrapAndWarmCache(t *testing.T) {
	n := RequireNetwork(t)
	bin := tinytorBinary(t, "")
	data := t.TempDir()
	start := time.Now()
	p := startTinytor(t, n, bin, data, nil)
	done := p.waitFor("Bootstrapped 100% (done): Done", 3*time.Minute)
	t.Logf("cold bootstrap: %.2f s", time.Since(start).Seconds())
	cold := p.log()[:done]
	if !containsLine(cold, "Downloaded a consensus") {
		t.Fatalf("cold start reached 100%% without downloading a consensus:\n%s", strings.Join(cold, "\n"))
	}
	p.stop()

	start = time.Now()
	p2 := startTinytor(t, n, bin, data, nil)
	done = p2.waitFor("Bootstrapped 100% (done): Done", 3*time.Minute)
	t.Logf("warm bootstrap: %.2f s", time.Since(start).Seconds())
	warm := p2.log()[:done]
	if containsLine(warm, "Downloaded a consensus") {
		t.Fatalf("warm start downloaded the consensus again before 100%%:\n%s", strings.Join(warm, "\n"))
	}
	if !containsLine(warm, "Loaded a cached consensus") {
		t.Fatalf("warm start did not use the cache:\n%s", strings.Join(warm, "\n"))
	}
	// And it works.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := Get(ctx, p2.socks, n.URLMarker)
	if err != nil || !strings.Contains(string(resp.Body), n.Marker) {
		t.Fatalf("marker after warm start: %v", err)
	}
}

func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func TestTinytorCurl(t *testing.T) {
	n := RequireNetwork(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil)
	bootstrapped(t, p)
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"-sS", "--fail", "--max-time", "120"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		return out
	}
	for _, mode := range []string{"--socks5-hostname", "--socks4a"} {
		body := run(mode, p.socks.String(), n.URLMarker)
		if !strings.Contains(string(body), n.Marker) {
			t.Errorf("curl %s: marker missing from %q", mode, body)
		}
	}
	for _, f := range []File{n.File1M, n.File64M} {
		body := run("--socks5-hostname", p.socks.String(), f.URL)
		if got := sha256.Sum256(body); got != f.SHA256 {
			t.Errorf("%s: %d bytes, sha256 %x, want %x", f.URL, len(body), got, f.SHA256)
		}
	}
}

func TestTinytorIsolation(t *testing.T) {
	n := RequireNetwork(t)
	ctlAddr := freePort(t)
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil, "ControlPort "+ctlAddr.String(), "CookieAuthentication 0")
	bootstrapped(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Each stream's circuit, from its STREAM SUCCEEDED event.
	conn, err := net.DialTimeout("tcp", ctlAddr.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(3 * time.Minute))
	ctl := &refControl{conn: conn, r: bufio.NewReader(conn)}
	ctl.command(t, "AUTHENTICATE")
	ctl.command(t, "SETEVENTS STREAM")
	u, err := url.Parse(n.URLEcho)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	if u.Port() == "" {
		target += ":80"
	}
	exits := map[string]bool{}
	circuitOf := func(user string) string {
		t.Helper()
		resp, err := getAs(ctx, p.socks, user, n.URLEcho)
		if err != nil {
			t.Fatalf("echo as %q: %v", user, err)
		}
		exits[strings.TrimSpace(string(resp.Body))] = true
		return ctl.streamCircuit(t, target)
	}
	// One username: every stream shares one circuit.
	alice := circuitOf("alice")
	for i := 0; i < 5; i++ {
		if c := circuitOf("alice"); c != alice {
			t.Fatalf("one SOCKS username used circuits %s and %s; want one circuit", alice, c)
		}
	}
	// Distinct usernames: distinct circuits (which exits they pick is
	// chance, so the exits are only logged).
	used := map[string]string{alice: "alice"}
	for i := 0; i < 8; i++ {
		user := fmt.Sprintf("user%d", i)
		c := circuitOf(user)
		if other, ok := used[c]; ok {
			t.Fatalf("SOCKS users %s and %s shared circuit %s: streams were not isolated", other, user, c)
		}
		used[c] = user
	}
	t.Logf("circuits of 9 isolated users: %v; exits seen: %v", used, exits)
}

func TestTinytorConcurrentStreams(t *testing.T) {
	n := RequireNetwork(t)
	ctlAddr, metricsAddr := freePort(t), freePort(t)
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil,
		"ControlPort "+ctlAddr.String(), "CookieAuthentication 0", "MetricsPort "+metricsAddr.String())
	bootstrapped(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Warm up so the baseline includes the channels and the circuit.
	if _, err := Get(ctx, p.socks, n.URLMarker); err != nil {
		t.Fatal(err)
	}
	ctl := dialControl(t, ctlAddr)
	if r := ctl.cmd("AUTHENTICATE"); r[len(r)-1] != "250 OK" {
		t.Fatalf("AUTHENTICATE: %q", r)
	}
	circuits := func() int {
		r := ctl.cmd("GETINFO circuit-status")
		return strings.Count(strings.Join(r, "\n"), " BUILT ")
	}
	goroutines := func() float64 { return metricValue(t, scrape(t, metricsAddr), "go_goroutines") }
	baseFDs, baseCircs, baseGo := p.openFDs(), circuits(), goroutines()

	const N = 200
	errs := make(chan error, N)
	var wg sync.WaitGroup
	for i := 0; i < N; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := Get(ctx, p.socks, n.URLMarker)
			if err == nil && !strings.Contains(string(resp.Body), n.Marker) {
				err = fmt.Errorf("marker missing")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("stream failed: %v", err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent streams failed", failed, N)
	}
	// Every stream and client connection is gone; fds, goroutines and
	// circuits return to the baseline (a prebuilt circuit may come and go).
	deadline := time.Now().Add(30 * time.Second)
	for {
		fds, gor, circs := p.openFDs(), goroutines(), circuits()
		streams := ctl.cmd("GETINFO stream-status")
		noStreams := len(streams) == 2 && streams[0] == "250-stream-status=" || len(streams) == 1 && streams[0] == "250-stream-status="
		if fds <= baseFDs+3 && gor <= baseGo+10 && circs <= baseCircs+2 && noStreams {
			t.Logf("after %d streams: fds %d -> %d, goroutines %.0f -> %.0f, circuits %d -> %d, streams %q",
				N, baseFDs, fds, baseGo, gor, baseCircs, circs, streams)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after %d streams: fds %d -> %d, goroutines %.0f -> %.0f, circuits %d -> %d, streams %q",
				N, baseFDs, fds, baseGo, gor, baseCircs, circs, streams)
		}
		time.Sleep(200 * time.Millisecond) // polling counts that have no event
	}
}

func TestTinytorMipsUnderQemu(t *testing.T) {
	n := RequireNetwork(t)
	qemu, err := exec.LookPath("qemu-mips-static")
	if err != nil {
		if os.Getenv("TINYTOR_REQUIRE_TESTNET") == "1" {
			t.Fatal("qemu-mips-static not installed (apt-get install qemu-user-static)")
		}
		t.Skip("qemu-mips-static not installed")
	}
	p := startTinytor(t, n, tinytorBinary(t, "mips"), "", []string{qemu})
	bootstrapped(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := Get(ctx, p.socks, n.File1M.URL)
	if err != nil {
		t.Fatalf("1 MiB through big-endian mips tinytor: %v", err)
	}
	if sha256.Sum256(resp.Body) != n.File1M.SHA256 {
		t.Fatalf("1 MiB through mips tinytor: sha256 mismatch (%d bytes)", len(resp.Body))
	}
}

func TestTinytorReload(t *testing.T) {
	n := RequireNetwork(t)
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil)
	bootstrapped(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	orig, err := os.ReadFile(p.torrc)
	if err != nil {
		t.Fatal(err)
	}
	// A new SocksPort opens on SIGHUP.
	second := freePort(t)
	if err := os.WriteFile(p.torrc, append(orig, "SocksPort "+second.String()+"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitFor("Opened Socks listener connection (ready) on "+second.String(), time.Minute)
	if resp, err := Get(ctx, second, n.URLMarker); err != nil || !strings.Contains(string(resp.Body), n.Marker) {
		t.Fatalf("marker through the new SocksPort: %v", err)
	}
	// A bad torrc keeps the running configuration and says why.
	if err := os.WriteFile(p.torrc, append(orig, "NoSuchOption 1\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	i := p.waitFor("Restoring previous configuration", time.Minute)
	if !strings.Contains(p.log()[i], "NoSuchOption") {
		t.Errorf("the reload failure does not name the bad option: %s", p.log()[i])
	}
	for _, port := range []netip.AddrPort{p.socks, second} {
		if _, err := Get(ctx, port, n.URLMarker); err != nil {
			t.Fatalf("after a bad reload, SocksPort %s: %v", port, err)
		}
	}
	// Removing the second SocksPort closes it.
	if err := os.WriteFile(p.torrc, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitFor("Closing no-longer-configured Socks listener on "+second.String(), time.Minute)
	if c, err := net.DialTimeout("tcp", second.String(), 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("SocksPort %s still accepts connections after it was removed", second)
	}
}
