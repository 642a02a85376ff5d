package service

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tinytor/onion/hscell"
	"tinytor/onion/hsntor"
	"tinytor/onion/keys"
	"tinytor/tor/cell"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/path"
)

// noNet is a Network that is never bootstrapped.
type noNet struct{}

func (noNet) NetworkView() *path.Dir { return nil }
func (noNet) BuildCircuitTo(context.Context, circmgr.Target, circmgr.Options) (*circuit.Circuit, error) {
	return nil, errors.New("no network in this test")
}

func testConfig(dir string) config.HiddenService {
	return config.HiddenService{Dir: dir, Version: 3, Ports: []config.HiddenServicePort{{VirtualPort: 80, Target: netip.MustParseAddrPort("127.0.0.1:8080")}}}
}

func TestNewCreatesKeysInCTorFormat(t *testing.T) {
	d := filepath.Join(t.TempDir(), "hs")
	s, err := New(noNet{}, Options{Config: testConfig(d)})
	if err != nil {
		t.Fatal(err)
	}
	s.store.Close()
	for _, f := range []string{SecretKeyFile, PublicKeyFile, HostnameFile} {
		fi, err := os.Stat(filepath.Join(d, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	host, _ := os.ReadFile(filepath.Join(d, HostnameFile))
	if string(host) != s.Address().String()+"\n" {
		t.Fatalf("hostname %q, address %s", host, s.Address())
	}
	sec, _ := os.ReadFile(filepath.Join(d, SecretKeyFile))
	if !strings.HasPrefix(string(sec), "== ed25519v1-secret: type0 ==\x00\x00\x00") || len(sec) != 96 {
		t.Fatalf("secret key file is not in C tor's format: %q", sec[:32])
	}
	// Same address on the next start.
	s2, err := New(noNet{}, Options{Config: testConfig(d)})
	if err != nil {
		t.Fatal(err)
	}
	s2.store.Close()
	if s2.Address() != s.Address() {
		t.Fatalf("address changed across restarts: %s, then %s", s.Address(), s2.Address())
	}
}

// TestCTorDirectory serves a HiddenServiceDir written by C tor 0.4.9.
func TestCTorDirectory(t *testing.T) {
	d := t.TempDir()
	for _, f := range []string{SecretKeyFile, PublicKeyFile, HostnameFile} {
		b, err := os.ReadFile(filepath.Join("../keys/testdata/ctor", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := os.ReadFile(filepath.Join(d, HostnameFile))
	s, err := New(noNet{}, Options{Config: testConfig(d)})
	if err != nil {
		t.Fatal(err)
	}
	s.store.Close()
	if s.Address().String()+"\n" != string(want) {
		t.Fatalf("address %s, C tor's hostname %q", s.Address(), want)
	}
	got, _ := os.ReadFile(filepath.Join(d, HostnameFile))
	if string(got) != string(want) {
		t.Fatalf("hostname rewritten as %q", got)
	}
}

func TestAuthorizedClients(t *testing.T) {
	d := t.TempDir()
	ad := filepath.Join(d, AuthorizedClientsDir)
	os.MkdirAll(ad, 0o700)
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	os.WriteFile(filepath.Join(ad, "alice.auth"), keys.AuthorizedClientFile(k.PublicKey()), 0o600)
	os.WriteFile(filepath.Join(ad, "notes.txt"), []byte("ignored"), 0o600)
	s, err := New(noNet{}, Options{Config: testConfig(d)})
	if err != nil {
		t.Fatal(err)
	}
	s.store.Close()
	if len(s.clients) != 1 || s.clients[0] != [32]byte(k.PublicKey().Bytes()) {
		t.Fatalf("authorized clients %x", s.clients)
	}
	os.WriteFile(filepath.Join(ad, "bad.auth"), []byte("descriptor:x25519:notbase32!"), 0o600)
	if s, err := New(noNet{}, Options{Config: testConfig(d)}); err == nil {
		s.store.Close()
		t.Fatal("a malformed .auth file was accepted")
	}
}

func TestHopFromLinkSpecs(t *testing.T) {
	rsa := [20]byte{1, 2, 3}
	ed := [32]byte{4, 5}
	specs := []cell.LinkSpec{cell.LinkSpecAddr(netip.MustParseAddrPort("127.0.0.1:5000")), cell.LinkSpecRSAID(rsa), cell.LinkSpecEdID(ed)}
	h, err := hscell.HopFromLinkSpecs(specs, [32]byte{9})
	if err != nil {
		t.Fatal(err)
	}
	if h.RSAID != rsa || h.Ed25519ID != ed || h.NtorKey != [32]byte{9} || len(h.Addrs) != 1 || h.Addrs[0].Port() != 5000 {
		t.Fatalf("hop %+v", h)
	}
	if _, err := hscell.HopFromLinkSpecs(specs[1:], [32]byte{}); err == nil {
		t.Error("accepted link specifiers without an address")
	}
	if _, err := hscell.HopFromLinkSpecs(specs[:1], [32]byte{}); err == nil {
		t.Error("accepted link specifiers without an RSA identity")
	}
}

// TestReplayedIntroduce2Refused records an INTRODUCE2 and delivers it
// twice: the second is refused by the replay cache.
func TestReplayedIntroduce2Refused(t *testing.T) {
	n := &path.Node{Relay: &dir.Relay{Nickname: "ip"}, MD: &dir.Microdesc{}}
	ip, err := newIntroPoint(n, time.Now(), testRand(t))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := keys.GenerateKey()
	bk := id.Blind(100, 1440)
	subcred := keys.Subcredential(id.Public(), bk.Public())
	entry := ip.descriptorEntry()
	c, err := hsntor.NewClient(rand.Reader, entry.AuthKey, entry.EncKey, subcred)
	if err != nil {
		t.Fatal(err)
	}
	pt := &hscell.IntroducePlaintext{Cookie: [20]byte{7}, OnionKey: [32]byte{8},
		LinkSpecs: []cell.LinkSpec{cell.LinkSpecAddr(netip.MustParseAddrPort("127.0.0.1:5001")), cell.LinkSpecRSAID([20]byte{3})}}
	body, err := hscell.BuildIntroduce1(c, entry.AuthKey, pt)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	other := [32]byte{1}
	if _, _, got, err := openIntroduction(ip, body, [][32]byte{other, subcred}, now); err != nil || got.Cookie != pt.Cookie {
		t.Fatalf("first INTRODUCE2: %v", err)
	}
	if _, _, _, err := openIntroduction(ip, body, [][32]byte{subcred}, now.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed INTRODUCE2: %v, want ErrReplay", err)
	}
	if _, _, _, err := openIntroduction(ip, body, [][32]byte{other}, now); err == nil {
		t.Fatal("INTRODUCE2 accepted under the wrong subcredential")
	}
}

func TestDirGroupReadable(t *testing.T) {
	d := filepath.Join(t.TempDir(), "hs")
	cfg := testConfig(d)
	cfg.DirGroupReadable = true
	s, err := New(noNet{}, Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	s.store.Close()
	want := map[string]os.FileMode{".": 0o750, HostnameFile: 0o640, PublicKeyFile: 0o640, SecretKeyFile: 0o600}
	for f, m := range want {
		fi, err := os.Stat(filepath.Join(d, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != m {
			t.Errorf("%s: mode %v, want %v", f, fi.Mode().Perm(), m)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Version = 2
	if _, err := New(noNet{}, Options{Config: cfg}); err == nil {
		t.Error("HiddenServiceVersion 2 accepted")
	}
	cfg = testConfig(t.TempDir())
	cfg.Ports = nil
	if _, err := New(noNet{}, Options{Config: cfg}); err == nil {
		t.Error("a service without ports accepted")
	}
}

// TestReplayedIntroduce2NoRendezvous delivers a recorded INTRODUCE2 twice
// through the service's handler: the first one leads to rendezvous
// circuit attempts, the replay to none.
func TestReplayedIntroduce2NoRendezvous(t *testing.T) {
	va := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	now := va.Add(time.Minute)
	rn := &recNet{view: testView(va), asks: map[[20]byte]int{}, rend: make(chan [20]byte, 100)}
	s, err := New(rn, Options{Config: testConfig(filepath.Join(t.TempDir(), "hs")), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.store.Close()
	ip, err := newIntroPoint(rn.view.Nodes[0], now, s.rng)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := s.timeParams(rn.view)
	if err != nil {
		t.Fatal(err)
	}
	bk := s.id.Blind(p.Num(va), p.LengthMinutes)
	entry := ip.descriptorEntry()
	c, err := hsntor.NewClient(rand.Reader, entry.AuthKey, entry.EncKey, keys.Subcredential(s.id.Public(), bk.Public()))
	if err != nil {
		t.Fatal(err)
	}
	rp := [20]byte{0xaa}
	body, err := hscell.BuildIntroduce1(c, entry.AuthKey, &hscell.IntroducePlaintext{OnionKey: [32]byte{8},
		LinkSpecs: []cell.LinkSpec{cell.LinkSpecAddr(netip.MustParseAddrPort("127.0.0.1:5001")), cell.LinkSpecRSAID(rp)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.handleIntroduce2(ctx, ip, append([]byte(nil), body...))
	if n := len(rn.rend); n != rendBuildTries {
		t.Fatalf("first INTRODUCE2: %d rendezvous circuit attempts, want %d", n, rendBuildTries)
	}
	if id := <-rn.rend; id != rp {
		t.Fatalf("rendezvous circuit to %x, want the RP %x", id, rp)
	}
	for len(rn.rend) > 0 {
		<-rn.rend
	}
	s.handleIntroduce2(ctx, ip, body)
	if n := len(rn.rend); n != 0 {
		t.Fatalf("replayed INTRODUCE2: %d rendezvous circuit attempts, want none", n)
	}
}
