package pt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tinytor/tor/netproxy"
	"tinytor/tor/torlog"
)

const obfs4proxy = "/usr/bin/obfs4proxy"

func needObfs4proxy(t *testing.T) {
	if _, err := os.Stat(obfs4proxy); err != nil {
		t.Skipf("%s is not installed (apt-get install obfs4proxy): %v", obfs4proxy, err)
	}
}

func startObfs4Client(t *testing.T) (*Managed, *logBuf) {
	log := newLogBuf()
	m, err := Start(Config{
		Transports: []string{"obfs4"},
		Path:       obfs4proxy,
		StateDir:   filepath.Join(t.TempDir(), "pt_state"),
		Log:        torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: log}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, log
}

func TestObfs4proxyClient(t *testing.T) {
	needObfs4proxy(t)
	m, log := startObfs4Client(t)
	meth, err := m.Method(tctx(t, 30*time.Second), "obfs4")
	if err != nil {
		t.Fatal(err)
	}
	if meth.SOCKS != 5 || !meth.Addr.Addr().IsLoopback() {
		t.Errorf("method %+v", meth)
	}
	pid := m.Status()[0].PID
	m.Close()
	if !gone(pid) {
		t.Errorf("obfs4proxy %d still exists after Close", pid)
	}
	if strings.Contains(log.String(), "sending") {
		t.Errorf("obfs4proxy needed a signal to exit:\n%s", log)
	}
}

// obfs4Server runs obfs4proxy as a server transport in front of orport and
// returns its address and the cert from its bridge line.
func obfs4Server(t *testing.T, orport netip.AddrPort) (netip.AddrPort, string) {
	state := t.TempDir()
	cmd := exec.Command(obfs4proxy)
	cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		"TOR_PT_MANAGED_TRANSPORT_VER=1",
		"TOR_PT_STATE_LOCATION=" + state + "/",
		"TOR_PT_SERVER_TRANSPORTS=obfs4",
		"TOR_PT_SERVER_BINDADDR=obfs4-127.0.0.1:0",
		"TOR_PT_ORPORT=" + orport.String(),
		"TOR_PT_EXIT_ON_STDIN_CLOSE=1",
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() {
			cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	var addr netip.AddrPort
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "SMETHOD" && f[1] == "obfs4" {
			addr = netip.MustParseAddrPort(f[2])
		}
		if sc.Text() == "SMETHODS DONE" {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	if !addr.IsValid() {
		t.Fatal("obfs4proxy server announced no obfs4 method")
	}
	line, err := os.ReadFile(filepath.Join(state, "obfs4_bridgeline.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var cert string
	for _, l := range strings.Split(string(line), "\n") {
		if strings.HasPrefix(l, "Bridge obfs4 ") {
			for _, f := range strings.Fields(l) {
				if c, ok := strings.CutPrefix(f, "cert="); ok {
					cert = c
				}
			}
		}
	}
	if cert == "" {
		t.Fatalf("no cert in bridge line file:\n%s", line)
	}
	return addr, cert
}

func TestObfs4proxyEndToEnd(t *testing.T) {
	needObfs4proxy(t)
	bridge, cert := obfs4Server(t, echoServer(t))
	m, _ := startObfs4Client(t)

	c, err := m.Dial(tctx(t, 30*time.Second), "obfs4", bridge, []KV{{"cert", cert}, {"iat-mode", "0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 256<<10)
	rand.Read(msg)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("bytes through obfs4 differ")
	}

	// A wrong cert: the obfs4 server stays silent, so the SOCKS request
	// never succeeds (obfs4proxy answers only after the handshake).
	bad := []byte(cert)
	bad[3] ^= 1
	c2, err := m.Dial(tctx(t, 3*time.Second), "obfs4", bridge, []KV{{"cert", string(bad)}, {"iat-mode", "0"}})
	if err == nil {
		c2.Close()
		t.Fatal("dial with a wrong cert succeeded")
	}
	var re *netproxy.ReplyError
	if !errors.As(err, &re) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wrong cert: %v", err)
	}
}
