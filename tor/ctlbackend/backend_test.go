package ctlbackend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tinytor/onion/ctl"
	"tinytor/tor"
	"tinytor/tor/config"
	"tinytor/tor/control"
	"tinytor/tor/event"
	"tinytor/tor/torlog"
)

// logRecorder collects log messages and lets a test wait for one.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
	ch   chan string
}

func newLogRecorder(l *torlog.Logger) *logRecorder {
	r := &logRecorder{ch: make(chan string, 100)}
	l.OnMessage(func(_ torlog.Severity, m string) {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
		select {
		case r.ch <- m:
		default:
		}
	})
	return r
}

// waitFor waits until a message containing s is logged.
func (r *logRecorder) waitFor(t *testing.T, s string) {
	t.Helper()
	r.mu.Lock()
	for _, m := range r.msgs {
		if strings.Contains(m, s) {
			r.mu.Unlock()
			return
		}
	}
	r.mu.Unlock()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-r.ch:
			if strings.Contains(m, s) {
				return
			}
		case <-timeout:
			t.Fatalf("no log message containing %q; got %q", s, r.msgs)
		}
	}
}

func (r *logRecorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

type fixture struct {
	b        *Backend
	client   *tor.Client
	log      *logRecorder
	torrc    string
	applied  []*config.Config
	applyErr error
	reloads  int
	shutdown chan struct{}
	now      time.Time
	mu       sync.Mutex
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newFixture(t *testing.T, torrc string) *fixture {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "torrc")
	torrc = "DataDirectory " + filepath.Join(dir, "data") + "\n" + torrc
	if err := os.WriteFile(path, []byte(torrc), 0o600); err != nil {
		t.Fatal(err)
	}
	defaults := filepath.Join(dir, "torrc-defaults")
	if err := os.WriteFile(defaults, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	src := config.Sources{Torrc: path, Defaults: defaults, Env: config.Env{Home: dir}}
	cfg, err := config.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	log := torlog.Discard()
	f := &fixture{torrc: path, shutdown: make(chan struct{}, 4), now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.log = newLogRecorder(log)
	f.client, err = tor.New(tor.Config{Torrc: cfg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	cmds := ctl.New(ctl.Config{Client: f.client})
	t.Cleanup(cmds.Close)
	f.b, err = New(Config{
		Client:  f.client,
		Onion:   cmds,
		Log:     log,
		Version: "0.4.9.11-tinytor-test",
		Sources: src,
		Apply: func(c *config.Config) error {
			if f.applyErr != nil {
				return f.applyErr
			}
			f.applied = append(f.applied, c)
			f.client.Reconfigure(c)
			return nil
		},
		Reload:   func() { f.reloads++ },
		Shutdown: func() { f.shutdown <- struct{}{} },
		Listeners: func(kind string) []string {
			if kind == "socks" {
				return []string{"127.0.0.1:9050", "[::1]:9050"}
			}
			return nil
		},
		Now: f.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.b.Close)
	return f
}

// wantCode checks that err is a *control.Error with the given code whose
// text contains frag.
func wantCode(t *testing.T, what string, err error, code int, frag string) {
	t.Helper()
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Code != code || !strings.Contains(ce.Msg, frag) {
		t.Errorf("%s: error %v, want %d ...%s...", what, err, code, frag)
	}
}

func TestGetInfo(t *testing.T) {
	f := newFixture(t, "SocksPort 9050\n")
	want := map[string]string{
		"version":                    "0.4.9.11-tinytor-test",
		"config-file":                f.torrc,
		"status/bootstrap-phase":     `NOTICE BOOTSTRAP PROGRESS=0 TAG=starting SUMMARY="Starting"`,
		"status/circuit-established": "0",
		"status/enough-dir-info":     "0",
		"circuit-status":             "",
		"stream-status":              "",
		"orconn-status":              "",
		"entry-guards":               "",
		"traffic/read":               "0",
		"traffic/written":            "0",
		"onions/current":             "",
		"process/pid":                fmt.Sprint(os.Getpid()),
		"net/listeners/socks":        `"127.0.0.1:9050" "[::1]:9050"`,
		"net/listeners/control":      "",
		"ns/all":                     "",
		"dormant":                    "0",
	}
	for k, v := range want {
		got, err := f.b.GetInfo(k)
		if err != nil || got != v {
			t.Errorf("GETINFO %s = %q, %v; want %q", k, got, err, v)
		}
	}
	names, err := f.b.GetInfo("config/names")
	if err != nil || !strings.Contains(names, "SocksPort LineList\n") || !strings.Contains(names, "SafeSocks String") {
		t.Errorf("config/names = %q, %v", names, err)
	}
	text, err := f.b.GetInfo("config-text")
	if err != nil || !strings.Contains(text, "SocksPort 9050") {
		t.Errorf("config-text = %q, %v", text, err)
	}
	if _, err := f.b.GetInfo("no/such/key"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("unknown key: %v", err)
	}
	fp := strings.Repeat("AB", 20)
	for _, k := range []string{"ns/id/" + fp, "ns/id/$" + fp + "~nick", "md/id/" + fp, "ns/id/xyz", "md/id/" + fp[:39]} {
		_, err := f.b.GetInfo(k)
		wantCode(t, k, err, 552, "Unrecognized key")
	}
}

func TestParseFingerprint(t *testing.T) {
	fp := "$0123456789ABCDEF0123456789abcdef01234567~name"
	id, ok := parseFingerprint(fp)
	if !ok || id[0] != 0x01 || id[19] != 0x67 || id[15] != 0xef {
		t.Errorf("parseFingerprint(%q) = %X, %v", fp, id, ok)
	}
	for _, bad := range []string{"", "$", "0123", strings.Repeat("G", 40), strings.Repeat("A", 41), "+1" + strings.Repeat("0", 38)} {
		if _, ok := parseFingerprint(bad); ok {
			t.Errorf("parseFingerprint(%q) accepted", bad)
		}
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add("$0123456789ABCDEF0123456789abcdef01234567~name")
	f.Add("0123456789ABCDEF0123456789abcdef01234567")
	f.Add("$=")
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := parseFingerprint(s)
		if ok && fmt.Sprintf("%X", id) != strings.ToUpper(strings.TrimPrefix(s, "$")[:40]) {
			t.Errorf("parseFingerprint(%q) = %X", s, id)
		}
	})
}

func TestConf(t *testing.T) {
	f := newFixture(t, "SocksPort 9150\nSocksPort 9151\nSafeSocks 1\n")
	get := func(keys ...string) string {
		t.Helper()
		es, err := f.b.GetConf(keys)
		if err != nil {
			t.Fatalf("GETCONF %v: %v", keys, err)
		}
		var parts []string
		for _, e := range es {
			if e.HasValue {
				parts = append(parts, e.Key+"="+e.Value)
			} else {
				parts = append(parts, e.Key)
			}
		}
		return strings.Join(parts, ";")
	}
	if got := get("socksport", "SafeSocks", "ControlPort", "MaxCircuitDirtiness"); got != "SocksPort=9150;SocksPort=9151;SafeSocks=1;ControlPort;MaxCircuitDirtiness=10 minutes" {
		t.Errorf("GETCONF = %q", got)
	}
	_, err := f.b.GetConf([]string{"NoSuchOption"})
	wantCode(t, "GETCONF unknown", err, 552, `Unrecognized configuration key "NoSuchOption"`)

	// SETCONF applies a new configuration.
	if err := f.b.SetConf([]control.ConfEntry{{Key: "SocksPort", Value: "9999", HasValue: true}, {Key: "SafeSocks"}}); err != nil {
		t.Fatalf("SETCONF: %v", err)
	}
	if len(f.applied) != 1 || len(f.applied[0].SocksPorts) != 1 || f.applied[0].SocksPorts[0].Addr.Port() != 9999 || f.applied[0].SafeSocks {
		t.Fatalf("applied %+v", f.applied)
	}
	if got := get("SocksPort", "SafeSocks"); got != "SocksPort=9999;SafeSocks=0" {
		t.Errorf("after SETCONF: %q", got)
	}
	// Two values for a list option.
	if err := f.b.SetConf([]control.ConfEntry{{Key: "SocksPort", Value: "9001", HasValue: true}, {Key: "SocksPort", Value: "9002", HasValue: true}}); err != nil {
		t.Fatalf("SETCONF: %v", err)
	}
	if got := get("SocksPort"); got != "SocksPort=9001;SocksPort=9002" {
		t.Errorf("after SETCONF of two values: %q", got)
	}
	// RESETCONF without a value goes back to the default, not the torrc.
	if err := f.b.ResetConf([]control.ConfEntry{{Key: "SocksPort"}}); err != nil {
		t.Fatalf("RESETCONF: %v", err)
	}
	if got := get("SocksPort"); got != "SocksPort=9050" {
		t.Errorf("after RESETCONF: %q", got)
	}

	err = f.b.SetConf([]control.ConfEntry{{Key: "Bogus", Value: "1", HasValue: true}})
	wantCode(t, "SETCONF unknown", err, 552, "Unrecognized option: Unknown option 'Bogus'")
	err = f.b.SetConf([]control.ConfEntry{{Key: "ORPort", Value: "1", HasValue: true}})
	wantCode(t, "SETCONF relay option", err, 552, "relay option 'ORPort'")
	err = f.b.SetConf([]control.ConfEntry{{Key: "SafeSocks", Value: "maybe", HasValue: true}})
	wantCode(t, "SETCONF bad value", err, 513, "Unacceptable option value")
	err = f.b.SetConf([]control.ConfEntry{{Key: "ControlPort", Value: "9999", HasValue: true}})
	wantCode(t, "SETCONF ControlPort", err, 553, "changing ControlPort is not allowed")
	err = f.b.SetConf([]control.ConfEntry{{Key: "DataDirectory", Value: "/tmp/elsewhere", HasValue: true}})
	wantCode(t, "SETCONF DataDirectory", err, 553, "changing DataDirectory is not allowed")
	// Setting a fixed option to its current value is fine.
	if err := f.b.SetConf([]control.ConfEntry{{Key: "ControlPort"}}); err != nil {
		t.Errorf("SETCONF ControlPort to its default: %v", err)
	}
	f.applyErr = errors.New("Failed to bind one of the listener ports")
	err = f.b.SetConf([]control.ConfEntry{{Key: "SocksPort", Value: "9777", HasValue: true}})
	wantCode(t, "SETCONF failing apply", err, 553, "Unable to set option: Failed to bind")
	f.applyErr = nil
	if got := get("SocksPort"); got != "SocksPort=9050" {
		t.Errorf("after failed SETCONF: %q", got)
	}

	// SAVECONF writes the torrc with the changes; it reads back the same.
	if err := f.b.SetConf([]control.ConfEntry{{Key: "SocksPort", Value: "127.0.0.1:9333 IsolateDestAddr", HasValue: true}}); err != nil {
		t.Fatal(err)
	}
	if err := f.b.SaveConf(false); err != nil {
		t.Fatalf("SAVECONF: %v", err)
	}
	data, err := os.ReadFile(f.torrc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\nSocksPort 127.0.0.1:9333 IsolateDestAddr\n") || strings.Contains(string(data), "9150") ||
		!strings.Contains(string(data), "DataDirectory ") {
		t.Errorf("saved torrc:\n%s", data)
	}
	if fi, err := os.Stat(f.torrc); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("saved torrc mode: %v %v", fi.Mode(), err)
	}
	if got := get("SocksPort"); got != "SocksPort=127.0.0.1:9333 IsolateDestAddr" {
		t.Errorf("after SAVECONF: %q", got)
	}
}

func TestSaveConfInclude(t *testing.T) {
	f := newFixture(t, "")
	inc := filepath.Join(filepath.Dir(f.torrc), "more")
	if err := os.WriteFile(inc, []byte("SafeSocks 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(f.torrc)
	if err := os.WriteFile(f.torrc, append(data, "%include "+inc+"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	// A reload makes the backend read the layers again.
	cfg, err := config.Load(f.b.cfg.Sources)
	if err != nil {
		t.Fatal(err)
	}
	f.client.Reconfigure(cfg)
	wantCode(t, "SAVECONF with %include", f.b.SaveConf(false), 551, "%include")
	if err := f.b.SaveConf(true); err != nil {
		t.Fatalf("SAVECONF FORCE: %v", err)
	}
	data, _ = os.ReadFile(f.torrc)
	if strings.Contains(string(data), "%include") || !strings.Contains(string(data), "SafeSocks 1") {
		t.Errorf("forced save:\n%s", data)
	}
}

func TestSignals(t *testing.T) {
	f := newFixture(t, "")
	em := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.b.Run(ctx, em); close(done) }()
	defer func() { cancel(); <-done }()
	em.waitAttached(t, f.b)

	if err := f.b.Signal("RELOAD"); err != nil || f.reloads != 1 {
		t.Errorf("RELOAD: %v, %d reloads", err, f.reloads)
	}
	if e := em.next(t); e.Type != "SIGNAL" || e.Body != "RELOAD" {
		t.Errorf("event %+v", e)
	}
	if err := f.b.Signal("SHUTDOWN"); err != nil {
		t.Errorf("SHUTDOWN: %v", err)
	}
	<-f.shutdown
	for _, s := range []string{"HEARTBEAT", "CLEARDNSCACHE", "DORMANT", "DUMP"} {
		if err := f.b.Signal(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	f.log.waitFor(t, "Heartbeat: Tor's uptime is")
	if d, _ := f.b.GetInfo("dormant"); d != "1" {
		t.Errorf("dormant = %q after DORMANT", d)
	}
	f.b.Signal("ACTIVE")
	if d, _ := f.b.GetInfo("dormant"); d != "0" {
		t.Errorf("dormant = %q after ACTIVE", d)
	}
	wantCode(t, "DEBUG", f.b.Signal("DEBUG"), 552, "not supported")

	// NEWNYM: the first applies at once, the next within 10 s is delayed.
	if err := f.b.Signal("NEWNYM"); err != nil {
		t.Fatal(err)
	}
	f.log.waitFor(t, "New identity requested")
	f.advance(NewNymInterval - 20*time.Millisecond)
	if err := f.b.Signal("NEWNYM"); err != nil {
		t.Fatal(err)
	}
	f.log.waitFor(t, "Rate limiting NEWNYM request: delaying by 1 second(s)")
	if err := f.b.Signal("NEWNYM"); err != nil { // still pending: not scheduled twice
		t.Fatal(err)
	}
	for f.log.count("New identity requested") < 2 {
		f.log.waitFor(t, "New identity requested")
	}
	if n := f.log.count("New identity requested"); n != 2 {
		t.Errorf("%d NEWNYMs applied, want 2", n)
	}

	release, err := f.b.TakeOwnership()
	if err != nil {
		t.Fatal(err)
	}
	release()
	<-f.shutdown
}

func TestUnsupported(t *testing.T) {
	f := newFixture(t, "")
	wantCode(t, "CLOSECIRCUIT", f.b.CloseCircuit("7", false), 552, `Unknown circuit "7"`)
	wantCode(t, "CLOSECIRCUIT", f.b.CloseCircuit("x", false), 552, "Unknown circuit")
	wantCode(t, "CLOSESTREAM", f.b.CloseStream("7", 1), 552, `Unknown stream "7"`)
}

func TestTranslate(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
	id1 := [20]byte{0xAA, 19: 0x01}
	cases := []struct {
		ev   event.Event
		want []control.Event
	}{
		{&event.Circuit{ID: 5, Status: "BUILT", Purpose: "GENERAL", Created: created,
			Path: []event.RelayRef{{ID: id1, Nickname: "guard"}, {ID: id1}}},
			[]control.Event{{Type: "CIRC", Body: "5 BUILT $AA00000000000000000000000000000000000001~guard,$AA00000000000000000000000000000000000001 PURPOSE=GENERAL TIME_CREATED=2026-01-02T03:04:05.600000"}}},
		{&event.Circuit{ID: 6, Status: "FAILED", Reason: "TIMEOUT"},
			[]control.Event{{Type: "CIRC", Body: "6 FAILED REASON=TIMEOUT"}}},
		{&event.Stream{ID: 9, Status: "SUCCEEDED", CircID: 5, Target: "example.com:80"},
			[]control.Event{{Type: "STREAM", Body: "9 SUCCEEDED 5 example.com:80 PURPOSE=USER"}}},
		{&event.Stream{ID: 10, Status: "NEW", Target: "example.com:443"},
			[]control.Event{{Type: "STREAM", Body: "10 NEW 0 example.com:443 PURPOSE=USER"}}},
		{&event.Stream{ID: 11, Status: "NEW", Target: "192.0.2.8:443", Source: netip.MustParseAddrPort("[::ffff:192.168.1.20]:51000")},
			[]control.Event{{Type: "STREAM", Body: "11 NEW 0 192.0.2.8:443 SOURCE_ADDR=192.168.1.20:51000 PURPOSE=USER"}}},
		{&event.Stream{ID: 11, Status: "SENTCONNECT", CircID: 5, Target: "192.0.2.8:443", Source: netip.MustParseAddrPort("192.168.1.20:51000")},
			[]control.Event{{Type: "STREAM", Body: "11 SENTCONNECT 5 192.0.2.8:443 PURPOSE=USER"}}},
		{&event.Stream{ID: 12, Status: "NEWRESOLVE", Target: "example.com:0", Source: netip.MustParseAddrPort("192.168.1.20:5353"), Resolve: true},
			[]control.Event{{Type: "STREAM", Body: "12 NEWRESOLVE 0 example.com:0 SOURCE_ADDR=192.168.1.20:5353 PURPOSE=DNS_REQUEST"}}},
		{&event.Stream{ID: 12, Status: "CLOSED", CircID: 5, Target: "example.com:0", Reason: "DONE", Resolve: true},
			[]control.Event{{Type: "STREAM", Body: "12 CLOSED 5 example.com:0 REASON=DONE PURPOSE=DNS_REQUEST"}}},
		{&event.Channel{ID: 3, Relay: event.RelayRef{ID: id1, Nickname: "g"}, Status: "CONNECTED", NCircs: 2},
			[]control.Event{{Type: "ORCONN", Body: "$AA00000000000000000000000000000000000001~g CONNECTED NCIRCS=2 ID=3"}}},
		{&event.Channel{ID: 4, Addr: "127.0.0.1:5000", Status: "FAILED", Reason: "CONNECTREFUSED"},
			[]control.Event{{Type: "ORCONN", Body: "127.0.0.1:5000 FAILED REASON=CONNECTREFUSED ID=4"}}},
		{&event.HSDesc{Action: "FAILED", Address: "abc", HSDir: event.RelayRef{ID: id1}, DescriptorID: "XYZ", Reason: "NOT_FOUND"},
			[]control.Event{{Type: "HS_DESC", Body: "FAILED abc NO_AUTH $AA00000000000000000000000000000000000001 XYZ REASON=NOT_FOUND"}}},
		{&event.HSDesc{Action: "UPLOAD", Address: "abc", HSDir: event.RelayRef{ID: id1}, DescriptorID: "XYZ", Service: true},
			[]control.Event{{Type: "HS_DESC", Body: "UPLOAD abc UNKNOWN $AA00000000000000000000000000000000000001 XYZ"}}},
		{&event.HSDescContent{Address: "abc", HSDir: event.RelayRef{ID: id1}, DescriptorID: "XYZ", Content: "hs-descriptor 3\n"},
			[]control.Event{{Type: "HS_DESC_CONTENT", Body: "abc XYZ $AA00000000000000000000000000000000000001", Data: "hs-descriptor 3\n", Block: true}}},
		{event.Bootstrap{Phase: event.PhaseLoadingStatus},
			[]control.Event{{Type: "STATUS_CLIENT", Body: `NOTICE BOOTSTRAP PROGRESS=30 TAG=loading_status SUMMARY="Loading networkstatus consensus"`}}},
		{event.Bootstrap{Phase: event.PhaseDone},
			[]control.Event{{Type: "STATUS_CLIENT", Body: `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`},
				{Type: "STATUS_CLIENT", Body: "NOTICE CIRCUIT_ESTABLISHED"}}},
	}
	for _, c := range cases {
		got := Translate(c.ev)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("Translate(%+v)\n got %+v\nwant %+v", c.ev, got, c.want)
		}
	}
}

// recorder is an Emitter that wants everything.
type recorder struct{ ch chan control.Event }

func newRecorder() *recorder             { return &recorder{ch: make(chan control.Event, 100)} }
func (r *recorder) Wants(string) bool    { return true }
func (r *recorder) Emit(e control.Event) { r.ch <- e }
func (r *recorder) next(t *testing.T) control.Event {
	t.Helper()
	select {
	case e := <-r.ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return control.Event{}
}

// waitAttached waits until Run has attached r (it emits BW each second).
func (r *recorder) waitAttached(t *testing.T, b *Backend) {
	t.Helper()
	if e := r.next(t); e.Type != "BW" || e.Body != "0 0" {
		t.Fatalf("first event %+v, want BW 0 0", e)
	}
}

// TestServer drives the backend through a real control server.
func TestServer(t *testing.T) {
	f := newFixture(t, "SocksPort 9150\n")
	srv, err := control.NewServer(control.Config{Backend: f.b, Auth: control.AuthConfig{AllowNull: true}})
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
	ran := make(chan struct{})
	go func() { f.b.Run(ctx, srv); close(ran) }()
	defer func() { cancel(); <-served; <-ran }()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	exchange := func(cmd string) string {
		t.Helper()
		fmt.Fprintf(nc, "%s\r\n", cmd)
		var out []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v (so far %q)", cmd, err, out)
			}
			out = append(out, strings.TrimRight(line, "\r\n"))
			if len(line) >= 4 && line[3] == ' ' && !strings.HasPrefix(line, "650") {
				return strings.Join(out, "|")
			}
		}
	}
	if got := exchange("AUTHENTICATE"); got != "250 OK" {
		t.Fatalf("AUTHENTICATE: %q", got)
	}
	checks := []struct{ cmd, want string }{
		{"GETINFO version traffic/read", "250-version=0.4.9.11-tinytor-test|250-traffic/read=0|250 OK"},
		{"GETCONF SocksPort", "250 SocksPort=9150"},
		{"SETCONF SocksPort=9160", "250 OK"},
		{"GETCONF SocksPort", "250 SocksPort=9160"},
		{"SETCONF ControlPort=1", "553 Transition not allowed: While tinytor is running, changing ControlPort is not allowed."},
		{"ADD_ONION NEW:BEST Port=80 Flags=NonAnonymous", "551 Non-anonymous onion services are not supported by tinytor"},
		{"CLOSECIRCUIT 99", `552 Unknown circuit "99"`},
		{"SIGNAL HEARTBEAT", "250 OK"},
	}
	for _, c := range checks {
		if got := exchange(c.cmd); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.cmd, got, c.want)
		}
	}
	if got := exchange("SETEVENTS BW SIGNAL"); got != "250 OK" {
		t.Fatalf("SETEVENTS: %q", got)
	}
	fmt.Fprintf(nc, "SIGNAL NEWNYM\r\n")
	sawOK, sawSignal, sawBW := false, false, false
	for !(sawOK && sawSignal && sawBW) {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		switch strings.TrimRight(line, "\r\n") {
		case "250 OK":
			sawOK = true
		case "650 SIGNAL NEWNYM":
			sawSignal = true
		case "650 BW 0 0":
			sawBW = true
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
}

func TestTranslateTransportEvents(t *testing.T) {
	for _, tc := range []struct {
		ev   event.Transport
		want string
	}{
		{event.Transport{Type: "LAUNCHED", Program: "/usr/bin/obfs4proxy", Name: "obfs4", Addr: netip.MustParseAddrPort("127.0.0.1:38265")},
			"TRANSPORT_LAUNCHED client obfs4 127.0.0.1 38265"},
		{event.Transport{Type: "LOG", Program: "/usr/bin/obfs4proxy", Args: [][2]string{{"SEVERITY", "debug"}, {"MESSAGE", "Connected to bridge A"}}},
			`PT_LOG PT=/usr/bin/obfs4proxy SEVERITY=debug MESSAGE="Connected to bridge A"`},
		{event.Transport{Type: "STATUS", Program: "/usr/bin/obfs4proxy", Args: [][2]string{{"TRANSPORT", "obfs4"}, {"CONNECT", "Success"}}},
			"PT_STATUS PT=/usr/bin/obfs4proxy TRANSPORT=obfs4 CONNECT=Success"},
	} {
		evs := Translate(tc.ev)
		if len(evs) != 1 || evs[0].Type+" "+evs[0].Body != tc.want {
			t.Errorf("Translate(%+v) = %+v, want %q", tc.ev, evs, tc.want)
		}
	}
}
