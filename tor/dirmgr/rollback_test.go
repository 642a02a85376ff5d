package dirmgr

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/board/clock"
	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/event"
	"tinytor/tor/torlog"
)

// The documents in testdata were captured from a private C tor network
// (scripts/testnet, voting every 20 s): two consensuses signed by its three
// authorities, 40 s apart, and the authorities' certificates.

// memStore is a dir.FileStore in memory.
type memStore struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (s *memStore) WriteFile(name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = bytes.Clone(data)
	return nil
}

func (s *memStore) ReadFile(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return bytes.Clone(b), nil
}

type rollbackFixture struct {
	m         *Manager
	store     *memStore
	logs      *bytes.Buffer
	bus       *event.Bus
	consensus []event.Consensus
	older     []byte
	newer     []byte
	certs     []byte
	now       time.Time
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRollbackFixture(t *testing.T) *rollbackFixture {
	t.Helper()
	f := &rollbackFixture{
		store: &memStore{files: map[string][]byte{}},
		logs:  &bytes.Buffer{},
		bus:   &event.Bus{},
		older: readTestdata(t, "consensus-older"),
		newer: readTestdata(t, "consensus-newer"),
		certs: readTestdata(t, "certs"),
	}
	newer, err := dir.ParseConsensus(f.newer)
	if err != nil {
		t.Fatal(err)
	}
	// Both documents are still valid then: only their order tells them
	// apart.
	f.now = newer.ValidAfter.Add(5 * time.Second)
	torrc, err := config.Parse(readTestdata(t, "torrc"), "torrc", config.Env{Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f.bus.Subscribe(func(e event.Event) {
		if c, ok := e.(event.Consensus); ok {
			f.consensus = append(f.consensus, c)
		}
	})
	f.m = New(Config{
		Torrc:    func() *config.Config { return torrc },
		Log:      torlog.New(torlog.Sink{Min: torlog.Info, Max: torlog.Err, W: f.logs}),
		Now:      func() time.Time { return f.now },
		Cache:    &dir.Cache{Store: f.store},
		Progress: noProgress{},
		Events:   f.bus,
	})
	return f
}

type noProgress struct{}

func (noProgress) Reach(event.Phase) {}

// serve answers the consensus and certificate paths with doc and the
// captured certificates.
func (f *rollbackFixture) serve(doc []byte) getter {
	return func(p string, _ int64) ([]byte, error) {
		switch {
		case strings.Contains(p, "consensus"):
			return doc, nil
		case strings.HasPrefix(p, "/tor/keys/"):
			return f.certs, nil
		}
		return nil, errors.New("unexpected path " + p)
	}
}

// TestOlderConsensusRefused is the rollback attack: a directory cache
// offers a correctly signed consensus older than the one in use. It is
// refused with a log line, nothing is installed, and the network-time
// estimate does not move back.
func TestOlderConsensusRefused(t *testing.T) {
	f := newRollbackFixture(t)
	d, err := f.m.fetchConsensus(f.serve(f.newer), nil)
	if err != nil {
		t.Fatalf("newer consensus: %v", err)
	}
	f.m.install(d, false)
	newVA := d.Consensus.ValidAfter

	// A clock observing what the client publishes, as the board wires it.
	clk := clock.New(clock.Options{Now: func() time.Time { return f.now }, Synced: func() bool { return false }})
	for _, c := range f.consensus {
		clk.ObserveConsensus(c.ValidAfter, c.FreshUntil)
	}
	before := clk.Skew()

	_, err = f.m.fetchConsensus(f.serve(f.older), f.m.Current())
	var nn *NotNewerError
	if !errors.As(err, &nn) || !nn.Got.Before(nn.Have) {
		t.Fatalf("older consensus: err = %v, want a NotNewerError for an older one", err)
	}
	if !strings.Contains(f.logs.String(), "[warn] Refusing a consensus valid after") {
		t.Errorf("no log line for the refused consensus:\n%s", f.logs)
	}
	if got := f.m.Current().Consensus.ValidAfter; !got.Equal(newVA) {
		t.Fatalf("consensus in use moved to valid-after %s", got)
	}
	if len(f.consensus) != 1 {
		t.Fatalf("%d consensus events, want 1 (the refused one must not reach the clock)", len(f.consensus))
	}
	// Even if the older one reached the clock, it must not move it back.
	old, _ := dir.ParseConsensus(f.older)
	clk.ObserveConsensus(old.ValidAfter, old.FreshUntil)
	if after := clk.Skew(); after != before {
		t.Fatalf("clock skew moved from %s to %s on an older consensus", before, after)
	}
	// The same consensus again is "not newer" too, without a warning.
	f.logs.Reset()
	if _, err := f.m.fetchConsensus(f.serve(f.newer), f.m.Current()); !errors.As(err, &nn) || !nn.Got.Equal(nn.Have) {
		t.Fatalf("same consensus again: %v", err)
	}
	if strings.Contains(f.logs.String(), "[warn]") {
		t.Errorf("the same consensus again was warned about:\n%s", f.logs)
	}
}

// TestRestartWithOlderCachedConsensus: the cache holds an older consensus
// than the network; it is loaded, and the newer one replaces it.
func TestRestartWithOlderCachedConsensus(t *testing.T) {
	f := newRollbackFixture(t)
	f.store.files[dir.ConsensusFile] = f.older
	f.store.files[dir.CertsFile] = f.certs
	if !f.m.LoadCache() {
		t.Fatalf("cached consensus not loaded:\n%s", f.logs)
	}
	if len(f.consensus) != 1 || !f.consensus[0].Cached {
		t.Fatalf("events %+v, want one Cached consensus", f.consensus)
	}
	d, err := f.m.fetchConsensus(f.serve(f.newer), f.m.Current())
	if err != nil {
		t.Fatalf("newer consensus after an older cached one: %v", err)
	}
	f.m.install(d, false)
	if got, want := f.m.Current().Consensus.ValidAfter, d.Consensus.ValidAfter; !got.Equal(want) {
		t.Fatalf("consensus in use has valid-after %s, want %s", got, want)
	}
	if cached, _ := f.store.ReadFile(dir.ConsensusFile); !bytes.Equal(cached, f.newer) {
		t.Error("the cache still holds the older consensus")
	}
}
