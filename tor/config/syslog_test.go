package config

import (
	"net"
	"path/filepath"
	"regexp"
	"testing"
)

func TestSyslogWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	old := syslogPaths
	syslogPaths = []string{path}
	defer func() { syslogPaths = old }()
	w, err := openSyslog()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("Bootstrapped 100% (done): Done\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := srv.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	// As log/syslog writes to a local daemon: <PRI>Stamp tag[pid]: msg.
	re := `^<29>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d tinytor\[\d+\]: Bootstrapped 100% \(done\): Done\n$`
	if ok, _ := regexp.MatchString(re, string(buf[:n])); !ok {
		t.Fatalf("syslog message %q", buf[:n])
	}
	syslogPaths = []string{filepath.Join(t.TempDir(), "none")}
	if _, err := openSyslog(); err == nil {
		t.Fatal("openSyslog without a daemon succeeded")
	}
}
