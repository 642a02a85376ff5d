package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"tinytor/onion/addr"
	"tinytor/onion/keys"
)

// onionService is an extra C tor onion service joined to the test network.
type onionService struct {
	addr addr.Address
	dir  string
	cmd  *exec.Cmd
	out  *procLog // tor's log on stdout
	done chan struct{}
}

// startOnionService starts a C tor onion service on the network, serving
// the network's HTTP server on port 80, with the same options
// scripts/testnet gives its own service. authorized, if non-nil, is the
// one client (alice) allowed to read its descriptor. extra are more torrc
// lines.
func startOnionService(t *testing.T, n *Network, authorized *ecdh.PublicKey, extra ...string) *onionService {
	t.Helper()
	dir := t.TempDir()
	hsDir := filepath.Join(dir, "hs")
	if err := os.MkdirAll(filepath.Join(hsDir, "authorized_clients"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(hsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Our own identity key, so that the address is known before tor runs.
	id, err := keys.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := addr.FromKey(id.Public())
	if err != nil {
		t.Fatal(err)
	}
	host, err := keys.HostnameFile(id.Public())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"hs_ed25519_secret_key": id.SecretKeyFile(),
		"hs_ed25519_public_key": keys.PublicKeyFile(id.Public()),
		"hostname":              host,
	}
	if authorized != nil {
		files["authorized_clients/alice.auth"] = keys.AuthorizedClientFile(authorized)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(hsDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	frag, err := os.ReadFile(n.TorrcFragment)
	if err != nil {
		t.Fatal(err)
	}
	torrc := string(frag) + fmt.Sprintf(`
DataDirectory %[1]s/data
Log notice file %[1]s/notice.log
SafeLogging 0
ShutdownWaitLength 0
OutboundBindAddress 127.0.0.1
RunAsDaemon 0
SocksPort 0
HiddenServiceDir %[2]s
HiddenServicePort 80 %[3]s
Log [rend]info file %[1]s/rend.log
Log [rend]info stdout
`, dir, hsDir, n.HTTPAddr) + strings.Join(extra, "\n") + "\n"
	torrcPath := filepath.Join(dir, "torrc")
	empty := filepath.Join(dir, "empty-defaults")
	if err := os.WriteFile(torrcPath, []byte(torrc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &onionService{addr: a, dir: dir, done: make(chan struct{})}
	s.cmd = exec.Command("tor", "--defaults-torrc", empty, "-f", torrcPath)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if s.out, err = startLogged(s.cmd); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "notice.log"))
			t.Logf("onion service notice.log:\n%s", b)
		}
	})
	return s
}

// stop ends the service's tor and waits for it.
func (s *onionService) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// waitUploaded waits until the service logged a successful descriptor
// upload.
func (s *onionService) waitUploaded(t *testing.T, timeout time.Duration) {
	t.Helper()
	s.out.wait(t, "Uploading hidden service descriptor: finished with status 200", timeout)
}

// onionReply returns the SOCKS5 reply code of err (0 if err is nil, -1 if
// err is not a SOCKS reply).
func onionReply(err error) int {
	if err == nil {
		return 0
	}
	var re socksReplyError
	if errors.As(err, &re) {
		return int(re)
	}
	return -1
}

// ttfb connects to host:80 through proxy as SOCKS user, sends a GET and
// returns the time from the start of the SOCKS connection to the first
// byte of the response, and the whole response.
func ttfb(ctx context.Context, proxy netip.AddrPort, user, host string) (time.Duration, []byte, error) {
	start := time.Now()
	conn, err := dialSOCKS5Auth(ctx, proxy, user, "x", host, 80)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", host); err != nil {
		return 0, nil, err
	}
	var first [1]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		return 0, nil, err
	}
	d := time.Since(start)
	rest, err := io.ReadAll(conn)
	return d, append(first[:], rest...), err
}

// referenceNewnym sends SIGNAL NEWNYM to the reference C tor client, which
// also purges its onion service client state (descriptors, rendezvous
// circuits), so that its next onion connection is cold.
func referenceNewnym(t *testing.T, n *Network) {
	t.Helper()
	cookie, err := os.ReadFile(n.ClientCookie)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", n.ClientControl.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	for _, cmd := range []string{"AUTHENTICATE " + hex.EncodeToString(cookie), "SIGNAL NEWNYM"} {
		if _, err := fmt.Fprintf(conn, "%s\r\n", cmd); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "250") {
			t.Fatalf("reference client: %s: %q %v", strings.Fields(cmd)[0], line, err)
		}
	}
}

// referenceNewnymPurge sends NEWNYM to the reference C tor client and
// waits for it to purge its onion service client state, which it says in
// an INFO log event (C tor defers a NEWNYM that comes within 10 s of the
// last).
func referenceNewnymPurge(t *testing.T, n *Network) {
	t.Helper()
	cookie, err := os.ReadFile(n.ClientCookie)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", n.ClientControl.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	c := &refControl{conn: conn, r: bufio.NewReader(conn)}
	c.command(t, "AUTHENTICATE "+hex.EncodeToString(cookie))
	c.command(t, "SETEVENTS INFO")
	if _, err := fmt.Fprintf(conn, "SIGNAL NEWNYM\r\n"); err != nil {
		t.Fatal(err)
	}
	for {
		line := c.readLine(t)
		switch {
		case strings.HasPrefix(line, "650"):
			if strings.Contains(line, "INFO") && strings.Contains(line, "Hidden service client state has been purged") {
				return
			}
		case line != "250 OK":
			t.Fatalf("reference client: SIGNAL NEWNYM: %q", line)
		}
	}
}

// unusedOnion returns the address of a fresh identity key that no
// service uses.
func unusedOnion(t *testing.T) string {
	t.Helper()
	id, err := keys.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := addr.FromKey(id.Public())
	if err != nil {
		t.Fatal(err)
	}
	return a.String()
}

// mistype changes one character of an onion address, keeping it base32.
func mistype(onion string) string {
	b := []byte(onion)
	if b[10] == 'a' {
		b[10] = 'b'
	} else {
		b[10] = 'a'
	}
	return string(b)
}

// onionTestBinary is the tinytor these tests run: TINYTOR_TEST_BINARY if
// set (a -race build, for example), else the run's build.
func onionTestBinary(t *testing.T) string {
	if b := os.Getenv("TINYTOR_TEST_BINARY"); b != "" {
		return b
	}
	return tinytorBinary(t, "")
}

// checkNoRace fails t if a -race build of tinytor reported a data race.
func checkNoRace(t *testing.T, p *tinytorProc) {
	t.Helper()
	for _, l := range p.log() {
		if strings.Contains(l, "WARNING: DATA RACE") {
			t.Errorf("tinytor reported a data race:\n%s", strings.Join(p.log(), "\n"))
			return
		}
	}
}

// TestOnionClient reaches the network's C tor onion service through
// tinytor (page, 1 MiB file, cold time to first byte against the reference
// C tor client), checks the bad address reply, and client authorization
// against an extra C tor service that requires it.
func TestOnionClient(t *testing.T) {
	n := RequireNetwork(t)
	alice, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	authSvc := startOnionService(t, n, alice.PublicKey()) // boots while we test the rest
	authDir := t.TempDir()
	ext := freePort(t)
	p := startTinytor(t, n, onionTestBinary(t), "", nil,
		"ClientOnionAuthDir "+authDir,
		fmt.Sprintf("SocksPort %s ExtendedErrors", ext))
	bootstrapped(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	defer checkNoRace(t, p)

	t.Run("BadAddress", func(t *testing.T) {
		bad := mistype(n.Onion)
		start := time.Now()
		_, err := DialSOCKS5(ctx, ext, bad, 80)
		el := time.Since(start)
		// 0xF6 comes only from checking the address itself, before any
		// descriptor fetch; how fast that is depends on the machine, so it
		// is only logged.
		if got := onionReply(err); got != 0xF6 {
			t.Fatalf("mistyped %s: %v (reply %#x), want reply 0xF6", bad, err, got)
		}
		// Without ExtendedErrors: general failure.
		if _, err := DialSOCKS5(ctx, p.socks, bad, 80); onionReply(err) != 1 {
			t.Errorf("mistyped address without ExtendedErrors: %v, want general failure", err)
		}
		t.Logf("bad address answered in %s", el)
	})

	t.Run("DescriptorNotFound", func(t *testing.T) {
		// A valid address of no service: every HSDir answers 404.
		missing := unusedOnion(t)
		_, err := DialSOCKS5(ctx, ext, missing, 80)
		if got := onionReply(err); got != 0xF0 {
			t.Fatalf("unknown service: %v (reply %#x), want reply 0xF0", err, got)
		}
	})

	t.Run("TimeToFirstByte", func(t *testing.T) {
		// Cold: a client that has never reached the service (no
		// descriptor, no circuits to it), but is bootstrapped. For tinytor
		// that is a fresh process; for C tor, NEWNYM purges its onion
		// service client state. Rounds alternate to share the machine's
		// load; the medians are compared.
		const rounds = 3
		var ours, ref, oursWarm, refWarm []time.Duration
		for i := 0; i < rounds; i++ {
			q := p
			if i > 0 {
				q = startTinytor(t, n, onionTestBinary(t), "", nil)
				bootstrapped(t, q)
			}
			user := fmt.Sprintf("ttfb-%d", i)
			joins := func() int {
				c := 0
				for _, l := range q.log() {
					if strings.Contains(l, "Joined onion service") {
						c++
					}
				}
				return c
			}
			joined := joins()
			d, body, err := ttfb(ctx, q.socks, user, n.Onion)
			if err != nil || !bytes.Contains(body, []byte(n.Marker)) {
				t.Fatalf("cold onion connection through tinytor: %v (body %q)", err, body)
			}
			w, _, err := ttfb(ctx, q.socks, user, n.Onion)
			if err != nil {
				t.Fatalf("warm onion connection through tinytor: %v", err)
			}
			if got := joins() - joined; got != 1 {
				t.Errorf("two streams of one SOCKS user made %d rendezvous; want one, reused", got)
			}
			ours, oursWarm = append(ours, d), append(oursWarm, w)
			for _, l := range q.log() {
				if strings.Contains(l, "Joined onion service") {
					t.Logf("tinytor: %s", l)
				}
			}
			if i > 0 {
				q.stop()
				checkNoRace(t, q)
			}

			referenceNewnymPurge(t, n)
			d, body, err = ttfb(ctx, n.ClientSOCKS, user, n.Onion)
			if err != nil || !bytes.Contains(body, []byte(n.Marker)) {
				t.Fatalf("cold onion connection through the reference C tor client: %v", err)
			}
			w, _, err = ttfb(ctx, n.ClientSOCKS, user, n.Onion)
			if err != nil {
				t.Fatalf("warm onion connection through the reference C tor client: %v", err)
			}
			ref, refWarm = append(ref, d), append(refWarm, w)
		}
		med := func(ds []time.Duration) time.Duration {
			s := slices.Clone(ds)
			slices.Sort(s)
			return s[len(s)/2]
		}
		t.Logf("onion time to first byte, median of %d: cold tinytor %s, C tor %s (ratio %.2f); warm tinytor %s, C tor %s",
			rounds, med(ours).Round(time.Millisecond), med(ref).Round(time.Millisecond), med(ours).Seconds()/med(ref).Seconds(),
			med(oursWarm).Round(time.Millisecond), med(refWarm).Round(time.Millisecond))
		t.Logf("cold samples: tinytor %v, C tor %v", ours, ref)
	})

	t.Run("Curl", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("curl not installed")
		}
		run := func(url string) []byte {
			t.Helper()
			out, err := exec.CommandContext(ctx, curl, "-sS", "--fail", "--max-time", "120",
				"--socks5-hostname", p.socks.String(), url).Output()
			if err != nil {
				t.Fatalf("curl %s: %v", url, err)
			}
			return out
		}
		if body := run("http://" + n.Onion + "/"); !bytes.Contains(body, []byte(n.Marker)) {
			t.Errorf("marker missing from %q", body)
		}
		u := n.File1M.URL[strings.Index(n.File1M.URL[len("http://"):], "/")+len("http://"):]
		body := run("http://" + n.Onion + u)
		if got := sha256.Sum256(body); got != n.File1M.SHA256 {
			t.Errorf("1 MiB over the onion service: %d bytes, sha256 %x, want %x", len(body), got, n.File1M.SHA256)
		}
	})

	t.Run("ClientAuth", func(t *testing.T) {
		authSvc.waitUploaded(t, 4*time.Minute)
		host := authSvc.addr.String()
		if _, err := DialSOCKS5(ctx, ext, host, 80); onionReply(err) != 0xF4 {
			t.Fatalf("no key: %v, want reply 0xF4", err)
		}
		wrong, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(authDir, "alice.auth_private")
		if err := os.WriteFile(keyFile, keys.ClientAuthPrivateFile(authSvc.addr, wrong), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := DialSOCKS5(ctx, ext, host, 80); onionReply(err) != 0xF5 {
			t.Fatalf("wrong key: %v, want reply 0xF5", err)
		}
		if err := os.WriteFile(keyFile, keys.ClientAuthPrivateFile(authSvc.addr, alice), 0o600); err != nil {
			t.Fatal(err)
		}
		resp, err := Get(ctx, ext, "http://"+host+"/")
		if err != nil {
			t.Fatalf("right key: %v", err)
		}
		if !bytes.Contains(resp.Body, []byte(n.Marker)) {
			t.Fatalf("right key: marker missing from %q", resp.Body)
		}

	})
}
