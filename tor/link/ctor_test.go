package link

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tinytor/tor/cell"
)

// ctorRelay is a C tor relay started for a test.
type ctorRelay struct {
	addr string
	id   Identity
	log  string // path of its notice log
}

// startCTorRelay starts a single C tor relay on loopback, with a fake
// directory authority on loopback so that no other address is contacted,
// and returns once its ORPort is open and its keys exist. The relay is
// killed when the test ends.
func startCTorRelay(t *testing.T) *ctorRelay {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the C tor relay test in -short mode")
	}
	torPath, err := exec.LookPath("tor")
	if err != nil {
		if os.Getenv("TINYTOR_REQUIRE_TESTNET") == "1" {
			t.Fatalf("tor is not on PATH and TINYTOR_REQUIRE_TESTNET=1: %v", err)
		}
		t.Skip("tor is not on PATH")
	}
	dir := t.TempDir()
	orPort, dirPort := freePort(t), freePort(t)
	defaults := filepath.Join(dir, "torrc-defaults")
	empty := filepath.Join(dir, "empty")
	logPath := filepath.Join(dir, "notice.log")
	for _, p := range []string{defaults, empty} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	torrc := filepath.Join(dir, "torrc")
	conf := fmt.Sprintf(`DataDirectory %[1]s/data
ORPort 127.0.0.1:%[2]d
DirAuthority fakeauth orport=%[3]d no-v2 v3ident=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 127.0.0.1:%[3]d BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB
AssumeReachable 1
PublishServerDescriptor 0
TestingTorNetwork 1
SocksPort 0
ExitRelay 0
Address 127.0.0.1
OutboundBindAddress 127.0.0.1
ShutdownWaitLength 0
Nickname tinytorlinktest
ContactInfo tinytor test relay
GeoIPFile %[4]s
GeoIPv6File %[4]s
Log notice file %[5]s
Log notice stdout
`, dir, orPort, dirPort, empty, logPath)
	if err := os.WriteFile(torrc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// tor's log on stdout says when the ORPort is open and the keys are
	// written; read it until then (or until tor exits), then drain it.
	addr := fmt.Sprintf("127.0.0.1:%d", orPort)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, torPath, "--defaults-torrc", defaults, "-f", torrc)
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		cancel()
		pr.Close()
		t.Fatal(err)
	}
	ready := make(chan struct{})
	eof := make(chan struct{})
	var out bytes.Buffer // tor's output until ready; read after eof
	go func() {
		defer close(eof)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		listening, keys := false, false
		for sc.Scan() {
			if listening && keys {
				continue // drain
			}
			line := sc.Text()
			out.WriteString(line + "\n")
			listening = listening || strings.Contains(line, "Opened OR listener connection (ready) on "+addr)
			keys = keys || strings.Contains(line, "identity key ed25519 fingerprint")
			if listening && keys {
				close(ready)
			}
		}
	}()
	t.Cleanup(func() {
		cancel() // kills tor
		cmd.Wait()
		<-eof
	})
	select {
	case <-ready:
	case <-eof:
		t.Fatalf("tor exited before its relay was ready:\n%s", out.String())
	}

	r := &ctorRelay{addr: addr, log: logPath}
	fp := readFingerprintFile(t, filepath.Join(dir, "data", "fingerprint"))
	rsaID, err := hex.DecodeString(fp)
	if err != nil || len(rsaID) != 20 {
		t.Fatalf("bad RSA fingerprint %q: %v", fp, err)
	}
	edFP := readFingerprintFile(t, filepath.Join(dir, "data", "fingerprint-ed25519"))
	edID, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(edFP, "="))
	if err != nil || len(edID) != 32 {
		t.Fatalf("bad Ed25519 fingerprint %q: %v", edFP, err)
	}
	r.id = Identity{RSA: [20]byte(rsaID), Ed25519: [32]byte(edID)}
	return r
}

// readFingerprintFile returns the second field of a "nickname fingerprint"
// file.
func readFingerprintFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		t.Fatalf("%s: unexpected content %q", path, b)
	}
	return f[1]
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestCTorRelay opens channels to a real C tor relay: with the right
// identity the handshake succeeds and a CREATE_FAST gets a CREATED_FAST
// whose KH matches KDF-TOR(X|Y); with a wrong identity it fails.
func TestCTorRelay(t *testing.T) {
	relay := startCTorRelay(t)
	pool := cell.NewPool(16)
	cfg, logs := testConfig(pool)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := time.Now()
	ch, err := Dial(ctx, relay.addr, relay.id, cfg)
	after := time.Now()
	if err != nil {
		t.Fatalf("handshake with C tor: %v\n%s", err, logs)
	}
	defer ch.Close()
	if ch.Identity() != relay.id {
		t.Fatalf("identity %s, want %s", ch.Identity(), relay.id)
	}
	if ch.LinkVersion() != 5 {
		t.Errorf("link version %d, want 5", ch.LinkVersion())
	}
	// The relay shares our clock and stamped its NETINFO during the Dial, in
	// whole seconds (allow one more for C tor's per-second cached time).
	if s := ch.ClockSkew(); s > time.Second || s < -after.Sub(before)-2*time.Second {
		t.Errorf("clock skew with a relay on this machine: %s (handshake took %s)", s, after.Sub(before))
	}

	h := newTestHandler(pool)
	circID, err := ch.OpenCircuit(h)
	if err != nil {
		t.Fatal(err)
	}
	var x [cell.FastKeyLen]byte
	rand.Read(x[:])
	c := pool.Get()
	c.CircID, c.Command = circID, cell.CreateFast
	(&cell.CreateFastMsg{X: x}).MarshalTo(&c.Payload)
	if err := ch.Send(c); err != nil {
		t.Fatal(err)
	}
	var reply *cell.Cell
	select {
	case reply = <-h.cells:
	case err := <-h.closed:
		t.Fatalf("channel closed: %v", err)
	case <-ctx.Done():
		b, _ := os.ReadFile(relay.log)
		t.Fatalf("no reply to CREATE_FAST:\n%s", b)
	}
	if reply.Command != cell.CreatedFast || reply.CircID != circID {
		t.Fatalf("reply %v, want CREATED_FAST on %#x", reply, circID)
	}
	cf, err := cell.ParseCreatedFast(reply.Payload[:])
	if err != nil {
		t.Fatal(err)
	}
	// tor-spec 5.1.5, 5.2.1: KH is the first HASH_LEN bytes of
	// KDF-TOR(X|Y) = SHA1(X|Y|[00]) | ...
	kh := sha1.Sum(append(append(x[:], cf.Y[:]...), 0))
	if kh != cf.DerivativeKH {
		t.Fatalf("KH %x, want %x", cf.DerivativeKH, kh)
	}
	pool.Put(reply)

	d := pool.Get()
	d.CircID, d.Command = circID, cell.Destroy
	cell.MarshalDestroy(&d.Payload, cell.DestroyRequested)
	if err := ch.Send(d); err != nil {
		t.Fatal(err)
	}
	ch.CloseCircuit(circID)
	ch.Close()
	<-ch.Done()

	// Wrong identities are refused.
	wrongRSA := relay.id
	wrongRSA.RSA[0] ^= 0xff
	wrongEd := relay.id
	wrongEd.Ed25519[31] ^= 0xff
	for _, want := range []Identity{wrongRSA, wrongEd} {
		ch, err := Dial(ctx, relay.addr, want, cfg)
		if err == nil {
			ch.Close()
			t.Fatalf("handshake with wrong identity %s succeeded", want)
		}
		if !errors.Is(err, ErrWrongIdentity) {
			t.Fatalf("wrong identity %s: %v", want, err)
		}
	}
}
