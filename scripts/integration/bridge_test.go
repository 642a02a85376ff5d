package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
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

// tcpConn is one TCP socket of a process.
type tcpConn struct {
	Local, Remote netip.AddrPort
	State         string // /proc/net/tcp's hex state: 01 established, 02 SYN_SENT, 0A listen
}

// processTCP lists the TCP sockets pid holds: its fds' socket inodes,
// looked up in /proc/PID/net/tcp and tcp6.
func processTCP(pid int) ([]tcpConn, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []tcpConn
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || !inodes[fl[9]] {
				continue
			}
			out = append(out, tcpConn{Local: procAddr(fl[1]), Remote: procAddr(fl[2]), State: fl[3]})
		}
		f.Close()
	}
	return out, nil
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90" (host-order words).
func procAddr(s string) netip.AddrPort {
	h, p, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(p, 16, 16)
	b, _ := hex.DecodeString(h)
	for i := 0; i+4 <= len(b); i += 4 { // each 32-bit word is in host (little-endian) order
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}

// children returns the pids of pid's child processes.
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// peerWatch samples, until stopped, the remote ends of the outgoing TCP
// connections of a process and of its children: sockets whose local port
// is not one of the process's listening ports.
type peerWatch struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	own   map[netip.AddrPort]bool // the process's own peers
	child map[netip.AddrPort]bool // its children's peers
}

func watchPeers(pid int) *peerWatch {
	w := &peerWatch{stopc: make(chan struct{}), done: make(chan struct{}), own: map[netip.AddrPort]bool{}, child: map[netip.AddrPort]bool{}}
	sample := func(pid int, into map[netip.AddrPort]bool) {
		conns, err := processTCP(pid)
		if err != nil {
			return
		}
		listening := map[uint16]bool{}
		for _, c := range conns {
			if c.State == "0A" {
				listening[c.Local.Port()] = true
			}
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, c := range conns {
			if c.State != "0A" && !listening[c.Local.Port()] && c.Remote.Port() != 0 {
				into[c.Remote] = true
			}
		}
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			sample(pid, w.own)
			for _, c := range children(pid) {
				sample(c, w.child)
			}
			select {
			case <-w.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// stop ends the sampling and returns the peers seen.
func (w *peerWatch) stop() (own, child []netip.AddrPort) {
	close(w.stopc)
	<-w.done
	for a := range w.own {
		own = append(own, a)
	}
	for a := range w.child {
		child = append(child, a)
	}
	return own, child
}

// bridgeLine returns the network's Bridge line value for key, or skips.
func bridgeLine(t *testing.T, n *Network, key string) (line string, addr netip.AddrPort) {
	t.Helper()
	// testnet.env values hold no white space: commas stand for spaces.
	line = strings.ReplaceAll(n.Env[key], ",", " ")
	if line == "" {
		t.Fatalf("the test network has no %s: scripts/testnet must start with bridges", key)
	}
	f := strings.Fields(line)
	i := 0
	if !strings.Contains(f[0], ":") {
		i = 1
	}
	ap, err := netip.ParseAddrPort(f[i])
	if err != nil {
		t.Fatalf("%s=%q: %v", key, line, err)
	}
	return line, ap
}

// mustGetMarker fetches the marker page through p and checks it.
func mustGetMarker(t *testing.T, p *tinytorProc, n *Network, u string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	resp, err := Get(ctx, p.socks, u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resp.Body), n.Marker) {
		t.Fatalf("GET %s: no marker in %q", u, resp.Body)
	}
}

// TestTinytorBridgePlain: with UseBridges 1 and a plain bridge, tinytor
// bootstraps and fetches the marker, and its only outgoing connections go
// to the bridge.
func TestTinytorBridgePlain(t *testing.T) {
	n := RequireNetwork(t)
	line, addr := bridgeLine(t, n, "TESTNET_BRIDGE_PLAIN")
	ctl, metricsAddr := freePort(t), freePort(t)
	dataDir := t.TempDir()
	p := startTinytor(t, n, tinytorBinary(t, ""), dataDir, nil, "UseBridges 1", "Bridge "+line,
		"ControlPort "+ctl.String(), "MetricsPort "+metricsAddr.String())
	w := watchPeers(p.cmd.Process.Pid)
	p.waitFor("Bootstrapped 100%", 3*time.Minute)
	mustGetMarker(t, p, n, n.URLMarker)

	// The bridge on the control port and the metrics page.
	c := dialControl(t, ctl)
	c.cmd("AUTHENTICATE")
	fp := strings.ToUpper(n.Env["TESTNET_BRIDGE_PLAIN_FINGERPRINT"])
	if got := strings.Join(c.cmd("GETINFO downloads/bridge/bridges"), "\n"); !strings.Contains(got, "="+fp) {
		t.Errorf("GETINFO downloads/bridge/bridges: %q, want %s", got, fp)
	}
	if got := strings.Join(c.cmd("GETINFO downloads/bridge/"+fp), "\n"); !strings.Contains(got, "n-download-failures 0") || !strings.Contains(got, "schedule DL_SCHED_BRIDGE") {
		t.Errorf("GETINFO downloads/bridge/%s: %q", fp, got)
	}
	if got := strings.Join(c.cmd("GETINFO entry-guards"), "\n"); !strings.Contains(got, "$"+fp+"~bridgeplain up") {
		t.Errorf("GETINFO entry-guards: %q, want the bridge, up", got)
	}
	page := scrape(t, metricsAddr)
	if v := metricValue(t, page, "tinytor_bridges_usable"); v != 1 {
		t.Errorf("tinytor_bridges_usable = %v, want 1", v)
	}
	own, child := w.stop()
	p.stop()
	state, err := os.ReadFile(filepath.Join(dataDir, "guards"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(state), "Guard in=bridges rsa_id="+fp) {
		t.Errorf("the state file does not keep the bridge as a guard:\n%s", state)
	}
	t.Logf("outgoing connections seen: %v (children: %v)", own, child)
	if len(own) == 0 {
		t.Fatal("no outgoing connection seen")
	}
	for _, a := range own {
		if a != addr {
			t.Errorf("tinytor connected to %s; with UseBridges 1 only the bridge %s may be contacted", a, addr)
		}
	}
}

// TestTinytorBridgeConfigErrors: a malformed Bridge line and a missing
// transport binary stop tinytor with a clear error.
func TestTinytorBridgeConfigErrors(t *testing.T) {
	n := RequireNetwork(t)
	bin := tinytorBinary(t, "")
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{[]string{"UseBridges 1", "Bridge 127.0.0.1"}, "Bridge: bridge address"},
		{[]string{"UseBridges 1", "Bridge obfs4 127.0.0.1:9 cert=x"}, `uses the transport "obfs4", but no ClientTransportPlugin line provides it`},
		{[]string{"UseBridges 1", "Bridge obfs4 127.0.0.1:9 cert=x", "ClientTransportPlugin obfs4 exec /nonexistent/obfs4proxy"}, "/nonexistent/obfs4proxy"},
	} {
		p := startTinytor(t, n, bin, "", nil, tc.lines...)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("%q: tinytor still runs after 30 s", tc.lines)
		}
		log := strings.Join(p.log(), "\n")
		if !strings.Contains(log, tc.want) {
			t.Errorf("%q: log lacks %q:\n%s", tc.lines, tc.want, log)
		}
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.ExitStatus() == 0 {
			t.Errorf("%q: exit status %v, want non-zero", tc.lines, p.cmd.ProcessState)
		}
	}
}

// timeTo100 returns how long after its first log line a tinytor log
// reached "Bootstrapped 100%" (from the process start: measured by the
// caller).
func waitBootstrapped(t *testing.T, p *tinytorProc, start time.Time) time.Duration {
	p.waitFor("Bootstrapped 100%", 3*time.Minute)
	return time.Since(start)
}

// TestTinytorBridgeObfs4: through an obfs4 bridge with Debian's
// obfs4proxy as a managed transport, tinytor bootstraps, fetches the
// marker, the 64 MiB file and the onion service; its only outgoing
// connections go to the transport's listener, and the transport's only to
// the bridge's obfs4 port. Killing the transport mid-download: tinytor
// restarts it and the next request succeeds. Restarting the bridge:
// tinytor reconnects. A warm restart reaches 100% from the cache, without
// fetching a consensus. Times to 100% are compared with C tor's.
func TestTinytorBridgeObfs4(t *testing.T) {
	n := RequireNetwork(t)
	pt := requireTool(t, "obfs4proxy")
	line, addr := bridgeLine(t, n, "TESTNET_BRIDGE_OBFS4")
	dataDir := t.TempDir()
	lines := []string{"UseBridges 1", "ClientTransportPlugin obfs4 exec " + pt, "Bridge " + line}
	bin := tinytorBinary(t, "")
	start := time.Now()
	metricsAddr := freePort(t)
	p := startTinytor(t, n, bin, dataDir, nil, append(lines, "MetricsPort "+metricsAddr.String())...)
	w := watchPeers(p.cmd.Process.Pid)
	cold := waitBootstrapped(t, p, start)
	mustGetMarker(t, p, n, n.URLMarker)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resp, err := Get(ctx, p.socks, n.File64M.URL)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(resp.Body); sum != n.File64M.SHA256 {
		t.Fatalf("64 MiB file: %d bytes with sha256 %x, want %x", len(resp.Body), sum, n.File64M.SHA256)
	}
	mustGetMarker(t, p, n, "http://"+n.Onion+"/")
	own, child := w.stop()
	t.Logf("tinytor's outgoing connections: %v; the transport's: %v", own, child)
	kids := children(p.cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("tinytor has %d child processes, want the one transport", len(kids))
	}
	ptListen := map[netip.AddrPort]bool{}
	if conns, err := processTCP(kids[0]); err == nil {
		for _, c := range conns {
			if c.State == "0A" {
				ptListen[c.Local] = true
			}
		}
	}
	for _, a := range own {
		if !ptListen[a] {
			t.Errorf("tinytor connected to %s, which is not the transport's listener %v", a, ptListen)
		}
	}
	if len(child) == 0 {
		t.Error("the transport made no connection")
	}
	for _, a := range child {
		if a != addr {
			t.Errorf("the transport connected to %s; only the obfs4 bridge %s may be contacted", a, addr)
		}
	}

	// The transport dies mid-download.
	dl := make(chan error, 1)
	go func() {
		_, err := Get(ctx, p.socks, n.File64M.URL)
		dl <- err
	}()
	time.Sleep(500 * time.Millisecond) // let the download start: what is killed is a busy transport
	from := len(p.log())
	if err := syscall.Kill(kids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("download during the transport's death: %v", <-dl)
	i := p.waitForAfter("restarting it in", from, time.Minute)
	t.Logf("tinytor: %s", p.log()[i])
	p.waitForAfter("configured: obfs4", i, time.Minute)
	mustGetMarker(t, p, n, n.URLMarker)
	if k := children(p.cmd.Process.Pid); len(k) != 1 || k[0] == kids[0] {
		t.Errorf("children after the restart: %v (the killed one was %d)", k, kids[0])
	}
	page := scrape(t, metricsAddr)
	if v := metricValue(t, page, "tinytor_transport_restarts_total"); v != 1 {
		t.Errorf("tinytor_transport_restarts_total = %v, want 1", v)
	}
	if v := metricValue(t, page, "tinytor_transports_running"); v != 1 {
		t.Errorf("tinytor_transports_running = %v, want 1", v)
	}

	// The bridge restarts.
	restartBridge(t, n, "TESTNET_BRIDGE_OBFS4_NAME")
	mustGetMarker(t, p, n, n.URLMarker)

	// A warm restart.
	p.stop()
	start = time.Now()
	p2 := startTinytor(t, n, bin, dataDir, nil, lines...)
	warm := waitBootstrapped(t, p2, start)
	for _, l := range p2.log() {
		if strings.Contains(l, "Downloaded a consensus") {
			t.Errorf("warm restart downloaded a consensus: %s", l)
		}
	}
	mustGetMarker(t, p2, n, n.URLMarker)

	ctorCold, ctorWarm := ctorBridgeBootstrap(t, n, pt, line)
	t.Logf("time to 100%% through obfs4: tinytor cold %.1f s, warm %.1f s; C tor cold %.1f s, warm %.1f s",
		cold.Seconds(), warm.Seconds(), ctorCold.Seconds(), ctorWarm.Seconds())
}

// restartBridge restarts the network's bridge named by the env key.
func restartBridge(t *testing.T, n *Network, key string) {
	t.Helper()
	name := n.Env[key]
	if name == "" {
		t.Fatalf("the test network has no %s", key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := testSuite.launcher.command(ctx, "restart", n.Dir, name).Run(); err != nil {
		t.Fatalf("scripts/testnet restart %s: %v", name, err)
	}
}

// ctorBridgeBootstrap runs a fresh C tor client through the obfs4 bridge,
// then again on the same DataDirectory, and returns both times to 100%.
func ctorBridgeBootstrap(t *testing.T, n *Network, pt, line string) (cold, warm time.Duration) {
	t.Helper()
	frag, err := os.ReadFile(n.TorrcFragment)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	torrc := filepath.Join(dir, "torrc")
	conf := string(frag) + fmt.Sprintf("\nDataDirectory %s\nSocksPort 0\nLog notice stdout\nUseBridges 1\nClientTransportPlugin obfs4 exec %s\nBridge %s\n", filepath.Join(dir, "data"), pt, line)
	if err := os.WriteFile(torrc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "tor", "-f", torrc, "--defaults-torrc", os.DevNull)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cmd.Process.Signal(syscall.SIGINT)
			cmd.Wait()
		}()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Bootstrapped 100%") {
				return time.Since(start)
			}
		}
		t.Fatalf("C tor did not bootstrap through the obfs4 bridge")
		return 0
	}
	cold = run()
	warm = run()
	return cold, warm
}
