package transparent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"tinytor/socks"
	"tinytor/socks/sockstest"
	"tinytor/tor/policy"
	"tinytor/tor/torlog"
)

// inNetns is set in the test binary that TestRedirectedInNetns runs
// inside its network namespace.
const inNetns = "TINYTOR_TRANSPARENT_IN_NETNS"

// TestRedirectedInNetns checks the original destination of connections
// that an nftables "redirect" rule really sent to a TransPort, over IPv4
// and IPv6 (SO_ORIGINAL_DST and IP6T_SO_ORIGINAL_DST), in a network
// namespace it creates and removes. It needs root, ip and nft; it is
// skipped with -short.
func TestRedirectedInNetns(t *testing.T) {
	if os.Getenv(inNetns) != "" {
		redirectedHere(t)
		return
	}
	if testing.Short() {
		t.Skip("needs a network namespace (root, ip, nft); skipped with -short")
	}
	ip, err1 := exec.LookPath("ip")
	_, err2 := exec.LookPath("nft")
	if os.Geteuid() != 0 || err1 != nil || err2 != nil {
		t.Skip("needs root, ip and nft (apt-get install iproute2 nftables)")
	}
	ns := fmt.Sprintf("tinytor-trans-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command(ip, "netns", "delete", ns).Run()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ip, "netns", "exec", ns, self, "-test.run=^TestRedirectedInNetns$", "-test.v")
	cmd.Env = append(os.Environ(), inNetns+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("in namespace %s: %v\n%s", ns, err, out)
	}
}

// redirectedHere runs inside the namespace: a LAN (a veth pair) with documentation
// addresses, a TransPort on loopback, and a rule redirecting port 80 of
// the LAN's other hosts to it.
func redirectedHere(t *testing.T) {
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
	}
	run("ip", "link", "set", "lo", "up")
	run("ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
	run("ip", "link", "set", "lan0", "up")
	run("ip", "link", "set", "lan1", "up")
	run("ip", "addr", "add", "192.0.2.2/24", "dev", "lan0")
	run("ip", "-6", "addr", "add", "2001:db8::2/64", "dev", "lan0", "nodad")

	d := &recordingDialer{}
	var logs sockstest.Buffer
	log := torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logs})
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	}()
	// The redirected clients come from the LAN address, not loopback.
	lan, err := policy.Parse("accept 192.0.2.0/24, accept [2001:db8::]/64, accept 127.0.0.1, reject *")
	if err != nil {
		t.Fatal(err)
	}
	_, addr := sockstest.Serve(t, socks.Config{ID: "trans", Protocol: Protocol{}, Policy: lan, Log: log, Flags: socks.Flags{IsolateDestAddr: true}}, d)
	port := netip.MustParseAddrPort(addr).Port()
	// An IPv6 TransPort on ::1 (sockstest listens on 127.0.0.1 only).
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	srv6, err := socks.New(socks.Config{ID: "trans6", Protocol: Protocol{}, Policy: lan, Log: log, Flags: socks.Flags{IPv6Traffic: true}}, d)
	if err != nil {
		t.Fatal(err)
	}
	go srv6.Serve(context.Background(), ln6)
	defer srv6.Close()
	port6 := netip.MustParseAddrPort(ln6.Addr().String()).Port()
	// A dual-stack TransPort ([::]) gets IPv4 clients as IPv4-mapped
	// addresses: their original destination is still SO_ORIGINAL_DST's.
	dual, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	srvDual, err := socks.New(socks.Config{ID: "dual", Protocol: Protocol{}, Policy: lan, Log: log}, d)
	if err != nil {
		t.Fatal(err)
	}
	go srvDual.Serve(context.Background(), dual)
	defer srvDual.Close()
	portDual := netip.MustParseAddrPort(dual.Addr().String()).Port()

	rules := fmt.Sprintf(`table inet tinytor_test {
	chain out {
		type nat hook output priority -100;
		ip daddr 192.0.2.200 tcp dport 80 redirect to :%d
		ip daddr 192.0.2.0/24 tcp dport 80 redirect to :%d
		ip6 daddr 2001:db8::/64 tcp dport 80 redirect to :%d
	}
}
`, portDual, port, port6)
	nft := exec.Command("nft", "-f", "-")
	nft.Stdin = strings.NewReader(rules)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}

	for _, dst := range []string{"192.0.2.77:80", "[2001:db8::77]:80", "192.0.2.200:80"} {
		c, err := net.DialTimeout("tcp", dst, 10*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", dst, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "stream to "+dst {
			t.Errorf("through the TransPort to %s: %q, %v", dst, got, err)
		}
	}
	// Straight to the port: connection tracking saw it, but no rule
	// changed its destination; closed without a stream.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Errorf("a direct connection got %q", got)
	}
	c.Close()
	if !strings.Contains(logs.String(), "was not redirected by the packet filter; closing it") {
		t.Errorf("no log line for the direct connection")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.isos) != 3 || d.isos[0].DestAddr != "192.0.2.77" || d.isos[0].DestPort != 0 {
		t.Errorf("isolation keys %+v, want three, the first with DestAddr 192.0.2.77", d.isos)
	}
}
