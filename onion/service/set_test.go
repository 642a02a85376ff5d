package service

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tinytor/tor/config"
	"tinytor/tor/torlog"
)

// TestSetApply follows a torrc across reloads: a removed section stops its
// service, an added one starts, a changed one restarts with the same
// keys, the others keep running untouched, and a section that cannot be
// opened leaves everything as it was.
func TestSetApply(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logBuf strings.Builder
	log := torlog.New(torlog.Sink{Min: torlog.Notice, Max: torlog.Err, W: &logBuf})
	set := NewSet(ctx, noNet{}, Options{Log: log})
	defer set.Stop()
	root := t.TempDir()
	a, b, c := testConfig(filepath.Join(root, "a")), testConfig(filepath.Join(root, "b")), testConfig(filepath.Join(root, "c"))

	if err := set.Apply([]config.HiddenService{a, b}); err != nil {
		t.Fatal(err)
	}
	if n := len(set.Services()); n != 2 {
		t.Fatalf("%d services running, want 2", n)
	}
	svcA, svcB := set.running[a.Dir], set.running[b.Dir]

	if err := set.Apply([]config.HiddenService{a, c}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-svcB.done:
	default:
		t.Fatal("the removed service is still running")
	}
	if set.running[a.Dir] != svcA {
		t.Fatal("the unchanged service was restarted")
	}
	if set.running[c.Dir] == nil || set.running[b.Dir] != nil {
		t.Fatalf("running: %v", set.running)
	}

	// A changed section restarts its service, with the same address.
	a2 := a
	a2.Ports = append([]config.HiddenServicePort{}, a.Ports...)
	a2.Ports[0].Target = netip.MustParseAddrPort("127.0.0.1:8081")
	if err := set.Apply([]config.HiddenService{a2, c}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-svcA.done:
	default:
		t.Fatal("the changed service's old instance is still running")
	}
	if r := set.running[a.Dir]; r == nil || r == svcA || r.svc.Address() != svcA.svc.Address() {
		t.Fatalf("changed service: %v", r)
	}

	// A new section whose directory cannot be made: nothing changes.
	blocker := filepath.Join(root, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before := set.running[c.Dir]
	err := set.Apply([]config.HiddenService{testConfig(filepath.Join(blocker, "sub"))})
	if err == nil {
		t.Fatal("Apply with an impossible HiddenServiceDir succeeded")
	}
	if set.running[c.Dir] != before || set.running[a.Dir] == nil {
		t.Fatal("a failed Apply changed the running services")
	}

	set.Stop()
	if n := len(set.Services()); n != 0 {
		t.Fatalf("%d services after Stop", n)
	}
	for _, want := range []string{"is no longer configured; stopping it", "has new settings; restarting it"} {
		if !strings.Contains(logBuf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logBuf.String())
		}
	}
}
