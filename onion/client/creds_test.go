package client

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"tinytor/onion/desc"
	"tinytor/onion/keys"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/event"
	"tinytor/tor/path"
)

func TestCredentials(t *testing.T) {
	c, err := New(Config{Net: noNetwork(t)})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newKey(t), newKey(t)
	d := t.TempDir()
	fileKey, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if err := os.WriteFile(filepath.Join(d, "a.auth_private"), keys.ClientAuthPrivateFile(a, fileKey), 0o600); err != nil {
		t.Fatal(err)
	}
	c.SetAuthDir(d)
	memKey, _ := ecdh.X25519().GenerateKey(rand.Reader)

	// A cached descriptor of a is dropped when a key for a is added.
	var bk [32]byte
	bk[0] = 7
	c.store(bk, a, &desc.Descriptor{Outer: &desc.Outer{Lifetime: time.Hour}}, time.Now())

	if replaced, err := c.AddCredential(Credential{Address: a, Key: memKey, ClientName: "x"}); err != nil || replaced {
		t.Fatalf("add: %v %v", replaced, err)
	}
	if len(c.descs) != 0 {
		t.Error("the cached descriptor survived AddCredential")
	}
	if got, err := c.authKey(a); err != nil || !got.Equal(memKey) {
		t.Fatalf("the controller's key does not take precedence: %v %v", got, err)
	}
	if replaced, err := c.AddCredential(Credential{Address: a, Key: memKey}); err != nil || !replaced {
		t.Fatalf("add again: %v %v", replaced, err)
	}
	if _, err := c.AddCredential(Credential{Address: b, Key: memKey}); err != nil {
		t.Fatal(err)
	}
	if got := c.Credentials(nil); len(got) != 2 || got[0].Permanent || got[1].Permanent {
		t.Fatalf("Credentials(nil): %+v, want the 2 controller keys (a's file is shadowed)", got)
	}
	if got := c.Credentials(&b); len(got) != 1 || got[0].Address != b {
		t.Fatalf("Credentials(b): %+v", got)
	}
	if ok, err := c.RemoveCredential(a); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if got, err := c.authKey(a); err != nil || !got.Equal(fileKey) {
		t.Fatalf("after removal the ClientOnionAuthDir key is used again: %v %v", got, err)
	}
	if got := c.Credentials(&a); len(got) != 1 || !got[0].Permanent || !got[0].Key.Equal(fileKey) {
		t.Fatalf("Credentials(a) lists the ClientOnionAuthDir key: %+v", got)
	}
	// Removing it deletes the file that holds it (a.auth_private).
	if ok, err := c.RemoveCredential(a); !ok || err != nil {
		t.Fatalf("remove the directory's key: %v %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(d, "a.auth_private")); !os.IsNotExist(err) {
		t.Fatalf("a.auth_private not removed: %v", err)
	}

	// Permanent: the file is written and removed.
	if _, err := c.AddCredential(Credential{Address: a, Key: memKey, Permanent: true}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d, a.Host()+".auth_private")
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, keys.ClientAuthPrivateFile(a, memKey)) {
		t.Fatalf("stored file: %q %v", got, err)
	}
	if ok, err := c.RemoveCredential(a); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("stored file not removed: %v", err)
	}
	c.SetAuthDir("")
	if _, err := c.AddCredential(Credential{Address: a, Key: memKey, Permanent: true}); !errors.Is(err, ErrNoAuthDir) {
		t.Fatalf("permanent without a directory: %v", err)
	}
	if _, err := c.AddCredential(Credential{Address: a}); err == nil {
		t.Fatal("a credential without a key was accepted")
	}
}

func TestFetchEvents(t *testing.T) {
	view := testView(t, 9)
	bus := &event.Bus{}
	c, err := New(Config{Net: netFunc{view: func() *path.Dir { return view },
		build: func(context.Context, circmgr.Target, circmgr.Options) (*circuit.Circuit, error) {
			return nil, errors.New("no circuits in this test")
		}}, Testing: true, Events: bus})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var evs []event.HSDesc
	unsub := bus.Subscribe(func(ev event.Event) {
		if e, ok := ev.(*event.HSDesc); ok {
			mu.Lock()
			evs = append(evs, *e)
			mu.Unlock()
		}
	})
	a := newKey(t)
	err = c.Fetch(context.Background(), a.Host())
	var oe *Error
	if !errors.As(err, &oe) || oe.Kind != DescNotFound {
		t.Fatalf("Fetch: %v, want DescNotFound", err)
	}
	mu.Lock()
	got := append([]event.HSDesc(nil), evs...)
	mu.Unlock()
	if len(got) != 12 {
		t.Fatalf("%d events, want REQUESTED and FAILED for each of 6 HSDirs", len(got))
	}
	for i, e := range got {
		want := "REQUESTED"
		if i%2 == 1 {
			want = "FAILED"
		}
		if e.Action != want || e.Address != a.Host() || e.HSDir.ID == ([20]byte{}) || len(e.DescriptorID) != 43 {
			t.Errorf("event %d: %+v, want %s", i, e, want)
		}
		if want == "FAILED" && e.Reason != "UNEXPECTED" {
			t.Errorf("event %d: reason %q", i, e.Reason)
		}
	}
	unsub()
	c.Fetch(context.Background(), a.Host())
	mu.Lock()
	defer mu.Unlock()
	if len(evs) != 12 {
		t.Errorf("events after unsubscribing: %d", len(evs)-12)
	}
	if err := c.Fetch(context.Background(), "nope.onion"); !errors.As(err, &oe) || oe.Kind != BadAddress {
		t.Errorf("Fetch of a bad address: %v", err)
	}
}
