package watchdog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tinytor/tor/torlog"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type outcome struct {
	kicked  bool
	stalled []string
}

func TestKicksOnlyWhileHealthy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dev, err := OpenDevice(path, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if dev.UsesIoctl() {
		t.Fatal("ioctl mode on a regular file")
	}
	clk := &fakeClock{t: time.Unix(0, 0)}
	hb := NewHeartbeat(clk.Now)
	hb.Register("circuits", 10*time.Second)
	hb.Register("socks", 10*time.Second)
	var logbuf bytes.Buffer
	results := make(chan outcome)
	w, err := New(Config{
		Heartbeat: hb,
		Kickers:   []Kicker{dev},
		Log:       torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logbuf}),
		OnCheck:   func(k bool, s []string) { results <- outcome{k, s} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, ticks); close(done) }()
	step := func() outcome { ticks <- clk.Now(); return <-results }
	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}

	if o := step(); !o.kicked || size() != 1 {
		t.Fatalf("healthy at start: %+v, %d kicks", o, size())
	}
	for i := range 3 {
		clk.Add(5 * time.Second)
		hb.Beat("circuits")
		hb.Beat("socks")
		if o := step(); !o.kicked || size() != int64(2+i) {
			t.Fatalf("round %d: %+v, %d kicks", i, o, size())
		}
	}
	// circuits stalls: only socks beats.
	for i := range 3 {
		clk.Add(6 * time.Second)
		hb.Beat("socks")
		o := step()
		if i == 0 {
			if !o.kicked { // 6s since circuits' beat: still within 10s
				t.Fatalf("kick stopped early: %+v", o)
			}
			continue
		}
		if o.kicked || len(o.stalled) != 1 || o.stalled[0] != "circuits" {
			t.Fatalf("stalled round %d: %+v", i, o)
		}
	}
	if size() != 5 {
		t.Fatalf("%d kicks, want 5 (kicks continued while stalled)", size())
	}
	if n := strings.Count(logbuf.String(), "[warn]"); n != 1 || !strings.Contains(logbuf.String(), "circuits") {
		t.Fatalf("want one warning naming circuits, log:\n%s", logbuf.String())
	}
	hb.Beat("circuits")
	hb.Beat("socks")
	if o := step(); !o.kicked || size() != 6 {
		t.Fatalf("after recovery: %+v, %d", o, size())
	}
	cancel()
	<-done
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "kkkkkkV" {
		t.Fatalf("device saw %q, want six kicks then magic close", b)
	}
}

func TestDeviceOnPipe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dev, err := OpenDevice(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if dev.UsesIoctl() {
		t.Fatal("ioctl mode on a fifo")
	}
	if err := dev.Kick(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "kV" {
		t.Fatalf("pipe got %q", buf[:n])
	}
}

func TestOpenDeviceMissing(t *testing.T) {
	if _, err := OpenDevice(filepath.Join(t.TempDir(), "nope"), time.Second); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func TestHeartbeatRegister(t *testing.T) {
	hb := NewHeartbeat(nil)
	if err := hb.Register("x", 0); err == nil {
		t.Fatal("zero deadline accepted")
	}
	hb.Register("x", time.Hour)
	hb.Unregister("x")
	hb.Beat("unknown")
	if ok, s := hb.Check(); !ok || s != nil {
		t.Fatal(ok, s)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("nil Heartbeat accepted")
	}
	if KickInterval(15*time.Second) != 5*time.Second {
		t.Fatal("KickInterval")
	}
}

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifier(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		fmt.Sprintf("@tinytor-test-notify-%d-%d", os.Getpid(), time.Now().UnixNano()),
	} {
		c := listen(t, name)
		n, err := NotifierFromEnv(func(k string) string {
			if k == "NOTIFY_SOCKET" {
				return name
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		n.Ready()
		if got := recv(t, c); got != "READY=1" {
			t.Fatalf("%s: got %q", name, got)
		}
		n.Status("Bootstrapped 100%\n(done)")
		if got := recv(t, c); got != "STATUS=Bootstrapped 100% (done)" {
			t.Fatalf("got %q", got)
		}
		var k Kicker = n
		k.Kick()
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
		n.Send("STOPPING=1", "STATUS=bye")
		if got := recv(t, c); got != "STOPPING=1\nSTATUS=bye" {
			t.Fatalf("got %q", got)
		}
		if err := n.Send("bad\nline=1"); err == nil {
			t.Fatal("newline accepted")
		}
	}
	if n, err := NewNotifier(""); n != nil || err != nil {
		t.Fatal("empty NOTIFY_SOCKET should give nil, nil")
	}
	var nilN *Notifier
	if err := nilN.Ready(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewNotifier("relative"); err == nil {
		t.Fatal("relative path accepted")
	}
	n, _ := NewNotifier(filepath.Join(t.TempDir(), "absent"))
	if err := n.Ready(); err == nil {
		t.Fatal("send to absent socket succeeded")
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestWatchdogInterval(t *testing.T) {
	d, err := WatchdogInterval(env(map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}), 42)
	if err != nil || d != 30*time.Second {
		t.Fatal(d, err)
	}
	if _, err := WatchdogInterval(env(nil), 42); !errors.Is(err, ErrNoWatchdog) {
		t.Fatal(err)
	}
	if _, err := WatchdogInterval(env(map[string]string{"WATCHDOG_USEC": "1", "WATCHDOG_PID": "7"}), 42); !errors.Is(err, ErrNoWatchdog) {
		t.Fatal(err)
	}
	for _, bad := range []string{"0", "-5", "1e6", "x", "99999999999999999999"} {
		if _, err := WatchdogInterval(env(map[string]string{"WATCHDOG_USEC": bad}), 1); err == nil || errors.Is(err, ErrNoWatchdog) {
			t.Errorf("WATCHDOG_USEC=%q: %v", bad, err)
		}
	}
}

func FuzzWatchdogInterval(f *testing.F) {
	f.Add("30000000", "1")
	f.Add("", "")
	f.Add("9223372036854775807", "x")
	f.Fuzz(func(t *testing.T, usec, pid string) {
		d, err := WatchdogInterval(env(map[string]string{"WATCHDOG_USEC": usec, "WATCHDOG_PID": pid}), 1)
		if err == nil && d <= 0 {
			t.Fatalf("non-positive interval %v accepted", d)
		}
	})
}
