package transparent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/socks"
	"tinytor/socks/sockstest"
	"tinytor/tor/torlog"
)

// recordingDialer answers each stream with a connection that says where
// it was asked to go, and records the isolation keys.
type recordingDialer struct {
	sockstest.NoLookups
	mu   sync.Mutex
	isos []socks.IsolationKey
}

func (d *recordingDialer) DialStream(ctx context.Context, req *socks.Request, iso socks.IsolationKey) (net.Conn, error) {
	d.mu.Lock()
	d.isos = append(d.isos, iso)
	d.mu.Unlock()
	if req.Version != socks.ProtocolTrans || req.Command != socks.Connect {
		return nil, errors.New("not a TransPort request")
	}
	a, b := net.Pipe()
	go func() {
		fmt.Fprintf(b, "stream to %s", net.JoinHostPort(req.Host, fmt.Sprint(req.Port)))
		b.Close()
	}()
	return a, nil
}

// TestNotRedirectedIsClosed connects to a TransPort directly: no redirect
// rule sent the connection, so its original destination is the port
// itself (or, without connection tracking, unknown). Either way the
// connection is closed with a log line and no stream is opened.
func TestNotRedirectedIsClosed(t *testing.T) {
	var logs sockstest.Buffer
	d := &recordingDialer{}
	srv, addr := sockstest.Serve(t, socks.Config{ID: "trans", Protocol: Protocol{},
		Log: torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logs})}, d)
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil && !strings.Contains(err.Error(), "reset") || len(b) != 0 {
			t.Fatalf("read %q, %v; want the connection closed with nothing sent", b, err)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "was not redirected by the packet filter; closing it") &&
		!strings.Contains(out, "Fetching original destination failed. Closing.") {
		t.Errorf("no log line for the direct connections:\n%s", out)
	}
	if !strings.Contains(out, "[notice] Opened Transparent pf/netfilter listener connection (ready) on 127.0.0.1:") {
		t.Errorf("no listener notice:\n%s", out)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.isos) != 0 {
		t.Errorf("%d streams dialed for connections that were not redirected", len(d.isos))
	}
	if st := srv.Stats(); st.BadHandshake != 2 || st.Accepted != 2 {
		t.Errorf("stats %+v, want 2 accepted and 2 refused", st)
	}
}

func TestRequestFor(t *testing.T) {
	for _, tc := range []struct {
		dst  string
		host string
		typ  socks.AddrType
	}{
		{"192.0.2.7:443", "192.0.2.7", socks.AddrIPv4},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7", socks.AddrIPv4},
		{"[2001:db8::5]:8080", "2001:db8::5", socks.AddrIPv6},
	} {
		req := RequestFor(netip.MustParseAddrPort(tc.dst))
		if req.Host != tc.host || req.AddrType != tc.typ || req.Command != socks.Connect || req.Version != socks.ProtocolTrans ||
			req.Port != netip.MustParseAddrPort(tc.dst).Port() {
			t.Errorf("RequestFor(%s) = %+v", tc.dst, req)
		}
	}
}

func TestOriginalDstNeedsASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := OriginalDst(a); err == nil {
		t.Error("OriginalDst of a pipe succeeded")
	}
}
