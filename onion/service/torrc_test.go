package service

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"tinytor/tor/config"
)

func TestSetAndTorrcIDs(t *testing.T) {
	dirs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
	cfgs := []config.HiddenService{testConfig(dirs[0]), testConfig(dirs[1])}
	set := NewSet(context.Background(), noNet{}, Options{})
	if err := set.Apply(cfgs); err != nil {
		t.Fatal(err)
	}
	set.Stop()
	ids := TorrcIDs(append(cfgs, testConfig(filepath.Join(t.TempDir(), "never-started"))))
	if len(ids) != 2 {
		t.Fatalf("ids %v: want the two started services", ids)
	}
	for _, d := range dirs {
		// The keys stay: a service made again has an ID of the set.
		s, err := New(noNet{}, Options{Config: testConfig(d)})
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(s.Address().String(), ".onion")
		s.Close()
		if !ids[id] {
			t.Errorf("%s: ID %s not in %v", d, id, ids)
		}
	}

	// One bad section: nothing runs, the error names it.
	bad := testConfig(filepath.Join(t.TempDir(), "c"))
	bad.Ports = nil
	set = NewSet(context.Background(), noNet{}, Options{})
	if err := set.Apply([]config.HiddenService{cfgs[0], bad}); err == nil || !strings.HasPrefix(err.Error(), "Onion service: ") {
		t.Errorf("a section without ports: %v", err)
	}
	if n := len(set.Services()); n != 0 {
		t.Errorf("%d services running after a failed Apply", n)
	}
	// The good one was closed again: its directory can be opened.
	s, err := New(noNet{}, Options{Config: cfgs[0]})
	if err != nil {
		t.Fatalf("after a failed Apply: %v", err)
	}
	s.Close()
}
