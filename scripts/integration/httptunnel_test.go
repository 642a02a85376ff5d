package integration

import (
	"bufio"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTinytorHTTPTunnel fetches the network's marker with curl through
// tinytor's HTTPTunnelPort (curl -p: an HTTP CONNECT tunnel), checks the
// stream's NEW event names curl's address (SOURCE_ADDR) and C tor's
// answers to a method that is not CONNECT and to a stream the exit
// refuses.
func TestTinytorHTTPTunnel(t *testing.T) {
	n := RequireNetwork(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	tunnel, ctlAddr := freePort(t), freePort(t)
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil, "HTTPTunnelPort "+tunnel.String(),
		"ControlPort "+ctlAddr.String(), "CookieAuthentication 0")
	p.waitFor("Opened HTTP tunnel listener connection (ready) on "+tunnel.String(), 30*time.Second)
	bootstrapped(t, p)
	proxy := "http://" + tunnel.String()
	conn, err := net.DialTimeout("tcp", ctlAddr.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(3 * time.Minute))
	ctl := &refControl{conn: conn, r: bufio.NewReader(conn)}
	ctl.command(t, "AUTHENTICATE")
	if got := ctl.command(t, "GETINFO net/listeners/httptunnel"); len(got) != 1 || got[0] != `net/listeners/httptunnel="`+tunnel.String()+`"` {
		t.Errorf("GETINFO net/listeners/httptunnel: %q", got)
	}
	ctl.command(t, "SETEVENTS STREAM")

	out, err := exec.Command(curl, "-sS", "--fail", "--max-time", "120", "-p", "-x", proxy, n.URLMarker).Output()
	if err != nil || !strings.Contains(string(out), n.Marker) {
		t.Fatalf("curl -p -x %s %s: %v, %q", proxy, n.URLMarker, err, out)
	}
	for {
		// 650 STREAM <id> NEW 0 <target> SOURCE_ADDR=127.0.0.1:<port> PURPOSE=USER
		line := ctl.readLine(t)
		if f := strings.Fields(line); len(f) >= 4 && f[1] == "STREAM" && f[3] == "NEW" {
			if !strings.Contains(line, " SOURCE_ADDR=127.0.0.1:") || !strings.HasSuffix(line, " PURPOSE=USER") {
				t.Errorf("STREAM NEW event of the tunnel's stream: %q", line)
			}
			break
		}
	}
	// Proxy credentials isolate streams and are not refused.
	out, err = exec.Command(curl, "-sS", "--fail", "--max-time", "120", "-p", "-x", proxy, "-U", "tab1:x", n.URLMarker).Output()
	if err != nil || !strings.Contains(string(out), n.Marker) {
		t.Fatalf("curl -p -U: %v, %q", err, out)
	}
	// Without -p, curl sends GET to the proxy: C tor's 405 page.
	out, _ = exec.Command(curl, "-sS", "--max-time", "60", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy, n.URLMarker).Output()
	if string(out) != "405" {
		t.Errorf("GET through the tunnel port: status %q, want 405", out)
	}
	// Port 1 of the marker host: the exit cannot connect and ends the
	// stream (the test network's exits say MISC); curl reports the
	// proxy's CONNECT status, C tor's line for the END reason.
	u := strings.Replace(n.URLMarker, "http://", "", 1)
	host := u[:strings.LastIndexByte(u[:strings.IndexByte(u+"/", '/')], ':')]
	out, _ = exec.Command(curl, "-sS", "--max-time", "120", "-p", "-x", proxy, "-o", "/dev/null", "-w", "%{http_connect}", "http://"+host+":1/").Output()
	switch s := string(out); s {
	case "403", "404", "500", "502":
	default:
		t.Errorf("CONNECT to a closed port: status %q, want one of C tor's 403, 404, 500 or 502", s)
	}
}
