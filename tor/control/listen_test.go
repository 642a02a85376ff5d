package control

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tinytor/tor/torlog"
)

func TestListen(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sub", "control.sock")
	for _, mode := range []os.FileMode{0o600, 0o660, 0o666} {
		l, err := Listen("unix", sock, mode)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("socket mode %v (%v), want %v", fi.Mode().Perm(), err, mode)
		}
		if got := ListenerAddr(l); got != "unix:"+sock {
			t.Errorf("ListenerAddr %q", got)
		}
		// Not closed: the next round replaces the stale socket file.
		defer l.Close()
	}
	l, err := Listen("tcp", "127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := ListenerAddr(l); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("ListenerAddr %q", got)
	}
}

func TestUseCookieFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	var a AuthConfig
	if err := a.UseCookieFile("cookie", true, torlog.Discard()); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "cookie")
	if a.CookieFile != want || len(a.Cookie) != CookieLen {
		t.Errorf("CookieFile %q, %d bytes of cookie", a.CookieFile, len(a.Cookie))
	}
	b, err := os.ReadFile(want)
	if err != nil || string(b) != string(a.Cookie) {
		t.Errorf("cookie file (%v) does not hold the cookie", err)
	}
	if fi, err := os.Stat(want); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("group-readable cookie mode %v (%v)", fi.Mode().Perm(), err)
	}
	if err := a.validate(); err != nil {
		t.Errorf("AuthConfig with the cookie: %v", err)
	}
	if err := new(AuthConfig).UseCookieFile(filepath.Join(want, "under-a-file"), false, torlog.Discard()); err == nil {
		t.Error("a cookie under a regular file was written")
	}
}
