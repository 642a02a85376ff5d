package ctlbackend

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tinytor/tor"
	"tinytor/tor/config"
	"tinytor/tor/torlog"
)

// freePort is a loopback TCP address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	group, sock := filepath.Join(dir, "group.sock"), filepath.Join(dir, "ctl", "control.sock")
	text := "DataDirectory " + dir + "\nControlPort " + freePort(t) + "\nControlPort unix:" + group + " GroupWritable\nControlSocket " + sock + "\n"
	cfg, err := config.Parse([]byte(text), "torrc", config.Env{Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	lns, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	if len(lns) != 3 || lns[0].Addr().Network() != "tcp" {
		t.Fatalf("%d listeners, first %v", len(lns), lns[0].Addr())
	}
	for path, mode := range map[string]os.FileMode{group: 0o660, sock: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, mode)
		}
	}

	// A socket that cannot be made is named; the listeners opened before
	// it are returned for closing.
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = config.Parse([]byte("DataDirectory "+dir+"\nControlPort "+freePort(t)+"\nControlSocket "+blocker+"/sub/s\n"), "torrc", config.Env{Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := Listen(cfg)
	for _, l := range opened {
		l.Close()
	}
	if err == nil || !strings.HasPrefix(err.Error(), "Failed to open ControlSocket "+blocker+"/sub/s: ") || len(opened) != 1 {
		t.Errorf("unmakeable socket: %d opened, %v", len(opened), err)
	}
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	var logs strings.Builder
	log := torlog.New(torlog.Sink{Min: torlog.Notice, Max: torlog.Err, W: &logs})
	cfg, err := config.Parse([]byte("DataDirectory "+dir+"\nCookieAuthentication 1\n"), "torrc", config.Env{Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := Auth(cfg, log)
	if err != nil || auth.Cookie == nil || auth.AllowNull || auth.CookieFile != filepath.Join(dir, "control_auth_cookie") {
		t.Errorf("CookieAuthentication 1: %+v, %v", auth, err)
	}
	cfg, err = config.Parse([]byte("DataDirectory "+dir+"\n"), "torrc", config.Env{Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	auth, err = Auth(cfg, log)
	if err != nil || !auth.AllowNull || !strings.Contains(logs.String(), "no authentication method has been configured") {
		t.Errorf("no authentication: %+v, %v; logs %q", auth, err, logs.String())
	}
	cfg.CookieAuthentication = true
	cfg.CookieAuthFile = filepath.Join(dir, "control_auth_cookie", "under-a-file")
	if _, err := Auth(cfg, log); err == nil || !strings.HasPrefix(err.Error(), "Error writing authentication cookie: ") {
		t.Errorf("unwritable cookie: %v", err)
	}
}

func TestListenerAddrs(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte("DataDirectory "+dir+"\nSocksPort 127.0.0.1:9150\nSocksPort unix:"+dir+"/socks\nTransPort 9040\nTransPort 192.168.1.1:9040\nHTTPTunnelPort 8118\n"), "torrc", config.Env{Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	client, err := tor.New(tor.Config{Torrc: cfg})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addrs := ListenerAddrs(client, []net.Listener{l}, []string{"127.0.0.1:9035"})
	for kind, want := range map[string]string{
		"socks":      "127.0.0.1:9150 unix:" + dir + "/socks",
		"control":    l.Addr().String(),
		"metrics":    "127.0.0.1:9035",
		"trans":      "127.0.0.1:9040 192.168.1.1:9040",
		"httptunnel": "127.0.0.1:8118",
		"other":      "",
	} {
		if got := strings.Join(addrs(kind), " "); got != want {
			t.Errorf("%s: %q, want %q", kind, got, want)
		}
	}
}
