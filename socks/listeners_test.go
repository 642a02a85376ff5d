package socks

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/tor/torlog"
)

// lockedBuilder collects log lines from several goroutines.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// accepts reports whether something accepts connections at network,
// address.
func accepts(network, address string) bool {
	c, err := net.DialTimeout(network, address, 10*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// greets reports whether a SOCKS5 server answers a greeting at network,
// address.
func greets(t *testing.T, network, address string) bool {
	t.Helper()
	c, err := net.DialTimeout(network, address, 10*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		return false
	}
	var reply [2]byte
	_, err = c.Read(reply[:])
	return err == nil && reply == [2]byte{5, 0}
}

func TestListenersFollowConfiguration(t *testing.T) {
	var logs lockedBuilder
	ls := NewListeners(&fakeDialer{}, torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logs}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sock := filepath.Join(t.TempDir(), "sub", "socks.sock")
	tcpAddr := unusedPort(t)
	unix := Port{Network: "unix", Address: sock, Config: Config{ID: "unix:" + sock, Flags: DefaultFlags()}}
	tcp := Port{Network: "tcp", Address: tcpAddr, Config: Config{ID: tcpAddr, Flags: DefaultFlags()}}

	if err := ls.Apply(ctx, []Port{unix}); err != nil {
		t.Fatal(err)
	}
	// (Unix clients have no address for the default policy to accept:
	// only the listener is checked.)
	if !accepts("unix", sock) {
		t.Fatal("no listener on the Unix socket")
	}
	if err := ls.Apply(ctx, []Port{unix, tcp}); err != nil {
		t.Fatal(err)
	}
	if !greets(t, "unix", sock) || !greets(t, "tcp", tcpAddr) {
		t.Fatal("both ports do not answer")
	}
	// The Unix socket goes; the TCP port stays.
	if err := ls.Apply(ctx, []Port{tcp}); err != nil {
		t.Fatal(err)
	}
	if accepts("unix", sock) {
		t.Error("the removed Unix socket still answers")
	}
	if !strings.Contains(logs.String(), "Closing no-longer-configured Socks listener on unix:"+sock) {
		t.Errorf("no notice of the closing: %s", logs.String())
	}
	if strings.Contains(logs.String(), "Closing no-longer-configured Socks listener on "+tcpAddr) {
		t.Error("an unchanged port was reopened")
	}
	// Changed flags reopen the port.
	tcp.Config.Flags.IsolateDestAddr = true
	if err := ls.Apply(ctx, []Port{tcp}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "Closing no-longer-configured Socks listener on "+tcpAddr) || !greets(t, "tcp", tcpAddr) {
		t.Errorf("changed flags: not reopened: %s", logs.String())
	}
	// A port that cannot open is named; the others stay.
	bad := Port{Network: "tcp", Address: "192.0.2.1:1", Config: Config{ID: "192.0.2.1:1"}}
	if err := ls.Apply(ctx, []Port{tcp, bad}); err == nil || !strings.Contains(err.Error(), "Failed to open SocksPort 192.0.2.1:1: ") {
		t.Errorf("unbindable port: %v", err)
	}
	if !greets(t, "tcp", tcpAddr) {
		t.Error("a failing port closed the others")
	}
	ls.Close()
	if greets(t, "tcp", tcpAddr) {
		t.Error("a port answers after Close")
	}
}
