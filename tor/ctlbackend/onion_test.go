package ctlbackend

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tinytor/onion/addr"
	onionclient "tinytor/onion/client"
	"tinytor/onion/ctl"
	"tinytor/onion/keys"
	"tinytor/tor/control"
)

// onionFixture is a backend with an onion client.
func onionFixture(t *testing.T) (*Backend, *onionclient.Client) {
	t.Helper()
	f := newFixture(t, "")
	oc, err := onionclient.New(onionclient.Config{Net: f.client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(oc.Close)
	cmds := ctl.New(ctl.Config{Client: f.client, Onion: oc})
	t.Cleanup(cmds.Close)
	b, err := New(Config{Client: f.client, Sources: f.b.cfg.Sources, Onion: cmds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, oc
}

func serviceIDOf(t *testing.T, k *keys.SigningKey) string {
	t.Helper()
	a, err := addr.FromKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return a.Host()
}

func TestAddDelOnion(t *testing.T) {
	b, _ := onionFixture(t)
	res, err := b.AddOnion(&control.AddOnionRequest{NewKey: true, Ports: []control.OnionPort{{Virt: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.PrivateKey) != keys.ExpandedLen {
		t.Fatalf("new key: %d bytes of private key, want %d", len(res.PrivateKey), keys.ExpandedLen)
	}
	k, err := keys.FromExpanded(res.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if id := serviceIDOf(t, k); id != res.ServiceID || !control.ValidOnionV3(id) {
		t.Fatalf("ServiceID %s does not belong to the returned key (%s)", res.ServiceID, id)
	}
	// The same key again collides.
	_, err = b.AddOnion(&control.AddOnionRequest{PrivateKey: res.PrivateKey, Ports: []control.OnionPort{{Virt: 81}}})
	wantCode(t, "ADD_ONION with a key in use", err, 550, "Onion address collision")

	// DiscardPK and Detach.
	res2, err := b.AddOnion(&control.AddOnionRequest{NewKey: true, DiscardPK: true, Detach: true,
		Ports: []control.OnionPort{{Virt: 80, Target: "8080"}, {Virt: 443, Target: "unix:/tmp/x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res2.PrivateKey != nil {
		t.Errorf("DiscardPK: the private key was returned")
	}
	if got, _ := b.GetInfo("onions/current"); got != res.ServiceID {
		t.Errorf("onions/current = %q, want %q", got, res.ServiceID)
	}
	if got, _ := b.GetInfo("onions/detached"); got != res2.ServiceID {
		t.Errorf("onions/detached = %q, want %q", got, res2.ServiceID)
	}

	// Removal, then the key can be used again, and its reply holds no key.
	if err := b.DelOnion(res.ServiceID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "DEL_ONION twice", b.DelOnion(res.ServiceID), 552, "Unknown Onion Service id")
	if got, _ := b.GetInfo("onions/current"); got != "" {
		t.Errorf("onions/current after DEL_ONION = %q", got)
	}
	res3, err := b.AddOnion(&control.AddOnionRequest{PrivateKey: res.PrivateKey, ClientAuthV3: [][32]byte{{1}},
		Ports: []control.OnionPort{{Virt: 80, Target: "127.0.0.1:8080"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res3.ServiceID != res.ServiceID || res3.PrivateKey != nil {
		t.Errorf("ADD_ONION with a given key: %+v, want ServiceID %s and no key", res3, res.ServiceID)
	}
	if err := b.DelOnion(res2.ServiceID); err != nil {
		t.Fatal(err)
	}
}

func TestAddOnionRefusals(t *testing.T) {
	b, _ := onionFixture(t)
	_, err := b.AddOnion(&control.AddOnionRequest{NewKey: true, NonAnonymous: true, Ports: []control.OnionPort{{Virt: 80}}})
	wantCode(t, "NonAnonymous", err, 551, "Non-anonymous")
	for _, target := range []string{"0", "localhost:80", "unix:", "127.0.0.1:0", "70000"} {
		_, err = b.AddOnion(&control.AddOnionRequest{NewKey: true, Ports: []control.OnionPort{{Virt: 80, Target: target}}})
		wantCode(t, "target "+target, err, 512, "Invalid VIRTPORT/TARGET")
	}
	_, err = b.AddOnion(&control.AddOnionRequest{PrivateKey: make([]byte, 10), Ports: []control.OnionPort{{Virt: 80}}})
	wantCode(t, "short key", err, 551, "key")
	if got, _ := b.GetInfo("onions/current"); got != "" {
		t.Errorf("refused services are listed: %q", got)
	}
}

func TestOnionClientAuth(t *testing.T) {
	b, oc := onionFixture(t)
	k, err := keys.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	id := serviceIDOf(t, k)
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cred := &control.OnionClientCredential{Address: id, PrivateKey: [32]byte(x.Bytes()), ClientName: "alice"}
	if r, err := b.OnionClientAuthAdd(cred); err != nil || r != control.ClientAuthAdded {
		t.Fatalf("add: %v %v", r, err)
	}
	if r, err := b.OnionClientAuthAdd(cred); err != nil || r != control.ClientAuthReplaced {
		t.Fatalf("add again: %v %v, want replaced", r, err)
	}
	got, err := b.OnionClientAuthView("")
	if err != nil || len(got) != 1 || got[0] != *cred {
		t.Fatalf("view: %+v %v, want %+v", got, err, *cred)
	}
	other, _ := keys.GenerateKey()
	if got, err := b.OnionClientAuthView(serviceIDOf(t, other)); err != nil || len(got) != 0 {
		t.Fatalf("view of another address: %+v %v", got, err)
	}
	if ok, err := b.OnionClientAuthRemove(id); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if ok, err := b.OnionClientAuthRemove(id); ok || err != nil {
		t.Fatalf("remove twice: %v %v", ok, err)
	}

	// Permanent credentials need ClientOnionAuthDir and live there.
	cred.Permanent = true
	_, err = b.OnionClientAuthAdd(cred)
	wantCode(t, "Permanent without ClientOnionAuthDir", err, 553, "Unable to store creds")
	dir := t.TempDir()
	oc.SetAuthDir(dir)
	if _, err := b.OnionClientAuthAdd(cred); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, id+".auth_private")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := addr.Parse(id)
	if !bytes.Equal(data, keys.ClientAuthPrivateFile(a, x)) {
		t.Errorf("stored credential %q", data)
	}
	if ok, err := b.OnionClientAuthRemove(id); !ok || err != nil {
		t.Fatalf("remove permanent: %v %v", ok, err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the permanent credential file is still there: %v", err)
	}
}

func TestHSFetchArgs(t *testing.T) {
	b, _ := onionFixture(t)
	k, _ := keys.GenerateKey()
	id := serviceIDOf(t, k)
	wantCode(t, "HSFETCH SERVER=", b.HSFetch(id, []string{"$AAAA"}), 551, "SERVER=")
	if err := b.HSFetch(id, nil); err != nil {
		t.Fatalf("HSFETCH: %v", err)
	}
	f := newFixture(t, "")
	wantCode(t, "HSFETCH without onion client", f.b.HSFetch(id, nil), 551, "not running")
	_, err := f.b.OnionClientAuthView("")
	wantCode(t, "VIEW without onion client", err, 551, "not running")
}

// TestOnionServerReplies checks the replies on the wire.
func TestOnionServerReplies(t *testing.T) {
	b, _ := onionFixture(t)
	srv, err := control.NewServer(control.Config{Backend: b, Auth: control.AuthConfig{AllowNull: true}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	exchange := func(cmd string) []string {
		t.Helper()
		fmt.Fprintf(nc, "%s\r\n", cmd)
		var out []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v (so far %q)", cmd, err, out)
			}
			out = append(out, strings.TrimRight(line, "\r\n"))
			if len(line) >= 4 && line[3] == ' ' {
				return out
			}
		}
	}
	exchange("AUTHENTICATE")
	k, _ := keys.GenerateKey()
	id := serviceIDOf(t, k)
	kb64 := base64.StdEncoding.EncodeToString(k.Expanded())
	if got := exchange("ADD_ONION ED25519-V3:" + kb64 + " Port=80,127.0.0.1:8080"); strings.Join(got, "|") != "250-ServiceID="+id+"|250 OK" {
		t.Errorf("ADD_ONION with a key: %q", got)
	}
	got := exchange("ADD_ONION NEW:ED25519-V3 Port=80")
	if len(got) != 3 || !strings.HasPrefix(got[0], "250-ServiceID=") || !strings.HasPrefix(got[1], "250-PrivateKey=ED25519-V3:") || got[2] != "250 OK" {
		t.Fatalf("ADD_ONION NEW: %q", got)
	}
	newID := strings.TrimPrefix(got[0], "250-ServiceID=")
	pk, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(got[1], "250-PrivateKey=ED25519-V3:"))
	if err != nil {
		t.Fatal(err)
	}
	if nk, err := keys.FromExpanded(pk); err != nil || serviceIDOf(t, nk) != newID {
		t.Errorf("the returned key is not the service's: %v", err)
	}
	got = exchange("ADD_ONION NEW:BEST Flags=DiscardPK,Detach Port=80")
	if len(got) != 2 || !strings.HasPrefix(got[0], "250-ServiceID=") || got[1] != "250 OK" {
		t.Fatalf("ADD_ONION DiscardPK: %q", got)
	}
	detID := strings.TrimPrefix(got[0], "250-ServiceID=")
	got = exchange("GETINFO onions/detached")
	if len(got) != 2 || got[0] != "250-onions/detached="+detID {
		t.Errorf("GETINFO onions/detached: %q", got)
	}
	if got := exchange("ADD_ONION ED25519-V3:" + kb64 + " Port=80"); got[0] != "550 Onion address collision" {
		t.Errorf("collision: %q", got)
	}
	for _, del := range []string{id, newID, detID} {
		if got := exchange("DEL_ONION " + del); got[0] != "250 OK" {
			t.Errorf("DEL_ONION: %q", got)
		}
	}
	if got := exchange("DEL_ONION " + id); got[0] != "552 Unknown Onion Service id" {
		t.Errorf("DEL_ONION twice: %q", got)
	}
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	xb64 := base64.StdEncoding.EncodeToString(x.Bytes())
	for _, c := range []struct{ cmd, want string }{
		{"ONION_CLIENT_AUTH_ADD " + id + " x25519:" + xb64, "250 OK"},
		{"ONION_CLIENT_AUTH_ADD " + id + " x25519:" + xb64 + " ClientName=bob", "251 Client for onion existed and replaced"},
		{"ONION_CLIENT_AUTH_VIEW " + id, "250-ONION_CLIENT_AUTH_VIEW " + id + "|250-CLIENT " + id + " x25519:" + xb64 + " ClientName=bob|250 OK"},
		{"ONION_CLIENT_AUTH_REMOVE " + id, "250 OK"},
		{"ONION_CLIENT_AUTH_REMOVE " + id, `251 No credentials for "` + id + `"`},
		{"HSFETCH " + id, "250 OK"},
	} {
		if got := strings.Join(exchange(c.cmd), "|"); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.cmd, got, c.want)
		}
	}
}

func TestAddOnionCollidesWithTorrc(t *testing.T) {
	f := newFixture(t, "")
	k, _ := keys.GenerateKey()
	id := serviceIDOf(t, k)
	cmds := ctl.New(ctl.Config{Client: f.client, Collides: func(s string) bool { return s == id }})
	defer cmds.Close()
	b, err := New(Config{Client: f.client, Sources: f.b.cfg.Sources, Onion: cmds})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.AddOnion(&control.AddOnionRequest{PrivateKey: k.Expanded(), Ports: []control.OnionPort{{Virt: 80}}})
	wantCode(t, "ADD_ONION of a torrc service's key", err, 550, "Onion address collision")
}
