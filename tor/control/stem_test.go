package control

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const stemPython = "/usr/bin/python3"

// TestStemInterop drives the server with stem (Debian's python3-stem).
func TestStemInterop(t *testing.T) {
	if err := exec.Command(stemPython, "-c", "import stem").Run(); err != nil {
		if os.Getenv("TINYTOR_REQUIRE_TESTNET") == "1" {
			t.Fatalf("stem is required but %s cannot import it: %v", stemPython, err)
		}
		t.Skipf("stem not available for %s: %v", stemPython, err)
	}
	dir := t.TempDir()
	cookiePath := filepath.Join(dir, "control_auth_cookie")
	cookie, err := NewCookie(cookiePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	be := &fakeBackend{}
	s, err := NewServer(Config{Backend: be, Auth: AuthConfig{Cookie: cookie, CookieFile: cookiePath, HashedPasswords: []string{torHash}}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()

	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	cmd := exec.CommandContext(ctx, stemPython, "testdata/stem_interop.py", port, cookiePath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "ready" {
			s.Emit(CircEvent{ID: "12", Status: "BUILT", Path: []string{
				"$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~guard",
				"$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~exit"}, Purpose: "GENERAL"}.Event())
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("stem script: %v\nstdout:\n%s\nstderr:\n%s", err, strings.Join(lines, "\n"), stderr.String())
	}
	want := []string{
		"cookie 0.4.9.11-tinytor",
		"safecookie 0.4.9.11-tinytor",
		"password 0.4.9.11-tinytor",
		"auto 0.4.9.11-tinytor",
		"wrong password rejected",
		"protocolinfo Cookie,Password,Safecookie " + cookiePath + " 0.4.9.11-tinytor",
		"ready",
		"event 12 BUILT AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB GENERAL",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("stem output:\n%s\nwant:\n%s\nstderr:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"), stderr.String())
	}
}
