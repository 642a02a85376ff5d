package integration

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTinytorHTTPTunnel fetches the network's marker with curl through
// tinytor's HTTPTunnelPort (curl -p: an HTTP CONNECT tunnel), and checks
// C tor's answers to a method that is not CONNECT and to a stream the
// exit refuses.
func TestTinytorHTTPTunnel(t *testing.T) {
	n := RequireNetwork(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	tunnel := freePort(t)
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil, "HTTPTunnelPort "+tunnel.String())
	p.waitFor("Opened HTTP tunnel listener connection (ready) on "+tunnel.String(), 30*time.Second)
	bootstrapped(t, p)
	proxy := "http://" + tunnel.String()

	out, err := exec.Command(curl, "-sS", "--fail", "--max-time", "120", "-p", "-x", proxy, n.URLMarker).Output()
	if err != nil || !strings.Contains(string(out), n.Marker) {
		t.Fatalf("curl -p -x %s %s: %v, %q", proxy, n.URLMarker, err, out)
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
