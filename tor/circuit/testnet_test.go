package circuit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/circuit"
	"tinytor/tor/link"
)

// This test runs the circuit code against a private C tor network started
// with scripts/testnet. It is skipped under -short and when tor is not
// installed, unless TINYTOR_REQUIRE_TESTNET=1. TINYTOR_TESTNET_ENV may name
// the testnet.env of a network that is already running, to reuse it.

func testnetEnv(t *testing.T) map[string]string {
	t.Helper()
	require := os.Getenv("TINYTOR_REQUIRE_TESTNET") == "1"
	skip := func(why string) {
		if require {
			t.Fatalf("TINYTOR_REQUIRE_TESTNET=1 but %s", why)
		}
		t.Skip(why)
	}
	envFile := os.Getenv("TINYTOR_TESTNET_ENV")
	if envFile == "" {
		if testing.Short() {
			t.Skip("-short: not starting a C tor network")
		}
		if _, err := exec.LookPath("tor"); err != nil {
			skip("tor is not installed")
		}
		script, err := filepath.Abs("../../scripts/testnet")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(script); err != nil {
			skip("scripts/testnet is missing")
		}
		dir := filepath.Join(t.TempDir(), "net")
		stop := func() {
			out, err := exec.Command(script, "stop", dir).CombinedOutput()
			if err != nil {
				t.Logf("testnet stop: %v\n%s", err, out)
			}
		}
		t.Cleanup(stop)
		cmd := exec.Command(script, "start", dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("testnet start: %v\n%s", err, stderr.String())
		}
		envFile = filepath.Join(dir, "testnet.env")
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = strings.Trim(v, `'"`)
		}
	}
	return env
}

func unhex20(t *testing.T, s string) [20]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 20 {
		t.Fatalf("bad fingerprint %q", s)
	}
	return [20]byte(b)
}

func b64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// httpGet sends a minimal HTTP/1.0 GET on s and returns the body.
func httpGet(t *testing.T, s *circuit.Stream, host, path string) []byte {
	t.Helper()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(s, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("reading %s: %v (after %d bytes)", path, err, len(resp))
	}
	head, body, ok := bytes.Cut(resp, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("%s: no end of HTTP header in %q", path, resp[:min(len(resp), 200)])
	}
	status, _, _ := bytes.Cut(head, []byte("\r\n"))
	if !bytes.Contains(status, []byte(" 200 ")) {
		t.Fatalf("%s: %s", path, status)
	}
	return body
}

type relay struct {
	id    [20]byte
	addr  netip.AddrPort
	md    string // microdescriptor digest (base64)
	exit  bool
	ntor  [32]byte
	ed    [32]byte
	hasMD bool
}

// parseConsensus takes the r, m and s lines of a microdesc consensus.
func parseConsensus(t *testing.T, doc []byte) []*relay {
	var out []*relay
	var cur *relay
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "r":
			if len(f) < 8 {
				t.Fatalf("short r line %q", sc.Text())
			}
			id, err := b64(f[2])
			if err != nil || len(id) != 20 {
				t.Fatalf("bad identity in %q", sc.Text())
			}
			port, _ := strconv.Atoi(f[6])
			cur = &relay{id: [20]byte(id), addr: netip.AddrPortFrom(netip.MustParseAddr(f[5]), uint16(port))}
			out = append(out, cur)
		case "m":
			if cur != nil && len(f) > 1 {
				cur.md = f[1]
			}
		case "s":
			if cur != nil {
				for _, fl := range f[1:] {
					if fl == "Exit" {
						cur.exit = true
					}
				}
			}
		}
	}
	return out
}

func TestTestnet(t *testing.T) {
	env := testnetEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pool := cell.NewPool(256)

	// 1. CREATE_FAST to an authority, BEGIN_DIR, consensus.
	auth := strings.Split(env["TESTNET_AUTH_1"], ",")
	if len(auth) < 2 {
		t.Fatalf("bad TESTNET_AUTH_1 %q", env["TESTNET_AUTH_1"])
	}
	fpFile, err := os.ReadFile(filepath.Join(env["TESTNET_DIR"], auth[0], "fingerprint"))
	if err != nil {
		t.Fatal(err)
	}
	fpFields := strings.Fields(string(fpFile))
	authID := unhex20(t, fpFields[len(fpFields)-1])
	ch, err := link.Dial(ctx, auth[1], link.Identity{RSA: authID}, link.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	dirCirc, err := circuit.CreateFast(ctx, chanAdapter{ch}, circuit.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer dirCirc.Close()
	s, err := dirCirc.OpenDirStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons := httpGet(t, s, auth[1], "/tor/status-vote/current/consensus-microdesc")
	s.Close()
	if !bytes.Contains(cons, []byte("network-status-version 3 microdesc")) {
		t.Fatalf("not a microdesc consensus: %q", cons[:min(len(cons), 200)])
	}
	relays := parseConsensus(t, cons)
	t.Logf("consensus: %d bytes, %d relays", len(cons), len(relays))

	// 2. Microdescriptors (one stream each) for the ntor keys.
	var usable []*relay
	for _, r := range relays {
		if r.md == "" {
			continue
		}
		s, err := dirCirc.OpenDirStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		md := httpGet(t, s, auth[1], "/tor/micro/d/"+strings.TrimRight(r.md, "="))
		s.Close()
		for _, line := range strings.Split(string(md), "\n") {
			if k, ok := strings.CutPrefix(line, "id ed25519 "); ok {
				key, err := b64(strings.TrimSpace(k))
				if err != nil || len(key) != 32 {
					t.Fatalf("bad id ed25519 line %q", line)
				}
				r.ed = [32]byte(key)
			}
			if k, ok := strings.CutPrefix(line, "ntor-onion-key "); ok {
				key, err := b64(strings.TrimSpace(k))
				if err != nil || len(key) != 32 {
					t.Fatalf("bad ntor-onion-key line %q", line)
				}
				r.ntor = [32]byte(key)
				r.hasMD = true
			}
		}
		if r.hasMD {
			usable = append(usable, r)
		}
	}
	var guard, middle, exit *relay
	for _, r := range usable {
		switch {
		case r.exit && exit == nil:
			exit = r
		case !r.exit && guard == nil:
			guard = r
		case !r.exit && middle == nil:
			middle = r
		}
	}
	if guard == nil || middle == nil || exit == nil {
		t.Fatalf("need two non-exits and an exit with microdescriptors; have %d usable relays", len(usable))
	}

	// 3. A 3-hop ntor circuit: CREATE2, EXTEND2, EXTEND2.
	if guard.ed == ([32]byte{}) || exit.ed == ([32]byte{}) {
		t.Fatal("microdescriptors without an Ed25519 identity")
	}
	gch, err := link.Dial(ctx, guard.addr.String(), link.Identity{RSA: guard.id, Ed25519: guard.ed}, link.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer gch.Close()
	hop := func(r *relay) circuit.HopInfo {
		// With the Ed25519 identity, so that the relays check it too.
		return circuit.HopInfo{RSAID: r.id, Ed25519ID: r.ed, NtorKey: r.ntor, Addrs: []netip.AddrPort{r.addr}}
	}
	c, err := circuit.Create(ctx, chanAdapter{gch}, hop(guard), circuit.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, r := range []*relay{middle, exit} {
		if err := c.Extend(ctx, hop(r)); err != nil {
			t.Fatal(err)
		}
	}

	// 4. BEGIN to the testnet HTTP server: the marker page, then 1 MiB
	// (more than a circuit window, so SENDMEs must be accepted by C tor).
	httpAddr := netip.MustParseAddrPort(env["TESTNET_HTTP_ADDR"])
	open := func() *circuit.Stream {
		s, err := c.OpenStream(ctx, httpAddr.Addr().String(), httpAddr.Port(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s = open()
	body := httpGet(t, s, httpAddr.String(), "/")
	s.Close()
	if !bytes.Contains(body, []byte(env["TESTNET_MARKER"])) {
		t.Fatalf("marker %q not in %q", env["TESTNET_MARKER"], body)
	}
	s = open()
	start := time.Now()
	big := httpGet(t, s, httpAddr.String(), "/1M")
	s.Close()
	sum := sha256.Sum256(big)
	if hex.EncodeToString(sum[:]) != strings.ToLower(env["TESTNET_SHA256_1M"]) {
		t.Fatalf("1M body (%d bytes) has the wrong sha256", len(big))
	}
	t.Logf("1 MiB over 3 hops in %v", time.Since(start))

	// 5. Upload 1 MiB (more than a circuit window) to a sink on loopback
	// that answers with the SHA-256 of what it read: C tor's exit sends us
	// authenticated SENDMEs, which we check against our digests.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const upLen = 1 << 20
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		if _, err := io.CopyN(h, conn, upLen); err != nil {
			return
		}
		conn.Write(h.Sum(nil))
	}()
	sinkAddr := ln.Addr().(*net.TCPAddr).AddrPort()
	s, err = c.OpenStream(ctx, sinkAddr.Addr().String(), sinkAddr.Port(), 0)
	if err != nil {
		t.Fatal(err)
	}
	up := make([]byte, upLen)
	for i := range up {
		up[i] = byte(i * 31)
	}
	s.SetDeadline(time.Now().Add(60 * time.Second))
	start = time.Now()
	if _, err := s.Write(up); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if want := sha256.Sum256(up); !bytes.Equal(got, want[:]) {
		t.Fatal("uploaded data arrived altered")
	}
	t.Logf("1 MiB upload over 3 hops in %v", time.Since(start))

	// 6. RESOLVE: the exits have no working resolver, so an error answer
	// is fine; what matters is that a RESOLVED cell came back and parsed.
	ans, err := c.Resolve(ctx, "www.example.com")
	var re *circuit.ResolveError
	if err != nil && !errors.As(err, &re) {
		t.Fatal(err)
	}
	t.Logf("RESOLVE www.example.com: %+v %v", ans, err)
	// 7. EXTEND2 with a wrong Ed25519 identity: the guard refuses, and the
	// circuit dies with a typed error carrying the relay's reason.
	bad, err := circuit.Create(ctx, chanAdapter{gch}, hop(guard), circuit.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	wrong := hop(middle)
	wrong.Ed25519ID[0] ^= 1
	err = bad.Extend(ctx, wrong)
	var de *circuit.DestroyedError
	if !errors.As(err, &de) {
		t.Fatalf("Extend with a wrong Ed25519 identity: %v", err)
	}
	t.Logf("Extend with a wrong Ed25519 identity: %v", err)

	if err := c.Err(); err != nil {
		t.Fatalf("circuit died: %v", err)
	}
}

// chanAdapter lets a *link.Channel carry circuits: circuit.Handler and
// link.Handler have the same methods but are distinct types.
type chanAdapter struct{ *link.Channel }

func (a chanAdapter) OpenCircuit(h circuit.Handler) (uint32, error) { return a.Channel.OpenCircuit(h) }
