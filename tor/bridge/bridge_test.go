package bridge

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"
	"tinytor/tor/link"

	"tinytor/tor/config"
	"tinytor/tor/dir"
)

// memStore is a FileStore in memory.
type memStore map[string][]byte

func (s memStore) WriteFile(name string, data []byte) error {
	s[name] = append([]byte(nil), data...)
	return nil
}

func (s memStore) ReadFile(name string) ([]byte, error) {
	if d, ok := s[name]; ok {
		return d, nil
	}
	return nil, os.ErrNotExist
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// published is when the test descriptors were made (their certificates
// are valid then).
var published = time.Date(2026, 12, 3, 15, 45, 0, 0, time.UTC)

func TestSplitDescriptors(t *testing.T) {
	a, b := mustRead(t, "serverdesc-bridge1"), mustRead(t, "serverdesc-exit2")
	got := splitDescriptors(append(append([]byte(nil), a...), b...))
	if len(got) != 2 || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) {
		t.Fatalf("split into %d parts", len(got))
	}
}

func TestLoadCacheAndDir(t *testing.T) {
	desc := mustRead(t, "serverdesc-bridge1")
	sd, err := dir.ParseBridgeDescriptor(desc, nil, published)
	if err != nil {
		t.Fatal(err)
	}
	store := memStore{CacheName: append(append([]byte(nil), desc...), mustRead(t, "serverdesc-exit2")...)}
	plain := config.Bridge{Addr: sd.Address}
	other := config.Bridge{Addr: netip.MustParseAddrPort("127.0.0.1:1"), Fingerprint: sd.Fingerprint, HasFingerprint: true, Transport: "obfs4"}
	wrongFP := config.Bridge{Addr: sd.Address, Fingerprint: [20]byte{1}, HasFingerprint: true}
	m := New(Config{Bridges: []config.Bridge{plain, other, wrongFP}, Cache: store, Now: func() time.Time { return published }})
	if m.Have() || m.Dir() != nil {
		t.Fatal("descriptors before loading")
	}
	if n := m.LoadCache(); n != 2 {
		t.Fatalf("LoadCache loaded %d, want 2 (the plain bridge by address, the obfs4 one by fingerprint; not the one with another fingerprint)", n)
	}
	st := m.Status()
	if !st[0].HaveDescriptor || !st[1].HaveDescriptor || st[2].HaveDescriptor {
		t.Fatalf("status %+v", st)
	}
	d := m.Dir()
	if d == nil || len(d.Nodes) != 2 {
		t.Fatalf("Dir() = %+v", d)
	}
	n := d.Nodes[1]
	if n.Identity != sd.Fingerprint || n.ORAddrPort() != other.Addr || n.MD.NtorOnionKey != sd.NtorOnionKey || n.MD.Ed25519ID != sd.Ed25519ID {
		t.Errorf("node %+v, md %+v", n.Relay, n.MD)
	}
	if !d.Consensus.Usable(published, 0) {
		t.Error("the bridges' view is not usable now")
	}
	if m.Dir() != d {
		t.Error("Dir() rebuilt without a change")
	}
	if b, ok := m.ByAddr(other.Addr); !ok || b.Transport != "obfs4" {
		t.Errorf("ByAddr = %+v, %v", b, ok)
	}
}

func TestLoadCacheExpired(t *testing.T) {
	store := memStore{CacheName: mustRead(t, "serverdesc-bridge1")}
	m := New(Config{Bridges: []config.Bridge{{Addr: netip.MustParseAddrPort("127.0.0.1:24400")}}, Cache: store,
		Now: func() time.Time { return published.Add(365 * 24 * time.Hour) }})
	if n := m.LoadCache(); n != 0 {
		t.Fatalf("loaded %d descriptors whose certificates expired", n)
	}
}

func TestFetchFailureNamesBridge(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:9")
	m := New(Config{Bridges: []config.Bridge{{Addr: addr}}, Channels: failingChannels{}})
	err := m.Fetch(t.Context(), false)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("127.0.0.1:9: refused")) {
		t.Fatalf("Fetch = %v", err)
	}
	if st := m.Status(); st[0].Attempts != 1 || st[0].Failures != 1 || st[0].LastError == "" {
		t.Errorf("status %+v", st[0])
	}
}

type failingChannels struct{}

func (failingChannels) Get(context.Context, netip.AddrPort, link.Identity, string) (*link.Channel, error) {
	return nil, errors.New("refused")
}
