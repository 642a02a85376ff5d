package integration

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	oaddr "tinytor/onion/addr"
	"tinytor/onion/keys"
)

// This file tests onion services hosted by tinytor (issue 6).

// hsUploadRE matches tinytor's log of a started upload round.
var hsUploadRE = regexp.MustCompile(`uploading descriptor for period (\d+) \(revision (\d+), (\d+) introduction points\) to (\d+) HSDirs`)

// waitServiceUploaded waits until tinytor has uploaded its descriptors
// to every HSDir of one round: as many "uploaded to" lines as the upload
// lines announced, counted from line from.
func waitServiceUploaded(t *testing.T, p *tinytorProc, from int, timeout time.Duration) {
	t.Helper()
	waitUploadRounds(t, p, from, 2, timeout)
}

// waitUploadRounds is waitServiceUploaded for at least rounds upload
// rounds (two per service: the current and the next descriptor).
func waitUploadRounds(t *testing.T, p *tinytorProc, from, rounds int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		want, got, seen := 0, 0, 0
		lines := p.log()
		for _, l := range lines[min(from, len(lines)):] {
			if m := hsUploadRE.FindStringSubmatch(l); m != nil {
				k, _ := strconv.Atoi(m[4])
				want += k
				seen++
			}
			if strings.Contains(l, "Onion service") && strings.Contains(l, " uploaded to ") {
				got++
			}
		}
		if seen >= rounds && got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tinytor's onion service did not upload its descriptors within %s (%d of %d uploads done)", timeout, got, want)
		}
		// Wait for the next log line (or the deadline).
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.exited:
			t.Fatal("tinytor exited")
		case <-time.After(time.Until(deadline)):
		}
	}
}

// onionURL is u with its host replaced by the onion address.
func onionURL(t *testing.T, u, onion string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.Host = onion
	return pu.String()
}

// getOnion fetches rawURL through proxy, retrying (a fresh descriptor
// may take a moment to be fetchable) until ctx ends.
func getOnion(ctx context.Context, t *testing.T, proxy netip.AddrPort, rawURL string) (*Response, error) {
	t.Helper()
	var last error
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 90*time.Second)
		r, err := Get(actx, proxy, rawURL)
		cancel()
		if err == nil {
			return r, nil
		}
		last = err
		t.Logf("GET %s attempt %d: %v", rawURL, attempt+1, err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(5 * time.Second):
		}
	}
}

func readHostname(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "hostname"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestOnionServiceHosting: tinytor hosts a service that the reference C
// tor client reaches (marker page, 1 MiB file); unknown ports are refused;
// after a restart the service is reachable again under the same address.
func TestOnionServiceHosting(t *testing.T) {
	n := RequireNetwork(t)
	bin := tinytorBinary(t, "")
	hsDir := filepath.Join(t.TempDir(), "hs")
	dataDir := t.TempDir()
	lines := []string{"HiddenServiceDir " + hsDir, "HiddenServicePort 80 " + n.HTTPAddr.String(), "HiddenServiceNumIntroductionPoints 2"}
	start := time.Now()
	p := startTinytor(t, n, bin, dataDir, nil, lines...)
	waitServiceUploaded(t, p, 0, 4*time.Minute)
	t.Logf("descriptors uploaded %.1f s after tinytor started", time.Since(start).Seconds())
	onion := readHostname(t, hsDir)
	for _, f := range []string{"hs_ed25519_secret_key", "hs_ed25519_public_key", "hostname"} {
		fi, err := os.Stat(filepath.Join(hsDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	referenceNewnym(t, n)
	t0 := time.Now()
	r, err := getOnion(ctx, t, n.ClientSOCKS, "http://"+onion+"/")
	if err != nil {
		t.Fatalf("C tor client to the tinytor-hosted service: %v", err)
	}
	if !strings.Contains(string(r.Body), n.Marker) {
		t.Fatalf("marker missing from %q", r.Body)
	}
	t.Logf("C tor client fetched the marker page in %.1f s", time.Since(t0).Seconds())
	r, err = getOnion(ctx, t, n.ClientSOCKS, onionURL(t, n.File1M.URL, onion))
	if err != nil {
		t.Fatalf("1 MiB through the tinytor-hosted service: %v", err)
	}
	if got := sha256.Sum256(r.Body); got != n.File1M.SHA256 {
		t.Fatalf("1 MiB: %d bytes, sha256 %x, want %x", len(r.Body), got, n.File1M.SHA256)
	}
	// A port the service does not offer.
	if c, err := DialSOCKS5(ctx, n.ClientSOCKS, onion, 82); err == nil {
		c.Close()
		t.Error("a stream to an unconfigured port was accepted")
	}

	// Restart: same address, reachable again.
	p.stop()
	restart := time.Now()
	p2 := startTinytor(t, n, bin, dataDir, nil, lines...)
	waitServiceUploaded(t, p2, 0, 4*time.Minute)
	if got := readHostname(t, hsDir); got != onion {
		t.Fatalf("address changed across restart: %s, then %s", onion, got)
	}
	uploaded := time.Since(restart)
	// The reference client still has the old descriptor (its
	// introduction points are gone): it must find the new one by itself.
	r, err = getOnion(ctx, t, n.ClientSOCKS, "http://"+onion+"/")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if !strings.Contains(string(r.Body), n.Marker) {
		t.Fatalf("after restart: marker missing from %q", r.Body)
	}
	t.Logf("after a restart: descriptors uploaded in %.1f s, service reachable (client with a stale descriptor) in %.1f s",
		uploaded.Seconds(), time.Since(restart).Seconds())
	for i, proc := range []*tinytorProc{p, p2} {
		for _, l := range proc.log() {
			if testing.Verbose() && strings.Contains(l, "Onion service") {
				t.Logf("run %d: %s", i+1, l)
			}
			if strings.Contains(l, "Onion service") && (strings.Contains(l, "[warn]") || strings.Contains(l, "[err]")) {
				t.Errorf("tinytor warned: %s", l)
			}
		}
	}
}

// hostTinytorService starts tinytor hosting hsDir's service (port 80 to
// the network's HTTP server, plus extra torrc lines) and waits until its
// descriptors are uploaded.
func hostTinytorService(t *testing.T, n *Network, hsDir string, extra ...string) *tinytorProc {
	t.Helper()
	lines := append([]string{"HiddenServiceDir " + hsDir, "HiddenServicePort 80 " + n.HTTPAddr.String()}, extra...)
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil, lines...)
	waitServiceUploaded(t, p, 0, 4*time.Minute)
	return p
}

// cTor is a C tor process joined to the test network.
type cTor struct {
	dir   string
	socks netip.AddrPort
	cmd   *exec.Cmd
	out   *procLog // notice and rend info log on stdout
	done  chan struct{}
}

// startCTor runs C tor with the network's torrc fragment and extra lines;
// its notice log is dir/notice.log.
func startCTor(t *testing.T, n *Network, socks bool, extra ...string) *cTor {
	t.Helper()
	c := &cTor{dir: t.TempDir(), done: make(chan struct{})}
	frag, err := os.ReadFile(n.TorrcFragment)
	if err != nil {
		t.Fatal(err)
	}
	socksLine := "SocksPort 0"
	if socks {
		c.socks = freePort(t)
		socksLine = "SocksPort " + c.socks.String()
	}
	torrc := string(frag) + fmt.Sprintf("\nDataDirectory %[1]s/data\nLog notice file %[1]s/notice.log\nLog [rend]info file %[1]s/rend.log\nLog notice stdout\nLog [rend]info stdout\nSafeLogging 0\nShutdownWaitLength 0\nRunAsDaemon 0\n%[2]s\n", c.dir, socksLine) +
		strings.Join(extra, "\n") + "\n"
	torrcPath := filepath.Join(c.dir, "torrc")
	empty := filepath.Join(c.dir, "empty-defaults")
	os.WriteFile(torrcPath, []byte(torrc), 0o600)
	os.WriteFile(empty, nil, 0o600)
	c.cmd = exec.Command("tor", "--defaults-torrc", empty, "-f", torrcPath)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if c.out, err = startLogged(c.cmd); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(c.dir, "notice.log"))
			t.Logf("C tor notice.log:\n%s", b)
		}
	})
	return c
}

func (c *cTor) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// waitLog waits until C tor logs s (notice, or info for rend).
func (c *cTor) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	c.out.wait(t, s, timeout)
}

// TestOnionServiceTinytorClient: a second tinytor process reaches the
// tinytor-hosted service.
func TestOnionServiceTinytorClient(t *testing.T) {
	n := RequireNetwork(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	gitLog := exec.Command("git", "log", "--oneline", "-1", "--", "onion/client")
	gitLog.Dir = root
	if out, _ := gitLog.Output(); len(out) == 0 {
		t.Skip("the onion client (onion/client) has not landed: skipping the tinytor client half")
	}
	hsDir := filepath.Join(t.TempDir(), "hs")
	hostTinytorService(t, n, hsDir)
	onion := readHostname(t, hsDir)
	c := startTinytor(t, n, tinytorBinary(t, ""), "", nil)
	bootstrapped(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	r, err := getOnion(ctx, t, c.socks, "http://"+onion+"/")
	if err != nil {
		t.Fatalf("tinytor client to the tinytor-hosted service: %v", err)
	}
	if !strings.Contains(string(r.Body), n.Marker) {
		t.Fatalf("marker missing from %q", r.Body)
	}
	t.Logf("tinytor client fetched the marker page in %.1f s", time.Since(t0).Seconds())
	r, err = getOnion(ctx, t, c.socks, onionURL(t, n.File1M.URL, onion))
	if err != nil {
		t.Fatalf("1 MiB: %v", err)
	}
	if got := sha256.Sum256(r.Body); got != n.File1M.SHA256 {
		t.Fatalf("1 MiB: %d bytes, sha256 %x, want %x", len(r.Body), got, n.File1M.SHA256)
	}
}

// TestOnionServiceKeyDirInterop: a HiddenServiceDir made by C tor is
// served by tinytor under the same address, and one made by tinytor is
// served by C tor.
func TestOnionServiceKeyDirInterop(t *testing.T) {
	n := RequireNetwork(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// C tor makes the keys without touching the network.
	ctorDir := filepath.Join(t.TempDir(), "hs")
	mk := startCTor(t, n, false, "DisableNetwork 1", "HiddenServiceDir "+ctorDir, "HiddenServicePort 80 "+n.HTTPAddr.String())
	waitFile(t, filepath.Join(ctorDir, "hostname"), mk.done, time.Minute)
	mk.stop()
	want := readHostname(t, ctorDir)
	p := hostTinytorService(t, n, ctorDir)
	if got := readHostname(t, ctorDir); got != want {
		t.Fatalf("tinytor changed C tor's hostname %s to %s", want, got)
	}
	referenceNewnym(t, n)
	r, err := getOnion(ctx, t, n.ClientSOCKS, "http://"+want+"/")
	if err != nil || !strings.Contains(string(r.Body), n.Marker) {
		t.Fatalf("C tor's key directory served by tinytor: %v", err)
	}
	p.stop()

	// tinytor makes the keys, C tor serves them.
	ttDir := filepath.Join(t.TempDir(), "hs")
	p = hostTinytorService(t, n, ttDir)
	p.stop()
	addr := readHostname(t, ttDir)
	svc := startCTor(t, n, false, "HiddenServiceDir "+ttDir, "HiddenServicePort 80 "+n.HTTPAddr.String())
	svc.waitLog(t, "Uploading hidden service descriptor: finished with status 200", 4*time.Minute)
	if got := readHostname(t, ttDir); got != addr {
		t.Fatalf("C tor changed tinytor's hostname %s to %s", addr, got)
	}
	referenceNewnym(t, n)
	r, err = getOnion(ctx, t, n.ClientSOCKS, "http://"+addr+"/")
	if err != nil || !strings.Contains(string(r.Body), n.Marker) {
		t.Fatalf("tinytor's key directory served by C tor: %v", err)
	}
}

// waitFile waits until path exists (polling: the writer is another
// process).
func waitFile(t *testing.T, path string, exited <-chan struct{}, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("process exited before writing %s", path)
		case <-deadline.C:
			t.Fatalf("%s not written within %s", path, timeout)
		case <-tick.C:
		}
	}
}

// TestOnionServiceClientAuth: with authorized_clients, the reference C
// tor client (no key) cannot connect; a C tor client with the key can.
func TestOnionServiceClientAuth(t *testing.T) {
	n := RequireNetwork(t)
	alice, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hsDir := filepath.Join(t.TempDir(), "hs")
	if err := os.MkdirAll(filepath.Join(hsDir, "authorized_clients"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hsDir, "authorized_clients", "alice.auth"), keys.AuthorizedClientFile(alice.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	// The keyed client bootstraps while the service starts.
	authDir := t.TempDir()
	hostTinytorService(t, n, hsDir)
	onion := readHostname(t, hsDir)
	a, err := oaddr.Parse(onion)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(authDir, "alice.auth_private"), keys.ClientAuthPrivateFile(a, alice), 0o600); err != nil {
		t.Fatal(err)
	}
	keyed := startCTor(t, n, true, "ClientOnionAuthDir "+authDir)

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	referenceNewnym(t, n)
	actx, acancel := context.WithTimeout(ctx, 90*time.Second)
	_, err = Get(actx, n.ClientSOCKS, "http://"+onion+"/")
	acancel()
	if err == nil {
		t.Fatal("a client without the key reached the service")
	}
	t.Logf("without the key: %v", err)
	// tinytor's client says why (proposal 304): client authorization
	// required, so the descriptor was found and is for authorized clients.
	ext := freePort(t)
	tc := startTinytor(t, n, tinytorBinary(t, ""), "", nil, fmt.Sprintf("SocksPort %s ExtendedErrors", ext))
	bootstrapped(t, tc)
	_, err = DialSOCKS5(ctx, ext, onion, 80)
	var re socksReplyError
	if !errors.As(err, &re) || re != 0xF4 {
		t.Fatalf("tinytor client without the key: %v, want SOCKS reply 0xF4 (client authorization required)", err)
	}
	keyed.waitLog(t, "Bootstrapped 100%", 3*time.Minute)
	r, err := getOnion(ctx, t, keyed.socks, "http://"+onion+"/")
	if err != nil || !strings.Contains(string(r.Body), n.Marker) {
		t.Fatalf("client with the key: %v", err)
	}
}

// TestOnionServiceLimits: HiddenServiceMaxStreams refuses a second
// concurrent stream on one rendezvous circuit; unix: targets work.
func TestOnionServiceLimits(t *testing.T) {
	n := RequireNetwork(t)
	sock := filepath.Join(t.TempDir(), "web.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nunix target says hi\n")
			}()
		}
	}()
	hsDir := filepath.Join(t.TempDir(), "hs")
	hostTinytorService(t, n, hsDir, "HiddenServicePort 8080 unix:"+sock, "HiddenServiceMaxStreams 1")
	onion := readHostname(t, hsDir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	referenceNewnym(t, n)
	r, err := getOnion(ctx, t, n.ClientSOCKS, "http://"+onion+":8080/")
	if err != nil || !strings.Contains(string(r.Body), "unix target says hi") {
		t.Fatalf("unix: target: %v", err)
	}
	// One stream held open; a second one on the same circuit is refused.
	held, err := DialSOCKS5(ctx, n.ClientSOCKS, onion, 80)
	if err != nil {
		t.Fatalf("first stream: %v", err)
	}
	defer held.Close()
	if c, err := DialSOCKS5(ctx, n.ClientSOCKS, onion, 80); err == nil {
		c.Close()
		t.Fatal("HiddenServiceMaxStreams 1: a second concurrent stream was accepted")
	}
	held.Close()
}

// TestOnionServiceSeveral: one tinytor process hosts two services.
func TestOnionServiceSeveral(t *testing.T) {
	n := RequireNetwork(t)
	d1, d2 := filepath.Join(t.TempDir(), "hs1"), filepath.Join(t.TempDir(), "hs2")
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil,
		"HiddenServiceDir "+d1, "HiddenServicePort 80 "+n.HTTPAddr.String(),
		"HiddenServiceDir "+d2, "HiddenServicePort 81 "+n.HTTPAddr.String())
	waitUploadRounds(t, p, 0, 4, 4*time.Minute)
	a1, a2 := readHostname(t, d1), readHostname(t, d2)
	if a1 == a2 {
		t.Fatal("two services share an address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	referenceNewnym(t, n)
	for _, u := range []string{"http://" + a1 + "/", "http://" + a2 + ":81/"} {
		r, err := getOnion(ctx, t, n.ClientSOCKS, u)
		if err != nil || !strings.Contains(string(r.Body), n.Marker) {
			t.Fatalf("%s: %v", u, err)
		}
	}
	if c, err := DialSOCKS5(ctx, n.ClientSOCKS, a2, 80); err == nil {
		c.Close()
		t.Error("the second service accepted the first one's port")
	}
}
