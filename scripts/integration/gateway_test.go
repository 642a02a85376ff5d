package integration

// The LAN gateway (issue 11): a "LAN" network namespace joined to this host
// by a veth pair, a gateway (C tor, then tinytor) on the host with TransPort,
// DNSPort, HTTPTunnelPort and AutomapHostsOnResolve, and the nftables recipe
// scripts/gateway/tinytor-gateway.nft applied to the host's side of the pair.
// The LAN uses unmodified tools (dig, curl, ping, bash's /dev/udp).
//
// Addresses (N is picked per test, so that concurrent test processes do not
// collide; nothing here exists outside the namespaces and veth pairs the test
// makes):
//
//	10.99.N.1/30   gateway, host side of the LAN veth (TransPort, DNSPort, HTTPTunnelPort)
//	10.99.N.2/30   the LAN device, in namespace tinytor-lan-N (no default route)
//	10.99.N.9/32   a "web server" address, also on the host side of the LAN veth:
//	               exits connect to it and the test's nftables table sends those
//	               connections (output hook, dnat) to the test network's HTTP server
//	10.99.N.5/30   host side of a second veth into namespace tinytor-sink-N
//	10.99.N.64/26  "the internet": routed into the sink namespace, which counts
//	               and drops whatever arrives (leak destinations)
//	fd99:0:N::/64, fd99:2:N::/64  the same for IPv6 (LAN, sink)
//
// Forwarding is enabled on the LAN veth only (net.ipv4.conf.<veth>.forwarding),
// and the test's own table drops anything from the LAN routed to an interface
// other than the sink's, so even a broken recipe sends nothing off the host.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	gwTransPort  = 9040
	gwDNSPort    = 9053
	gwTunnelPort = 9080
	gwVirtualNet = "10.192.0.0/10"
)

// lanNet is the set of namespaces, veth pairs and nftables tables of one test.
type lanNet struct {
	id                int
	ns, sinkNS        string // namespaces
	hostIf, sinkIf    string // host sides of the veth pairs
	gw, client, web   netip.Addr
	leak4             netip.Addr // an address in the sink ("the internet")
	gw6, client6      netip.Addr
	leak6             netip.Addr
	table             string // the test's own table on the host (inet)
	recipeTable       string // the recipe's table, renamed for this test
	httpAddr          netip.AddrPort
	onion, marker     string
	ipSuffix, dnsName string
	exitAddrs         []netip.Addr
}

// gwNeed checks the privileges and tools the gateway tests need: without
// root they skip; missing tools skip them, or fail them with
// TINYTOR_REQUIRE_TESTNET=1.
func gwNeed(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"ip", "nft", "dig", "curl", "ping", "bash", "tor"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if os.Geteuid() != 0 {
		// As the board tests that need root: a skip, also in CI.
		t.Skip("the gateway test needs root (network namespaces, nftables)")
	}
	why := ""
	if len(missing) > 0 {
		why = "missing tools: " + strings.Join(missing, ", ") + " (scripts/deps installs iproute2, nftables, dnsutils, curl, iputils-ping)"
	}
	if why == "" {
		return
	}
	if os.Getenv("TINYTOR_REQUIRE_TESTNET") == "1" {
		t.Fatalf("gateway test %s (TINYTOR_REQUIRE_TESTNET=1)", why)
	}
	t.Skip("gateway test " + why)
}

// cmdEnv is the environment for the tools, without proxy variables.
func cmdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// sh runs a command and returns its combined output; err includes it.
func sh(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = cmdEnv()
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func mustSh(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := sh(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// nsRun runs a command in namespace ns with a timeout.
func nsRun(ns string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return sh(ctx, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// nftWithInput runs nft -f - with the given ruleset.
func nftWithInput(t *testing.T, ns, ruleset string) {
	t.Helper()
	args := []string{"nft", "-f", "-"}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s\nruleset:\n%s", err, out, ruleset)
	}
}

// claimID reserves a free N for 10.99.N.0/24 across processes: a directory
// in $TMPDIR holding the owner's pid, and no address or route of the host
// in that /24.
func claimID(t *testing.T) int {
	t.Helper()
	base := filepath.Join(os.TempDir(), "tinytor-gateway-ids")
	os.MkdirAll(base, 0o755)
	hostNets := func() string {
		return mustSh(t, "ip", "-4", "-o", "addr") + mustSh(t, "ip", "-4", "route", "show", "table", "all")
	}
	used := hostNets()
	var b [1]byte
	for attempt := 0; attempt < 200; attempt++ {
		rand.Read(b[:])
		id := int(b[0])
		dir := filepath.Join(base, strconv.Itoa(id))
		if pid, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
			p, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
			if p > 0 && syscall.Kill(p, 0) == nil {
				continue
			}
			// Stale: its test process died without its cleanups (a
			// -timeout panic, SIGKILL); remove what it left.
			removeLANLeftovers(t, id)
			os.RemoveAll(dir)
			used = hostNets()
		}
		if strings.Contains(used, fmt.Sprintf("10.99.%d.", id)) {
			continue
		}
		if os.Mkdir(dir, 0o755) != nil {
			continue
		}
		os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
		t.Cleanup(func() { os.RemoveAll(dir) })
		return id
	}
	t.Fatal("no free 10.99.N.0/24 for the gateway test")
	return 0
}

// removeLANLeftovers deletes what a dead test process with the same N
// left behind: its namespaces, veth pairs (and their routes), nftables
// tables and /etc/netns directory. The names contain N and belong to these
// tests only.
func removeLANLeftovers(t *testing.T, id int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range [][]string{
		{"ip", "netns", "delete", fmt.Sprintf("tinytor-lan-%d", id)},
		{"ip", "netns", "delete", fmt.Sprintf("tinytor-sink-%d", id)},
		{"ip", "link", "delete", fmt.Sprintf("ttgwl%d", id)},
		{"ip", "link", "delete", fmt.Sprintf("ttgws%d", id)},
		{"nft", "delete", "table", "inet", fmt.Sprintf("tinytor_gwtest_%d", id)},
		{"nft", "delete", "table", "inet", fmt.Sprintf("tinytor_gateway_%d", id)},
	} {
		if _, err := sh(ctx, c...); err == nil {
			t.Logf("removed a dead test's leftover: %s", strings.Join(c, " "))
		}
	}
	os.RemoveAll(filepath.Join("/etc/netns", fmt.Sprintf("tinytor-lan-%d", id)))
}

// newLAN builds the namespaces, veth pairs and the test's own nftables
// table; everything is removed in t.Cleanup, also on failure.
func newLAN(t *testing.T, n *Network) *lanNet {
	t.Helper()
	id := claimID(t)
	l := &lanNet{
		id:       id,
		ns:       fmt.Sprintf("tinytor-lan-%d", id),
		sinkNS:   fmt.Sprintf("tinytor-sink-%d", id),
		hostIf:   fmt.Sprintf("ttgwl%d", id),
		sinkIf:   fmt.Sprintf("ttgws%d", id),
		gw:       netip.MustParseAddr(fmt.Sprintf("10.99.%d.1", id)),
		client:   netip.MustParseAddr(fmt.Sprintf("10.99.%d.2", id)),
		web:      netip.MustParseAddr(fmt.Sprintf("10.99.%d.9", id)),
		leak4:    netip.MustParseAddr(fmt.Sprintf("10.99.%d.65", id)),
		gw6:      netip.MustParseAddr(fmt.Sprintf("fd99:0:%x::1", id)),
		client6:  netip.MustParseAddr(fmt.Sprintf("fd99:0:%x::2", id)),
		leak6:    netip.MustParseAddr(fmt.Sprintf("fd99:2:%x::65", id)),
		table:    fmt.Sprintf("tinytor_gwtest_%d", id),
		httpAddr: n.HTTPAddr,
		onion:    n.Onion,
		marker:   n.Marker,
		ipSuffix: n.Env["TESTNET_DNS_IP_SUFFIX"],
		dnsName:  n.Env["TESTNET_DNS_NAME"],
	}
	l.recipeTable = "tinytor_gateway_" + strconv.Itoa(id)
	l.exitAddrs = n.ExitAddrs
	if l.ipSuffix == "" || l.dnsName == "" {
		t.Fatal("testnet.env has no TESTNET_DNS_NAME / TESTNET_DNS_IP_SUFFIX (scripts/testnet too old?)")
	}
	// Cleanups run last-registered first: register each undo right after
	// the step it undoes.
	cleanup := func(args ...string) {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if out, err := sh(ctx, args...); err != nil && !strings.Contains(out, "No such file") &&
				!strings.Contains(out, "Cannot find device") && !strings.Contains(out, "No such") {
				t.Logf("cleanup: %v", err)
			}
		})
	}
	for _, ns := range []string{l.ns, l.sinkNS} {
		mustSh(t, "ip", "netns", "add", ns)
		cleanup("ip", "netns", "delete", ns)
	}
	// LAN veth.
	mustSh(t, "ip", "link", "add", l.hostIf, "type", "veth", "peer", "name", "lan0", "netns", l.ns)
	cleanup("ip", "link", "delete", l.hostIf)
	for _, c := range [][]string{
		{"ip", "addr", "add", l.gw.String() + "/30", "dev", l.hostIf},
		{"ip", "addr", "add", l.web.String() + "/32", "dev", l.hostIf},
		{"ip", "-6", "addr", "add", l.gw6.String() + "/64", "dev", l.hostIf, "nodad"},
		{"ip", "link", "set", l.hostIf, "up"},
		{"ip", "-n", l.ns, "link", "set", "lo", "up"},
		{"ip", "-n", l.ns, "addr", "add", l.client.String() + "/30", "dev", "lan0"},
		{"ip", "-n", l.ns, "-6", "addr", "add", l.client6.String() + "/64", "dev", "lan0", "nodad"},
		{"ip", "-n", l.ns, "link", "set", "lan0", "up"},
		// No default route in the LAN: only the gateway's networks.
		{"ip", "-n", l.ns, "route", "add", fmt.Sprintf("10.99.%d.64/26", id), "via", l.gw.String()},
		{"ip", "-n", l.ns, "route", "add", l.web.String() + "/32", "via", l.gw.String()},
		{"ip", "-n", l.ns, "route", "add", gwVirtualNet, "via", l.gw.String()},
		{"ip", "-n", l.ns, "-6", "route", "add", fmt.Sprintf("fd99:2:%x::/64", id), "via", l.gw6.String()},
		// Sink veth: "the internet".
		{"ip", "link", "add", l.sinkIf, "type", "veth", "peer", "name", "wan0", "netns", l.sinkNS},
	} {
		mustSh(t, c...)
	}
	cleanup("ip", "link", "delete", l.sinkIf)
	for _, c := range [][]string{
		{"ip", "addr", "add", fmt.Sprintf("10.99.%d.5/30", id), "dev", l.sinkIf},
		{"ip", "-6", "addr", "add", fmt.Sprintf("fd99:2:%x::5/64", id), "dev", l.sinkIf, "nodad"},
		{"ip", "link", "set", l.sinkIf, "up"},
		{"ip", "-n", l.sinkNS, "link", "set", "lo", "up"},
		{"ip", "-n", l.sinkNS, "addr", "add", fmt.Sprintf("10.99.%d.6/30", id), "dev", "wan0"},
		{"ip", "-n", l.sinkNS, "-6", "addr", "add", fmt.Sprintf("fd99:2:%x::6/64", id), "dev", "wan0", "nodad"},
		{"ip", "-n", l.sinkNS, "link", "set", "wan0", "up"},
		{"ip", "route", "add", fmt.Sprintf("10.99.%d.64/26", id), "via", fmt.Sprintf("10.99.%d.6", id), "dev", l.sinkIf},
	} {
		mustSh(t, c...)
	}
	// Forwarding from the LAN veth only (the host's global setting is
	// untouched); the device goes away with the veth.
	if err := os.WriteFile(fmt.Sprintf("/proc/sys/net/ipv4/conf/%s/forwarding", l.hostIf), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The sink counts what arrives from the LAN and drops everything.
	nftWithInput(t, l.sinkNS, fmt.Sprintf(`table inet sink {
	counter arrived {}
	chain pre {
		type filter hook prerouting priority -300; policy drop;
		ip saddr %s counter name arrived
		ip6 saddr %s counter name arrived
	}
}
`, l.client, l.client6))
	// The test's own table on the host: the guard (nothing from the LAN is
	// routed anywhere but the sink), the leak counter, and the web address.
	nftWithInput(t, "", fmt.Sprintf(`table inet %[1]s {
	counter guard {}
	counter left {}
	chain guard {
		type filter hook forward priority -300; policy accept;
		iifname %[2]q oifname != %[3]q counter name guard drop
		iifname %[3]q drop
	}
	chain watch {
		type filter hook postrouting priority 300; policy accept;
		ip saddr %[4]s oifname != %[2]q counter name left
		ip6 saddr %[5]s oifname != %[2]q counter name left
	}
	chain web {
		type nat hook output priority -100; policy accept;
		ip daddr %[6]s tcp dport 80 dnat ip to %[7]s
	}
}
`, l.table, l.hostIf, l.sinkIf, l.client, l.client6, l.web, l.httpAddr))
	cleanup("nft", "delete", "table", "inet", l.table)
	// The LAN's resolver: any address (DNS to any server is redirected);
	// here one in "the internet". ip netns exec bind-mounts it.
	etc := filepath.Join("/etc/netns", l.ns)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"),
		[]byte(fmt.Sprintf("nameserver %s\noptions timeout:10 attempts:2\n", l.leak4)), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

// applyRecipe loads scripts/gateway/tinytor-gateway.nft with this LAN's
// interface, address and ports (and the table renamed for this test).
func (l *lanNet) applyRecipe(t *testing.T) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "scripts", "gateway", "tinytor-gateway.nft"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, d := range []struct{ name, value string }{
		{"LAN_IF", strconv.Quote(l.hostIf)},
		{"LAN_ADDR", l.gw.String()},
		{"TRANS_PORT", strconv.Itoa(gwTransPort)},
		{"DNS_PORT", strconv.Itoa(gwDNSPort)},
	} {
		re := regexp.MustCompile(`(?m)^define ` + d.name + ` = .*$`)
		if len(re.FindAllString(s, -1)) != 1 {
			t.Fatalf("recipe: want one 'define %s = ...' line", d.name)
		}
		s = re.ReplaceAllString(s, "define "+d.name+" = "+d.value)
	}
	if strings.Count(s, "inet tinytor_gateway\n") != 2 || strings.Count(s, "inet tinytor_gateway {") != 1 {
		t.Fatal("recipe: table inet tinytor_gateway not found where expected")
	}
	s = strings.ReplaceAll(s, "inet tinytor_gateway", "inet "+l.recipeTable)
	nftWithInput(t, "", s)
	t.Cleanup(func() { sh(context.Background(), "nft", "delete", "table", "inet", l.recipeTable) })
}

var counterRE = regexp.MustCompile(`packets (\d+) bytes`)

// counter reads a named counter (ns "" is the host).
func counter(t *testing.T, ns, table, name string) int {
	t.Helper()
	args := []string{"nft", "list", "counter", "inet", table, name}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	m := counterRE.FindStringSubmatch(mustSh(t, args...))
	if m == nil {
		t.Fatalf("no packet count in nft list counter %s %s", table, name)
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// leaks is the number of the LAN's packets that left the host's stack
// anywhere but back into the LAN: arrived in the sink, counted leaving, or
// stopped by the test's guard (which only the absence of the recipe lets
// through).
func (l *lanNet) leaks(t *testing.T) (sink, left, guard int) {
	return counter(t, l.sinkNS, "sink", "arrived"), counter(t, "", l.table, "left"), counter(t, "", l.table, "guard")
}

// recipeDrops reads the recipe's forward-drop counter for LAN traffic.
func (l *lanNet) recipeDrops(t *testing.T) int {
	out := mustSh(t, "nft", "list", "chain", "inet", l.recipeTable, "forward")
	re := regexp.MustCompile(`counter packets (\d+) bytes \d+ drop comment "LAN traffic not redirected to Tor"`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("recipe forward chain without the LAN drop counter:\n%s", out)
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// inNetns runs f on an OS thread that joined namespace ns; sockets made
// there stay in ns and may be used from any goroutine afterwards. The
// thread is discarded when f returns.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fd, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// gatewayProc is the gateway under test.
type gatewayProc struct {
	name   string // "C tor" or "tinytor"
	pid    int
	alive  func() bool
	tcpDNS bool // the DNSPort answers over TCP too (C tor's does not)
	// has holds the gateway options in use ("DNSPort", "TransPort",
	// "HTTPTunnelPort"); subtests needing a missing one are skipped.
	has  map[string]bool
	logs func() string
}

// need skips t unless the gateway has all of ports.
func (g *gatewayProc) need(t *testing.T, ports ...string) {
	t.Helper()
	for _, p := range ports {
		if !g.has[p] {
			t.Skipf("%s has no %s yet", g.name, p)
		}
	}
}

func (g *gatewayProc) rssKB(t *testing.T) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// gatewayOptions are the gateway lines of the OpenWrt package's default
// torrc (scripts/openwrt/tinytor/files/torrc) with this LAN's address in
// place of 192.168.1.1, by the port they need: the test runs what the
// package ships.
func (l *lanNet) gatewayOptions(t *testing.T) map[string]string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "scripts", "openwrt", "tinytor", "files", "torrc"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"TransPort":              fmt.Sprintf("TransPort 192.168.1.1:%d", gwTransPort),
		"DNSPort":                fmt.Sprintf("DNSPort 192.168.1.1:%d", gwDNSPort),
		"HTTPTunnelPort":         fmt.Sprintf("HTTPTunnelPort 192.168.1.1:%d", gwTunnelPort),
		"AutomapHostsOnResolve":  "AutomapHostsOnResolve 1",
		"VirtualAddrNetworkIPv4": "VirtualAddrNetworkIPv4 " + gwVirtualNet,
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, _, _ := strings.Cut(line, " ")
		if _, ok := want[k]; ok {
			if got[k] != "" {
				t.Fatalf("OpenWrt torrc: %s twice", k)
			}
			got[k] = strings.ReplaceAll(line, "192.168.1.1:", l.gw.String()+":") + "\n"
			if line != want[k] {
				t.Fatalf("OpenWrt torrc has %q, the test expects %q", line, want[k])
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("OpenWrt torrc lacks some of %v", want)
	}
	return map[string]string{
		"DNSPort":        got["DNSPort"] + got["AutomapHostsOnResolve"] + got["VirtualAddrNetworkIPv4"],
		"TransPort":      got["TransPort"],
		"HTTPTunnelPort": got["HTTPTunnelPort"],
	}
}

var gatewayPorts = []string{"DNSPort", "TransPort", "HTTPTunnelPort"}

// gatewayPolicy admits the LAN and nobody else, as the OpenWrt default
// does (tinytor with no SocksPolicy serves loopback clients only).
func (l *lanNet) gatewayPolicy() string {
	return fmt.Sprintf("SocksPolicy accept %s/30\nSocksPolicy reject *\n", l.client)
}

// gatewayTorrc is the gateway part of the torrc with all ports.
func (l *lanNet) gatewayTorrc(t *testing.T) string {
	var b strings.Builder
	b.WriteString(l.gatewayPolicy())
	opts := l.gatewayOptions(t)
	for _, p := range gatewayPorts {
		b.WriteString(opts[p])
	}
	return b.String()
}

// startCTorGateway runs C tor as the gateway.
func startCTorGateway(t *testing.T, n *Network, l *lanNet) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	frag, err := os.ReadFile(n.TorrcFragment)
	if err != nil {
		t.Fatal(err)
	}
	torrc := string(frag) + fmt.Sprintf("\nDataDirectory %s\nSocksPort 0\nOutboundBindAddress 127.0.0.1\nLog notice stdout\nSafeLogging 0\nShutdownWaitLength 0\nRunAsDaemon 0\n", dir) + l.gatewayTorrc(t)
	os.WriteFile(filepath.Join(dir, "torrc"), []byte(torrc), 0o600)
	os.WriteFile(filepath.Join(dir, "defaults"), nil, 0o600)
	cmd := exec.Command("tor", "--defaults-torrc", filepath.Join(dir, "defaults"), "-f", filepath.Join(dir, "torrc"))
	pl, err := startLogged(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			pl.mu.Lock()
			t.Logf("C tor gateway log:\n%s", strings.Join(pl.lines, "\n"))
			pl.mu.Unlock()
		}
	})
	pl.wait(t, "Bootstrapped 100%", 90*time.Second)
	return &gatewayProc{
		name:  "C tor",
		has:   map[string]bool{"DNSPort": true, "TransPort": true, "HTTPTunnelPort": true},
		pid:   cmd.Process.Pid,
		alive: func() bool { return syscall.Kill(cmd.Process.Pid, 0) == nil && !isZombie(cmd.Process.Pid) },
		logs: func() string {
			pl.mu.Lock()
			defer pl.mu.Unlock()
			return strings.Join(pl.lines, "\n")
		},
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// startTinytorGateway runs tinytor as the gateway with the gateway ports
// its --verify-config accepts, each checked alone; the subtests needing a
// refused one are skipped (saying so), and the whole test if none is
// accepted.
func startTinytorGateway(t *testing.T, n *Network, l *lanNet) *gatewayProc {
	t.Helper()
	bin := tinytorBinary(t, "")
	frag, err := os.ReadFile(n.TorrcFragment)
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	lines := strings.Split(strings.TrimSpace(l.gatewayPolicy()), "\n")
	gwOpts := l.gatewayOptions(t)
	for _, port := range gatewayPorts {
		opts := l.gatewayPolicy() + gwOpts[port]
		check := filepath.Join(t.TempDir(), "torrc")
		os.WriteFile(check, []byte(string(frag)+"\nDataDirectory "+t.TempDir()+"\n"+opts), 0o600)
		if out, err := exec.Command(bin, "-f", check, "--verify-config").CombinedOutput(); err != nil {
			t.Logf("tinytor refuses %s (its subtests are skipped; C tor's run covers them): %s", port, bytes.TrimSpace(out))
			continue
		}
		has[port] = true
		lines = append(lines, strings.Split(strings.TrimSpace(gwOpts[port]), "\n")...)
	}
	if len(has) == 0 {
		t.Skip("tinytor refuses all of DNSPort, TransPort and HTTPTunnelPort: only C tor was tested")
	}
	p := startTinytor(t, n, bin, "", nil, lines...)
	p.waitFor("Bootstrapped 100%", 60*time.Second)
	return &gatewayProc{
		name:   "tinytor",
		pid:    p.cmd.Process.Pid,
		tcpDNS: true,
		has:    has,
		alive: func() bool {
			select {
			case <-p.exited:
				return false
			default:
				return true
			}
		},
		logs: func() string { return strings.Join(p.log(), "\n") },
	}
}

func TestGatewayCTor(t *testing.T) {
	n := RequireNetwork(t)
	gwNeed(t)
	l := newLAN(t, n)
	l.checkControlLeak(t)
	gw := startCTorGateway(t, n, l)
	l.applyRecipe(t)
	runGateway(t, l, gw)
}

func TestGatewayTinytor(t *testing.T) {
	n := RequireNetwork(t)
	gwNeed(t)
	l := newLAN(t, n)
	l.checkControlLeak(t)
	gw := startTinytorGateway(t, n, l)
	l.applyRecipe(t)
	runGateway(t, l, gw)
}

// checkControlLeak proves the leak counters can see a leak: before the
// recipe, one UDP datagram from the LAN to "the internet" reaches the sink.
func (l *lanNet) checkControlLeak(t *testing.T) {
	t.Helper()
	before, _, _ := l.leaks(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		nsRun(l.ns, 5*time.Second, "bash", "-c", fmt.Sprintf("echo control >/dev/udp/%s/9", l.leak4))
		if got, _, _ := l.leaks(t); got > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("control: a UDP datagram from the LAN without the recipe did not reach the sink; the leak test could not see a leak")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// retry runs f until it succeeds or timeout passes (the first streams of a
// fresh gateway may meet an exit that is not ready yet).
func retry(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(time.Second)
	}
}

func (l *lanNet) curl(args ...string) (string, error) {
	return nsRun(l.ns, 40*time.Second, append([]string{"curl", "-s", "-S", "-f", "--max-time", "30", "--noproxy", ""}, args...)...)
}

func (l *lanNet) dig(args ...string) (string, error) {
	out, err := nsRun(l.ns, 40*time.Second, append([]string{"dig", "+short", "+time=15", "+tries=1"}, args...)...)
	return strings.TrimSpace(out), err
}

func (l *lanNet) isExit(s string) bool {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return false
	}
	for _, e := range l.exitAddrs {
		if e == a {
			return true
		}
	}
	return false
}

func runGateway(t *testing.T, l *lanNet, gw *gatewayProc) {
	webName := strings.ReplaceAll(l.web.String(), ".", "-") + "." + l.ipSuffix
	t.Run("DNS", func(t *testing.T) {
		gw.need(t, "DNSPort")
		// The test name, through DNSPort, sent to a server in "the
		// internet" (the recipe redirects it) and to the gateway.
		retry(t, "dig "+l.dnsName, 60*time.Second, func() error {
			out, err := l.dig("@"+l.leak4.String(), l.dnsName)
			if err == nil && out != "127.0.0.1" {
				err = fmt.Errorf("answer %q, want 127.0.0.1", out)
			}
			return err
		})
		out, err := l.dig("@"+l.gw.String(), webName)
		if err != nil || out != l.web.String() {
			t.Fatalf("dig %s: %q, %v (want %s)", webName, out, err, l.web)
		}
		if gw.tcpDNS {
			out, err := l.dig("+tcp", "@"+l.leak4.String(), webName)
			if err != nil || out != l.web.String() {
				t.Fatalf("dig +tcp %s: %q, %v (want %s)", webName, out, err, l.web)
			}
		}
	})
	t.Run("TransPort", func(t *testing.T) {
		gw.need(t, "DNSPort", "TransPort")
		retry(t, "curl by IP", 60*time.Second, func() error {
			body, err := l.curl("http://" + l.web.String() + "/")
			if err == nil && !strings.Contains(body, l.marker) {
				err = fmt.Errorf("no marker in %q", body)
			}
			return err
		})
		echo, err := l.curl("http://" + l.web.String() + "/echo")
		if err != nil || !l.isExit(echo) {
			t.Fatalf("/echo by IP: %q, %v; want an exit's address %v", echo, err, l.exitAddrs)
		}
		// By name: the LAN's resolver (any address) is the DNSPort.
		body, err := l.curl("http://" + webName + "/")
		if err != nil || !strings.Contains(body, l.marker) {
			t.Fatalf("curl by name %s: %v, %q", webName, err, body)
		}
		echo, err = l.curl("http://" + webName + "/echo")
		if err != nil || !l.isExit(echo) {
			t.Fatalf("/echo by name: %q, %v; want an exit's address", echo, err)
		}
		t.Logf("HTTP server saw exit %s", strings.TrimSpace(echo))
	})
	t.Run("Onion", func(t *testing.T) {
		gw.need(t, "DNSPort")
		var virt string
		retry(t, "dig onion", 60*time.Second, func() error {
			out, err := l.dig("@"+l.gw.String(), l.onion)
			if err != nil {
				return err
			}
			a, perr := netip.ParseAddr(out)
			if perr != nil || !netip.MustParsePrefix(gwVirtualNet).Contains(a) {
				return fmt.Errorf("answer %q is not in %s", out, gwVirtualNet)
			}
			virt = out
			return nil
		})
		t.Logf("%s -> %s", l.onion, virt)
		gw.need(t, "TransPort") // the DNS half passed
		retry(t, "curl to the virtual address", 60*time.Second, func() error {
			body, err := l.curl("http://" + virt + "/")
			if err == nil && !strings.Contains(body, l.marker) {
				err = fmt.Errorf("no marker in %q", body)
			}
			return err
		})
		// And by name, through the LAN's resolver.
		body, err := l.curl("http://" + l.onion + "/")
		if err != nil || !strings.Contains(body, l.marker) {
			t.Fatalf("curl http://%s/: %v, %q", l.onion, err, body)
		}
	})
	t.Run("HTTPTunnelPort", func(t *testing.T) {
		gw.need(t, "HTTPTunnelPort")
		proxy := fmt.Sprintf("http://%s:%d", l.gw, gwTunnelPort)
		retry(t, "curl -p -x", 60*time.Second, func() error {
			body, err := l.curl("-p", "-x", proxy, "http://"+l.web.String()+"/")
			if err == nil && !strings.Contains(body, l.marker) {
				err = fmt.Errorf("no marker in %q", body)
			}
			return err
		})
		body, err := l.curl("-p", "-x", proxy, "http://"+l.onion+"/")
		if err != nil || !strings.Contains(body, l.marker) {
			t.Fatalf("curl -p -x %s http://%s/: %v, %q", proxy, l.onion, err, body)
		}
	})
	t.Run("Leak", func(t *testing.T) {
		sink0, left0, guard0 := l.leaks(t)
		drops0 := l.recipeDrops(t)
		bashLines := []string{}
		for _, port := range []int{9, 123, 443, 1194, 5353} { // UDP other than DNS, incl. QUIC and NTP
			bashLines = append(bashLines, fmt.Sprintf("echo leak >/dev/udp/%s/%d", l.leak4, port))
			bashLines = append(bashLines, fmt.Sprintf("echo leak >/dev/udp/%s/%d", l.leak6, port))
		}
		if out, err := nsRun(l.ns, 20*time.Second, "bash", "-c", strings.Join(bashLines, "; ")); err != nil {
			t.Logf("sending UDP: %v (%s)", err, out)
		}
		// ICMP (v4 and v6): no answers expected.
		nsRun(l.ns, 10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "1", l.leak4.String())
		nsRun(l.ns, 10*time.Second, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", l.leak6.String())
		// TCP over IPv6 (no IPv6 TransPort: not redirected).
		nsRun(l.ns, 10*time.Second, "curl", "-s", "--max-time", "3", "http://["+l.leak6.String()+"]:8080/")
		// TCP that conntrack does not track (a stray RST and a stray
		// SYN-ACK), which no redirect can catch: only the forward drop.
		if err := inNetns(l.ns, func() error { return sendStrayTCP(l.client, l.leak4) }); err != nil {
			t.Fatalf("stray TCP: %v", err)
		}
		// TCP to "the internet" is redirected to TransPort: the stream
		// fails at the exit (it cannot reach that address), and nothing
		// reaches the sink.
		if out, err := nsRun(l.ns, 40*time.Second, "curl", "-s", "--max-time", "20", "http://"+l.leak4.String()+":8080/"); err == nil {
			t.Errorf("TCP to the sink through TransPort succeeded: %q", out)
		}
		time.Sleep(time.Second)
		sink, left, guard := l.leaks(t)
		drops := l.recipeDrops(t)
		t.Logf("leak test: %d packets dropped by the recipe's forward rule; sink %d, left %d, guard %d", drops-drops0, sink-sink0, left-left0, guard-guard0)
		if sink != sink0 || left != left0 || guard != guard0 {
			t.Errorf("LEAK: from the LAN, %d packets reached the sink, %d left the host stack, %d hit the test's guard", sink-sink0, left-left0, guard-guard0)
		}
		// 5 UDP + 3 ICMP + 2 stray TCP reached the recipe's forward drop
		// (the IPv6 ones only if the host forwards IPv6, which this test
		// does not turn on).
		if drops-drops0 < 10 {
			t.Errorf("only %d packets met the recipe's forward drop, want at least 10", drops-drops0)
		}
	})
	// Before BadInput, which ends C tor (see there).
	if os.Getenv("TINYTOR_GATEWAY_BENCH") == "1" {
		t.Run("Bench", func(t *testing.T) {
			gw.need(t, "DNSPort", "TransPort")
			benchGateway(t, l, gw)
		})
	}
	t.Run("BadInput", func(t *testing.T) {
		gw.need(t, "DNSPort")
		dnsAddr := netip.AddrPortFrom(l.gw, 53) // redirected to DNSPort
		webName := strings.ReplaceAll(l.web.String(), ".", "-") + "." + l.ipSuffix
		answers := func(when string) {
			t.Helper()
			if !gw.alive() {
				t.Fatalf("%s died after %s", gw.name, when)
			}
			out, err := l.dig("@"+l.gw.String(), webName)
			if err != nil || out != l.web.String() {
				t.Fatalf("after %s, dig %s: %q, %v", when, webName, out, err)
			}
			if gw.tcpDNS {
				out, err := l.dig("+tcp", "@"+l.gw.String(), webName)
				if err != nil || out != l.web.String() {
					t.Fatalf("after %s, dig +tcp %s: %q, %v", when, webName, out, err)
				}
			}
		}
		// sendUDP sends count random datagrams of min..max-1 bytes; a
		// quarter get a plausible header (a query with one question).
		sendUDP := func(count, min, max int) {
			t.Helper()
			err := inNetns(l.ns, func() error {
				c, err := net.Dial("udp", dnsAddr.String())
				if err != nil {
					return err
				}
				defer c.Close()
				buf := make([]byte, max)
				for i := 0; i < count; i++ {
					var lb [2]byte
					rand.Read(lb[:])
					n := min + int(binary.BigEndian.Uint16(lb[:]))%(max-min)
					rand.Read(buf[:n])
					if i%4 == 0 && n >= 12 {
						buf[2], buf[3] = 0x01, 0
						buf[4], buf[5] = 0, 1
					}
					c.Write(buf[:n])
					if i%100 == 99 {
						time.Sleep(10 * time.Millisecond)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		sendUDP(1000, 12, 1400)
		answers("1,000 random UDP datagrams of 12 to 1399 bytes")
		if gw.tcpDNS {
			err := inNetns(l.ns, func() error {
				for _, msg := range [][]byte{
					{0xff, 0xff, 1, 2, 3}, // announces 65535 bytes, sends 3
					{0x00},                // half a length prefix
					{0x00, 0x00},          // empty message
					append([]byte{0xff, 0xff}, make([]byte, 65535)...), // oversized, all zeros
					append([]byte{0x00, 0x20}, make([]byte, 10)...),    // truncated
				} {
					c, err := net.DialTimeout("tcp", dnsAddr.String(), 5*time.Second)
					if err != nil {
						return err
					}
					c.SetDeadline(time.Now().Add(5 * time.Second))
					c.Write(msg)
					c.(*net.TCPConn).CloseWrite()
					io.Copy(io.Discard, c)
					c.Close()
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			answers("truncated and oversized TCP DNS messages")
		} else {
			t.Logf("%s's DNSPort has no TCP: TCP bad input not sent", gw.name)
		}
		// Datagrams shorter than a DNS header, last: one of them crashes
		// C tor 0.4.9.11 on Debian 12 (SIGSEGV in libevent 2.1.12's evdns
		// server, which C tor's DNSPort uses: parse_request's error path
		// touches a request not yet allocated, libevent issue #1231), which
		// this test reports but does not count as a failure of the harness.
		sendUDP(100, 0, 12)
		for i := 0; i < 20 && gw.alive(); i++ {
			time.Sleep(100 * time.Millisecond) // a crash takes a moment to show
		}
		if gw.name == "C tor" && !gw.alive() {
			died := ""
			for _, line := range strings.Split(gw.logs(), "\n") {
				if strings.Contains(line, " died: ") {
					died = strings.TrimSpace(line)
				}
			}
			t.Logf("C tor's DNSPort crashed on UDP datagrams shorter than a DNS header (libevent 2.1.12 evdns, libevent issue #1231; C tor 0.4.9.11): %q", died)
			return
		}
		answers("100 random UDP datagrams of 0 to 11 bytes")
	})
}

// sendStrayTCP sends, from a raw socket in the current namespace, a TCP RST
// and a SYN-ACK that belong to no connection.
func sendStrayTCP(src, dst netip.Addr) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrInet4{Addr: dst.As4()}
	for _, flags := range []byte{0x14 /* RST|ACK */, 0x12 /* SYN|ACK */} {
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], 40000)
		binary.BigEndian.PutUint16(h[2:], 8081)
		binary.BigEndian.PutUint32(h[4:], 12345)
		binary.BigEndian.PutUint32(h[8:], 67890)
		h[12] = 5 << 4
		h[13] = flags
		binary.BigEndian.PutUint16(h[14:], 1024)
		// Checksum over the pseudo-header and the header.
		s4, d4 := src.As4(), dst.As4()
		ph := append(append(append([]byte{}, s4[:]...), d4[:]...), 0, unix.IPPROTO_TCP, 0, 20)
		sum := uint32(0)
		for _, b := range [][]byte{ph, h} {
			for i := 0; i+1 < len(b); i += 2 {
				sum += uint32(binary.BigEndian.Uint16(b[i:]))
			}
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(h[16:], ^uint16(sum))
		if err := unix.Sendto(fd, h, 0, sa); err != nil {
			return err
		}
	}
	return nil
}

// benchGateway measures, from the LAN: DNS queries per second and median
// latency through DNSPort, TransPort time to first byte, and the gateway's
// RSS with 200 concurrent TransPort connections. Run with
// TINYTOR_GATEWAY_BENCH=1 go test -run 'TestGateway.*/Bench' ./scripts/integration
func benchGateway(t *testing.T, l *lanNet, gw *gatewayProc) {
	dnsAddr := netip.AddrPortFrom(l.gw, 53).String()
	query := func(c net.Conn, id uint16, name string) (time.Duration, error) {
		m := binary.BigEndian.AppendUint16(nil, id)
		m = append(m, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0)
		for _, lab := range strings.Split(name, ".") {
			m = append(m, byte(len(lab)))
			m = append(m, lab...)
		}
		m = append(m, 0, 0, 1, 0, 1)
		start := time.Now()
		if _, err := c.Write(m); err != nil {
			return 0, err
		}
		buf := make([]byte, 1500)
		for {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				return 0, err
			}
			if n >= 12 && binary.BigEndian.Uint16(buf) == id {
				if rc := buf[3] & 0x0f; rc != 0 {
					return 0, fmt.Errorf("rcode %d", rc)
				}
				return time.Since(start), nil
			}
		}
	}
	name := func(i int) string {
		return fmt.Sprintf("10-99-%d-%d.%s", 100+i/250, i%250+1, l.ipSuffix)
	}
	// Latency: 40 sequential queries for distinct names.
	var lat []time.Duration
	err := inNetns(l.ns, func() error {
		c, err := net.Dial("udp", dnsAddr)
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < 40; i++ {
			d, err := query(c, uint16(i+1), name(i))
			if err != nil {
				return fmt.Errorf("query %d: %w", i, err)
			}
			lat = append(lat, d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	// Throughput: 16 clients, 25 distinct names each.
	const clients, per = 16, 25
	conns := make([]net.Conn, clients)
	if err := inNetns(l.ns, func() error {
		for i := range conns {
			c, err := net.Dial("udp", dnsAddr)
			if err != nil {
				return err
			}
			conns[i] = c
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed sync.Map
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for j := 0; j < per; j++ {
				if _, err := query(c, uint16(1000+j), name(1000+i*per+j)); err != nil {
					failed.Store(i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	failed.Range(func(k, v any) bool { t.Errorf("DNS client %v: %v", k, v); return true })
	qps := float64(clients*per) / elapsed.Seconds()

	// TransPort time to first byte: 20 sequential GETs.
	var ttfb []time.Duration
	if err := inNetns(l.ns, func() error {
		for i := 0; i < 20; i++ {
			start := time.Now()
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(l.web, 80).String(), 20*time.Second)
			if err != nil {
				return err
			}
			c.SetDeadline(time.Now().Add(20 * time.Second))
			io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
			var b [1]byte
			_, err = c.Read(b[:])
			d := time.Since(start)
			c.Close()
			if err != nil {
				return err
			}
			ttfb = append(ttfb, d)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(ttfb, func(i, j int) bool { return ttfb[i] < ttfb[j] })

	// RSS with 200 concurrent TransPort connections, each with a completed
	// keep-alive request and held open.
	rss0 := gw.rssKB(t)
	const nconn = 200
	held := make([]net.Conn, 0, nconn)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	if err := inNetns(l.ns, func() error {
		for i := 0; i < nconn; i++ {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(l.web, 80).String(), 20*time.Second)
			if err != nil {
				return err
			}
			held = append(held, c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var okCount sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, c := range held {
		okCount.Add(1)
		go func() {
			defer okCount.Done()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
			buf := make([]byte, 512)
			n, _ := c.Read(buf)
			if bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	okCount.Wait()
	rss := gw.rssKB(t)
	if ok != nconn {
		t.Errorf("%d of %d held TransPort connections got their answer", ok, nconn)
	}
	t.Logf("BENCH %s: DNS %.1f queries/s (16 clients, %d queries, distinct names), median latency %.1f ms (40 sequential); TransPort TTFB median %.1f ms (20 sequential GET /); RSS %d kB idle, %d kB with %d concurrent TransPort connections (%d answered)",
		gw.name, qps, clients*per, ms(lat[len(lat)/2]), ms(ttfb[len(ttfb)/2]), rss0, rss, nconn, ok)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
