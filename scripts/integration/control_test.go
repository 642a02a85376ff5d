package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Control port and metrics port tests: stem, nyx and promtool against
// tinytor, and the spec's replies to bad authentication.

const controlPassword = "tinytor integration password"

// requireTool returns the path of an external program the test needs. A
// missing one skips the test, or fails it with TINYTOR_REQUIRE_TESTNET=1.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("TINYTOR_REQUIRE_TESTNET") == "1" {
			t.Fatalf("%s not installed (TINYTOR_REQUIRE_TESTNET=1)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// requireStem returns the Python that has stem (Debian's python3-stem).
func requireStem(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import stem").Run(); err != nil {
		if os.Getenv("TINYTOR_REQUIRE_TESTNET") == "1" {
			t.Fatalf("python3-stem not installed (TINYTOR_REQUIRE_TESTNET=1): %v", err)
		}
		t.Skipf("python3-stem not installed: %v", err)
	}
	return py
}

// controlled is a tinytor with a ControlPort (cookie and password) and a
// MetricsPort.
type controlled struct {
	*tinytorProc
	control, metrics netip.AddrPort
	cookie           string
}

func hashPassword(t *testing.T, bin, pw string) string {
	t.Helper()
	out, err := exec.Command(bin, "--hash-password", pw).Output()
	if err != nil {
		t.Fatalf("tinytor --hash-password: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func startControlled(t *testing.T, n *Network) *controlled {
	t.Helper()
	bin := tinytorBinary(t, "")
	c := &controlled{control: freePort(t), metrics: freePort(t)}
	dir := t.TempDir()
	c.cookie = filepath.Join(dir, "control_auth_cookie")
	c.tinytorProc = startTinytor(t, n, bin, dir, nil,
		"ControlPort "+c.control.String(),
		"CookieAuthentication 1",
		"HashedControlPassword "+hashPassword(t, bin, controlPassword),
		"MetricsPort "+c.metrics.String())
	c.waitFor("Opened Control listener", time.Minute)
	return c
}

// stemScript exercises tinytor through stem. Arguments: control port,
// SOCKS port, cookie path, echo URL, tinytor's pid, password.
const stemScript = `
import re, socket, sys, threading, time
from urllib.parse import urlparse
import stem, stem.connection
from stem.control import Controller, EventType

ctl_port, socks_port, cookie, echo_url, pid, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]

def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)

def fetch(url):
    u = urlparse(url)
    s = socket.create_connection(("127.0.0.1", socks_port), timeout=120)
    s.sendall(b"\x05\x01\x00")
    check(s.recv(2) == b"\x05\x00", "SOCKS5 greeting")
    host = u.hostname.encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host + (u.port or 80).to_bytes(2, "big"))
    rep = s.recv(4)
    check(rep[:2] == b"\x05\x00", "SOCKS5 connect to %s (reply %r)" % (url, rep))
    s.recv(6 if rep[3] == 1 else 18)
    s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (u.path or "/", u.netloc)).encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    return data

# Password authentication.
with Controller.from_port(port=ctl_port) as c:
    stem.connection.authenticate_password(c, password)
    check(str(c.get_version()).startswith("0.4.9.11-tinytor"), "version %s" % c.get_version())
    check(c.get_info("config-file").endswith("torrc"), "config-file")
    check("PROGRESS=100" in c.get_info("status/bootstrap-phase"), "status/bootstrap-phase")
    check(c.get_info("status/circuit-established") == "1", "status/circuit-established")
    check(c.get_info("process/pid") == pid, "process/pid")
    check(c.get_listeners(stem.control.Listener.SOCKS) == [("127.0.0.1", socks_port)], "net/listeners/socks")
    check(c.get_listeners(stem.control.Listener.CONTROL) == [("127.0.0.1", ctl_port)], "net/listeners/control")
    check(int(c.get_info("traffic/read")) > 0 and int(c.get_info("traffic/written")) > 0, "traffic/read, traffic/written")
    guards = c.get_info("entry-guards").splitlines()
    check(guards and all(re.match(r"^\$[0-9A-F]{40}~\w+ (up|never-connected|unlisted|down .+)$", g) for g in guards)
          and any(g.endswith(" up") for g in guards), "entry-guards %s" % guards)
    check(c.get_info("onions/current") == "", "onions/current")
    check(c.get_conf("CookieAuthentication") == "1", "GETCONF CookieAuthentication")
    check(c.get_conf("ORPort", "none") == "none", "GETCONF of a relay option fails")
    circs = c.get_circuits()
    check(len(circs) > 0 and all(len(ci.path) == 3 for ci in circs if ci.status == "BUILT"), "circuit-status (%d circuits)" % len(circs))
    fp = [ci for ci in circs if ci.status == "BUILT"][0].path[0][0]
    ns = c.get_network_status(fp)
    check(ns.fingerprint == fp and "Running" in ns.flags, "ns/id/%s: %s %s" % (fp, ns.nickname, ns.flags))
    md = c.get_microdescriptor(fp)
    check(md.ntor_onion_key, "md/id/%s" % fp)
    check(len(list(c.get_network_statuses())) >= 3, "ns/all")
    check(c.get_info("orconn-status") != "", "orconn-status")
    c.set_conf("MaxCircuitDirtiness", "600")
    check(c.get_conf("MaxCircuitDirtiness") == "600", "SETCONF MaxCircuitDirtiness")
    try:
        c.set_conf("ControlPort", "1")
        check(False, "SETCONF ControlPort refused")
    except stem.InvalidRequest as e:
        check("not allowed" in str(e), "SETCONF ControlPort refused: %s" % e)
    r = c.create_ephemeral_hidden_service({80: 8080}, await_publication=False)
    check(len(r.service_id) == 56 and c.get_info("onions/current") == r.service_id, "ADD_ONION %s" % r.service_id)
    check(c.remove_ephemeral_hidden_service(r.service_id), "DEL_ONION")

# Cookie authentication.
with Controller.from_port(port=ctl_port) as c:
    stem.connection.authenticate_cookie(c, cookie)
    check(c.get_info("version").startswith("0.4.9.11-tinytor"), "COOKIE authentication")

# SAFECOOKIE authentication, then events and NEWNYM.
with Controller.from_port(port=ctl_port) as c:
    stem.connection.authenticate_safecookie(c, cookie)
    # What stem.connection.authenticate() does after success; without it
    # stem does not send SETEVENTS for the listeners.
    c._post_authentication()
    check(c.get_info("version").startswith("0.4.9.11-tinytor"), "SAFECOOKIE authentication")
    lock = threading.Lock()
    circ_events, stream_events = [], []
    def on_circ(e):
        with lock:
            circ_events.append(e)
    def on_stream(e):
        with lock:
            stream_events.append(e)
    c.add_event_listener(on_circ, EventType.CIRC)
    c.add_event_listener(on_stream, EventType.STREAM)
    bw = []
    c.add_event_listener(lambda e: bw.append(e), EventType.BW)

    def fetch_circ():
        with lock:
            before = len(stream_events)
        body = fetch(echo_url)
        check(b"200" in body.split(b"\r\n")[0], "fetch through the SocksPort")
        deadline = time.time() + 30
        while time.time() < deadline:
            with lock:
                ok = [e for e in stream_events[before:] if e.status == "SUCCEEDED"]
            if ok:
                return ok[0].circ_id
            time.sleep(0.1)
        check(False, "STREAM SUCCEEDED event for the fetch")

    first = fetch_circ()
    second = fetch_circ()
    check(first == second, "two fetches share circuit %s" % first)
    with lock:
        statuses = [e.status for e in stream_events]
    check("NEW" in statuses and "SENTCONNECT" in statuses and "SUCCEEDED" in statuses, "STREAM events %s" % statuses)
    c.signal(stem.Signal.NEWNYM)
    third = fetch_circ()
    check(third != first, "after NEWNYM the fetch uses a new circuit (%s, was %s)" % (third, first))
    deadline = time.time() + 30
    while time.time() < deadline:
        with lock:
            built = [e for e in circ_events if e.status == "BUILT" and e.id == third]
        if built:
            break
        time.sleep(0.1)
    check(built and len(built[0].path) == 3, "CIRC BUILT event for circuit %s" % third)
    deadline = time.time() + 10
    while not bw and time.time() < deadline:
        time.sleep(0.1)
    check(bw, "BW events")
print("ALL OK")
`

func TestControlStem(t *testing.T) {
	n := RequireNetwork(t)
	py := requireStem(t)
	c := startControlled(t, n)
	bootstrapped(t, c.tinytorProc)
	script := filepath.Join(t.TempDir(), "stem_test.py")
	if err := os.WriteFile(script, []byte(stemScript), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script, strconv.Itoa(int(c.control.Port())), strconv.Itoa(int(c.socks.Port())),
		c.cookie, n.URLEcho, strconv.Itoa(c.cmd.Process.Pid), controlPassword)
	out, err := cmd.CombinedOutput()
	t.Logf("stem script:\n%s", out)
	if err != nil || !strings.Contains(string(out), "ALL OK") {
		t.Fatalf("stem script failed: %v", err)
	}
}

// ctlConn is a raw control connection.
type ctlConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialControl(t *testing.T, addr netip.AddrPort) *ctlConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(time.Minute))
	return &ctlConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// cmd sends line and returns the reply lines up to the EndReplyLine.
func (c *ctlConn) cmd(line string) []string {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.nc, "%s\r\n", line); err != nil {
		c.t.Fatalf("%s: %v", line, err)
	}
	var out []string
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("%s: reading reply: %v (so far %q)", line, err, out)
		}
		l = strings.TrimRight(l, "\r\n")
		out = append(out, l)
		if len(l) >= 4 && l[3] == ' ' {
			return out
		}
	}
}

// closed reports whether the server closed the connection.
func (c *ctlConn) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.br.ReadByte()
	return err == io.EOF
}

func TestControlAuthErrors(t *testing.T) {
	n := RequireNetwork(t)
	c := startControlled(t, n)

	// Commands before authentication: 514 and the connection closes.
	cc := dialControl(t, c.control)
	if got := cc.cmd("GETINFO version"); len(got) != 1 || got[0] != "514 Authentication required." {
		t.Errorf("GETINFO before AUTHENTICATE: %q", got)
	}
	if !cc.closed() {
		t.Error("connection still open after 514")
	}

	// PROTOCOLINFO lists the methods and the cookie file.
	cc = dialControl(t, c.control)
	got := cc.cmd("PROTOCOLINFO 1")
	want := []string{
		"250-PROTOCOLINFO 1",
		fmt.Sprintf("250-AUTH METHODS=COOKIE,SAFECOOKIE,HASHEDPASSWORD COOKIEFILE=%q", c.cookie),
	}
	if len(got) != 4 || got[0] != want[0] || got[1] != want[1] || !strings.HasPrefix(got[2], `250-VERSION Tor="0.4.9.11-tinytor`) || got[3] != "250 OK" {
		t.Errorf("PROTOCOLINFO:\n got %q\nwant %q ...", got, want)
	}

	// Wrong password: 515 and the connection closes.
	got = cc.cmd(`AUTHENTICATE "not the password"`)
	if len(got) != 1 || !strings.HasPrefix(got[0], "515 Authentication failed") {
		t.Errorf("wrong password: %q", got)
	}
	if !cc.closed() {
		t.Error("connection still open after a wrong password")
	}

	// No secret at all (the cookie is missing): 515.
	cc = dialControl(t, c.control)
	if got := cc.cmd("AUTHENTICATE"); len(got) != 1 || !strings.HasPrefix(got[0], "515 Authentication failed") {
		t.Errorf("AUTHENTICATE without the cookie: %q", got)
	}
	if !cc.closed() {
		t.Error("connection still open after a missing cookie")
	}

	// A wrong cookie.
	cc = dialControl(t, c.control)
	if got := cc.cmd("AUTHENTICATE " + strings.Repeat("00", 32)); len(got) != 1 || !strings.HasPrefix(got[0], "515 Authentication failed") {
		t.Errorf("wrong cookie: %q", got)
	}

	// The right password works, and so does the cookie in hex.
	cc = dialControl(t, c.control)
	if got := cc.cmd(fmt.Sprintf("AUTHENTICATE %q", controlPassword)); len(got) != 1 || got[0] != "250 OK" {
		t.Errorf("right password: %q", got)
	}
	cookie, err := os.ReadFile(c.cookie)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(c.cookie); err != nil || fi.Mode().Perm() != 0o600 || len(cookie) != 32 {
		t.Errorf("cookie file: %v, %d bytes, %v", fi.Mode(), len(cookie), err)
	}
	cc = dialControl(t, c.control)
	if got := cc.cmd(fmt.Sprintf("AUTHENTICATE %x", cookie)); len(got) != 1 || got[0] != "250 OK" {
		t.Errorf("right cookie: %q", got)
	}
	if got := cc.cmd("SIGNAL FROB"); len(got) != 1 || got[0] != `552 Unrecognized signal code "FROB"` {
		t.Errorf("SIGNAL FROB: %q", got)
	}
	if got := cc.cmd("QUIT"); len(got) != 1 || got[0] != "250 closing connection" {
		t.Errorf("QUIT: %q", got)
	}
}

// TestControlHashPasswordCTor checks that C tor accepts a password hashed
// by tinytor --hash-password.
func TestControlHashPasswordCTor(t *testing.T) {
	RequireNetwork(t)
	tor := requireTool(t, "tor")
	bin := tinytorBinary(t, "")
	ctl := freePort(t)
	dir := t.TempDir()
	torrc := filepath.Join(dir, "torrc")
	conf := fmt.Sprintf("DataDirectory %s\nSocksPort 0\nDisableNetwork 1\nControlPort %s\nHashedControlPassword %s\nLog notice stdout\n",
		filepath.Join(dir, "data"), ctl, hashPassword(t, bin, controlPassword))
	if err := os.WriteFile(torrc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tor, "-f", torrc, "--defaults-torrc", filepath.Join(dir, "none"), "--ignore-missing-torrc")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Opened Control listener") {
			break
		}
	}
	go io.Copy(io.Discard, out)
	cc := dialControl(t, ctl)
	if got := cc.cmd(fmt.Sprintf("AUTHENTICATE %q", controlPassword)); len(got) != 1 || got[0] != "250 OK" {
		t.Fatalf("C tor refused tinytor's password hash: %q", got)
	}
}

// scrape reads the MetricsPort.
func scrape(t *testing.T, addr netip.AddrPort) string {
	t.Helper()
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	return string(body)
}

// metricValue returns the value of the sample named exactly series.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no sample %s in:\n%s", series, text)
	return 0
}

func TestMetricsPortPromtool(t *testing.T) {
	n := RequireNetwork(t)
	promtool := requireTool(t, "promtool")
	c := startControlled(t, n)
	bootstrapped(t, c.tinytorProc)

	before := scrape(t, c.metrics)
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(before)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, before)
	}
	if v := metricValue(t, before, "tinytor_bootstrap_percent"); v != 100 {
		t.Errorf("tinytor_bootstrap_percent %v", v)
	}
	if v := metricValue(t, before, "tinytor_circuits_built_total"); v < 1 {
		t.Errorf("tinytor_circuits_built_total %v", v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := Get(ctx, c.socks, n.File1M.URL)
	if err != nil || len(resp.Body) != 1<<20 {
		t.Fatalf("fetch: %v", err)
	}
	after := scrape(t, c.metrics)
	for _, s := range []struct {
		series string
		min    float64
	}{
		{"tinytor_bytes_read_total", 1 << 20},
		{"tinytor_bytes_written_total", 1},
		{`tinytor_streams_total{outcome="succeeded"}`, 1},
	} {
		b, a := metricValue(t, before, s.series), metricValue(t, after, s.series)
		if a-b < s.min {
			t.Errorf("%s moved from %v to %v, want +%v", s.series, b, a, s.min)
		}
	}
	if v := metricValue(t, after, "tinytor_circuit_build_seconds_count"); v < 1 {
		t.Errorf("tinytor_circuit_build_seconds_count %v", v)
	}
	check = exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(after)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics after traffic: %v\n%s", err, out)
	}
}

func TestControlNyx(t *testing.T) {
	n := RequireNetwork(t)
	nyx := requireTool(t, "nyx")
	tmux := requireTool(t, "tmux")
	c := startControlled(t, n)
	bootstrapped(t, c.tinytorProc)

	home := t.TempDir()
	sock := "tinytor-nyx-" + strconv.Itoa(os.Getpid())
	tm := func(args ...string) ([]byte, error) {
		cmd := exec.Command(tmux, append([]string{"-L", sock}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home, "TERM=xterm-256color")
		return cmd.CombinedOutput()
	}
	// nyx finds the cookie through PROTOCOLINFO and authenticates with it.
	if out, err := tm("new-session", "-d", "-x", "160", "-y", "50", "-s", "nyx",
		nyx+" -i "+c.control.String()); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	defer tm("kill-server")

	capture := func() string {
		t.Helper()
		out, err := tm("capture-pane", "-p", "-t", "nyx")
		if err != nil {
			t.Fatalf("tmux capture-pane: %v\n%s", err, out)
		}
		return string(out)
	}
	// waitPane polls the screen (nyx redraws once a second) until ok.
	waitPane := func(what string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			pane := capture()
			if ok(pane) {
				return pane
			}
			if time.Now().After(deadline) {
				t.Fatalf("nyx screen never showed %s:\n%s", what, pane)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitPane("the bandwidth graph", func(p string) bool { return strings.Contains(p, "Download (") && strings.Contains(p, "Upload (") })
	// Traffic through tinytor shows up in the graph's totals.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Get(ctx, c.socks, n.File1M.URL); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	pane := waitPane("a download total of at least 1 MB", func(p string) bool {
		i := strings.Index(p, "Download (")
		if i < 0 {
			return false
		}
		line := p[i:]
		line = line[:strings.IndexByte(line, ')')+1]
		return strings.Contains(line, " MB)") || strings.Contains(line, " GB)")
	})
	t.Logf("nyx screen:\n%s", pane)
	for _, want := range []string{"Tor 0.4.9.11-tinytor", "Download (", "Upload (", "page 1 / "} {
		if !strings.Contains(pane, want) {
			t.Errorf("nyx screen lacks %q", want)
		}
	}
	for _, bad := range []string{"Traceback", "Unable to", "Exception", "[ERR]"} {
		if strings.Contains(pane, bad) {
			t.Errorf("nyx screen shows %q", bad)
		}
	}
}
