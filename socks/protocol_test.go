package socks

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"tinytor/tor/torlog"
)

// lineProtocol is a test Protocol: the client sends "host port\n" and
// gets "OK\n" or "ERR <reply code>\n".
type lineProtocol struct{}

func (lineProtocol) Listener() string { return "Line" }
func (lineProtocol) Option() string   { return "LinePort" }

func (lineProtocol) ReadRequest(c net.Conn, br *bufio.Reader, log *torlog.Logger) (*Request, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	req := &Request{Version: ProtocolHTTPConnect, Command: Connect}
	if _, err := fmt.Sscanf(line, "%s %d\n", &req.Host, &req.Port); err != nil {
		log.Infof("bad line %q", line)
		return nil, err
	}
	return req, nil
}

func (lineProtocol) Reply(w io.Writer, req *Request, err error) {
	if err != nil {
		fmt.Fprintf(w, "ERR %d\n", ReplyFor(err, ReplyGeneralFailure, true))
		return
	}
	io.WriteString(w, "OK\n")
}

func TestServerProtocol(t *testing.T) {
	f := DefaultFlags()
	f.IsolateDestPort, f.IsolateClientProtocol = true, true
	ts := startServer(t, Config{ID: "line", Flags: f, Protocol: lineProtocol{}, SafeSocks: true})

	c := ts.dial(t)
	exchange(t, c, []byte("echo.test 80\n"), []byte("OK\n"))
	exchange(t, c, []byte("ping"), []byte("ping"))
	c.CloseWrite()
	expectEOF(t, c)

	c = ts.dial(t) // an IP address: SafeSocks is for SOCKS clients only
	exchange(t, c, []byte("10.0.0.1 443\n"), []byte("OK\n"))
	c.Close()

	c = ts.dial(t)
	exchange(t, c, []byte("refused.test 80\n"), []byte(fmt.Sprintf("ERR %d\n", ReplyConnectionRefused)))
	expectEOF(t, c)

	c = ts.dial(t) // the port's checks apply
	exchange(t, c, []byte("echo.test 0\n"), []byte(fmt.Sprintf("ERR %d\n", ReplyGeneralFailure)))
	expectEOF(t, c)

	c = ts.dial(t)
	c.Write([]byte("garbage\n"))
	exchange(t, c, nil, []byte(fmt.Sprintf("ERR %d\n", ReplyGeneralFailure)))

	keys := ts.dialer.keys()
	if len(keys) != 3 {
		t.Fatalf("%d streams dialed, want 3", len(keys))
	}
	want := IsolationKey{Listener: "line", SessionGroup: -1, DestPort: 80, Protocol: ProtocolHTTPConnect}
	if keys[0] != want {
		t.Errorf("isolation key %+v, want %+v", keys[0], want)
	}
	if keys[1].DestPort != 443 {
		t.Errorf("second stream's key %+v, want DestPort 443", keys[1])
	}
	if st := ts.srv.Stats(); st.Succeeded != 2 || st.Failed != 1 || st.BadHandshake != 2 {
		t.Errorf("stats %+v, want 2 succeeded, 1 failed, 2 bad handshakes", st)
	}
}

func TestProtocolListenersLogNames(t *testing.T) {
	var logs syncBuffer
	log := torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logs})
	ls := NewProtocolListeners(lineProtocol{}, &fakeDialer{tg: startTargets(t)}, log)
	defer ls.Close()
	addr := unusedPort(t) // a free port for the set to open
	p := Port{Network: "tcp", Address: addr, Config: Config{ID: addr}}
	if err := ls.Apply(t.Context(), []Port{p}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c, []byte("echo.test 80\n"), []byte("OK\n"))
	c.Close()
	if err := ls.Apply(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	// The counters outlive the port.
	if st := ls.Stats(); st.Accepted != 1 || st.Succeeded != 1 || st.Active != 0 {
		t.Errorf("stats after the port closed: %+v", st)
	}
	for _, want := range []string{"Closing no-longer-configured Line listener on " + addr} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
	bad := Port{Network: "tcp", Address: "192.0.2.1:1", Config: Config{ID: "192.0.2.1:1"}}
	if err := ls.Apply(t.Context(), []Port{bad}); err == nil || !strings.Contains(err.Error(), "Failed to open LinePort 192.0.2.1:1: ") {
		t.Errorf("Apply of an unusable address: %v", err)
	}
}
