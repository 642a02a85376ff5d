package control

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha3"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/edwards25519"

	"tinytor/tor/torlog"
)

// onionAddr builds a valid v3 address from a 32-byte public key.
func onionAddr(pub [32]byte) string {
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub[:])
	h.Write([]byte{3})
	sum := h.Sum(nil)
	raw := append(append(pub[:], sum[:2]...), 3)
	return strings.ToLower(base32.StdEncoding.EncodeToString(raw))
}

// edKey returns the ed25519 public key n*B, a valid key, so its onion
// address passes C tor's address checks.
func edKey(n byte) [32]byte {
	var k [32]byte
	s, _ := edwards25519.NewScalar().SetCanonicalBytes(append([]byte{n}, make([]byte, 31)...))
	copy(k[:], new(edwards25519.Point).ScalarBaseMult(s).Bytes())
	return k
}

var validPub = edKey(7)

type fakeBackend struct {
	mu      sync.Mutex
	signals []string
	deleted []string
	set     []ConfEntry
	onion   string
	// delOnion, when set, receives each DelOnion's service ID.
	delOnion chan string
}

func (b *fakeBackend) GetInfo(key string) (string, error) {
	switch key {
	case "version":
		return "0.4.9.11-tinytor", nil
	case "config-text":
		return "SocksPort 9050\n.hidden\n", nil
	case "status/bootstrap-phase":
		return "NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"", nil
	}
	return "", ErrNotFound
}
func (b *fakeBackend) GetConf(keys []string) ([]ConfEntry, error) {
	var out []ConfEntry
	for _, k := range keys {
		switch k {
		case "SocksPort":
			out = append(out, ConfEntry{Key: k, Value: "9050", HasValue: true})
		case "ExitNodes":
			out = append(out, ConfEntry{Key: k})
		default:
			return nil, Errorf(552, "Unrecognized configuration key %s", QuoteString(k))
		}
	}
	return out, nil
}
func (b *fakeBackend) SetConf(e []ConfEntry) error {
	b.mu.Lock()
	b.set = append(b.set, e...)
	b.mu.Unlock()
	return nil
}
func (b *fakeBackend) ResetConf(e []ConfEntry) error { return b.SetConf(e) }
func (b *fakeBackend) SaveConf(bool) error           { return errors.New("read-only filesystem") }
func (b *fakeBackend) Signal(n string) error {
	b.mu.Lock()
	b.signals = append(b.signals, n)
	b.mu.Unlock()
	return nil
}
func (b *fakeBackend) CloseCircuit(id string, _ bool) error { return ErrNotFound }
func (b *fakeBackend) CloseStream(id string, _ int) error   { return ErrNotFound }
func (b *fakeBackend) AddOnion(r *AddOnionRequest) (*AddOnionResult, error) {
	return &AddOnionResult{ServiceID: b.onion, PrivateKey: make([]byte, 64)}, nil
}
func (b *fakeBackend) DelOnion(id string) error {
	b.mu.Lock()
	b.deleted = append(b.deleted, id)
	ch := b.delOnion
	b.mu.Unlock()
	if ch != nil {
		ch <- id
	}
	return nil
}
func (b *fakeBackend) OnionClientAuthAdd(*OnionClientCredential) (ClientAuthAddResult, error) {
	return ClientAuthReplaced, nil
}
func (b *fakeBackend) OnionClientAuthRemove(string) (bool, error) { return false, nil }
func (b *fakeBackend) OnionClientAuthView(a string) ([]OnionClientCredential, error) {
	return []OnionClientCredential{{Address: b.onion, ClientName: "bob", Permanent: true}}, nil
}
func (b *fakeBackend) HSFetch(string, []string) error { return nil }
func (b *fakeBackend) MapAddress(from, to string) (string, error) {
	switch {
	case from == "0.0.0.0":
		return "127.192.0.7", nil
	case to == "bad:addr":
		return "", Errorf(CodeSyntaxArgs, "syntax error: invalid address '%s'", to)
	}
	return from, nil
}
func (b *fakeBackend) TakeOwnership() (func(), error) { return func() {}, nil }

var testCookie = []byte("0123456789abcdef0123456789abcdef")

// torHash is `tor --hash-password foo` output (see testdata).
const torHash = "16:BA645EA66F71619D60F72ED8341A268357A358C81D540E25C49C5C77A7"

func startServer(t *testing.T, auth AuthConfig, queue int) (*Server, string, *fakeBackend) {
	t.Helper()
	be := &fakeBackend{onion: onionAddr(validPub)}
	s, err := NewServer(Config{Auth: auth, Backend: be, EventQueue: queue})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, l.Addr().String(), be
}

type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// reply reads one complete reply (through its EndReplyLine) as raw bytes.
func (c *client) reply() string {
	c.t.Helper()
	var b strings.Builder
	inData := false
	for {
		l, err := c.br.ReadString('\n')
		b.WriteString(l)
		if err != nil {
			c.t.Fatalf("reading reply: %v (got %q)", err, b.String())
		}
		switch {
		case inData:
			inData = l != ".\r\n"
		case len(l) >= 4 && l[3] == '+':
			inData = true
		case len(l) >= 4 && l[3] == ' ':
			return b.String()
		}
	}
}

func (c *client) do(cmd string) string {
	c.t.Helper()
	if _, err := io.WriteString(c.c, cmd+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
	return c.reply()
}

func (c *client) expect(cmd, want string) {
	c.t.Helper()
	if got := c.do(cmd); got != want {
		c.t.Errorf("%s:\n got %q\nwant %q", cmd, got, want)
	}
}

func (c *client) expectClosed() {
	c.t.Helper()
	if b, err := c.br.ReadByte(); err != io.EOF {
		c.t.Errorf("connection not closed: read %q, %v", b, err)
	}
}

func fullAuth() AuthConfig {
	return AuthConfig{Cookie: testCookie, CookieFile: "/var/lib/tinytor/control auth \"cookie\"", HashedPasswords: []string{torHash}}
}

func TestProtocolInfo(t *testing.T) {
	_, addr, _ := startServer(t, fullAuth(), 0)
	c := dial(t, addr)
	c.expect("PROTOCOLINFO 1", "250-PROTOCOLINFO 1\r\n"+
		"250-AUTH METHODS=COOKIE,SAFECOOKIE,HASHEDPASSWORD COOKIEFILE=\"/var/lib/tinytor/control auth \\\"cookie\\\"\"\r\n"+
		"250-VERSION Tor=\"0.4.9.11-tinytor\"\r\n250 OK\r\n")
	// A second PROTOCOLINFO before authenticating is refused, as in C tor.
	c.expect("PROTOCOLINFO", "514 Authentication required.\r\n")
	c.expectClosed()

	c = dial(t, addr)
	c.expect("PROTOCOLINFO x", "513 No such version \"x\"\r\n")
	c.expectClosed()

	_, addr, _ = startServer(t, AuthConfig{AllowNull: true}, 0)
	c = dial(t, addr)
	c.expect("PROTOCOLINFO", "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250-VERSION Tor=\"0.4.9.11-tinytor\"\r\n250 OK\r\n")
	c.expect("AUTHENTICATE", "250 OK\r\n")
	c.expect("GETINFO version", "250-version=0.4.9.11-tinytor\r\n250 OK\r\n")
}

func TestNullAuthNeedsConsent(t *testing.T) {
	if _, err := NewServer(Config{Backend: &fakeBackend{}}); err == nil {
		t.Fatal("server without any authentication accepted without AllowNull")
	}
}

func TestBeforeAuth(t *testing.T) {
	_, addr, _ := startServer(t, fullAuth(), 0)
	for _, cmd := range []string{"GETINFO version", "SETEVENTS CIRC", "FOO", "SIGNAL NEWNYM"} {
		c := dial(t, addr)
		c.expect(cmd, "514 Authentication required.\r\n")
		c.expectClosed()
	}
	c := dial(t, addr)
	c.expect("QUIT", "250 closing connection\r\n")
	c.expectClosed()
}

func TestAuthPassword(t *testing.T) {
	_, addr, _ := startServer(t, fullAuth(), 0)
	c := dial(t, addr)
	c.expect(`AUTHENTICATE "foo"`, "250 OK\r\n")
	c.expect("GETINFO version", "250-version=0.4.9.11-tinytor\r\n250 OK\r\n")

	c = dial(t, addr)
	c.expect(`AUTHENTICATE "bar"`, "515 Authentication failed: Password did not match HashedControlPassword *or* authentication cookie.\r\n")
	c.expectClosed()

	c = dial(t, addr)
	c.expect(`AUTHENTICATE bar`, "551 Invalid hexadecimal encoding.  Maybe you tried a plain text password?  If so, the standard requires that you put it in double quotes.\r\n")
	c.expectClosed()

	_, addr, _ = startServer(t, AuthConfig{HashedPasswords: []string{torHash}}, 0)
	c = dial(t, addr)
	c.expect(`AUTHENTICATE "bar"`, "515 Authentication failed: Password did not match HashedControlPassword value from configuration\r\n")
	c.expectClosed()
	c = dial(t, addr)
	c.expect(`AUTHENTICATE `+hex.EncodeToString([]byte("foo")), "250 OK\r\n")
}

func TestAuthCookie(t *testing.T) {
	_, addr, _ := startServer(t, AuthConfig{Cookie: testCookie, CookieFile: "/c"}, 0)
	c := dial(t, addr)
	c.expect("AUTHENTICATE "+hex.EncodeToString(testCookie), "250 OK\r\n")
	c.expect("GETINFO version", "250-version=0.4.9.11-tinytor\r\n250 OK\r\n")

	c = dial(t, addr)
	bad := append([]byte{}, testCookie...)
	bad[0] ^= 1
	c.expect("AUTHENTICATE "+hex.EncodeToString(bad), "515 Authentication failed: Authentication cookie did not match expected value.\r\n")
	c.expectClosed()

	c = dial(t, addr)
	c.expect("AUTHENTICATE 00", "515 Authentication failed: Wrong length on authentication cookie.\r\n")
	c.expectClosed()
}

func TestAuthSafeCookie(t *testing.T) {
	_, addr, _ := startServer(t, AuthConfig{Cookie: testCookie, CookieFile: "/c"}, 0)
	clientNonce := []byte("client nonce 0123456789abcdef!!!")
	run := func(tamper bool) *client {
		c := dial(t, addr)
		r := c.do("AUTHCHALLENGE SAFECOOKIE " + hex.EncodeToString(clientNonce))
		var sh, sn string
		if _, err := fmtSscan(r, &sh, &sn); err != nil {
			t.Fatalf("AUTHCHALLENGE reply %q: %v", r, err)
		}
		serverNonce, _ := hex.DecodeString(sn)
		wantSH, ch := SafeCookieHashes(testCookie, clientNonce, serverNonce)
		if !strings.EqualFold(sh, hex.EncodeToString(wantSH)) {
			t.Fatalf("server hash %s, want %x", sh, wantSH)
		}
		if tamper {
			ch[0] ^= 1
		}
		if tamper {
			c.expect("AUTHENTICATE "+hex.EncodeToString(ch), "515 Authentication failed: Safe cookie response did not match expected value.\r\n")
			c.expectClosed()
		} else {
			c.expect("AUTHENTICATE "+hex.EncodeToString(ch), "250 OK\r\n")
		}
		return c
	}
	run(false).expect("GETINFO version", "250-version=0.4.9.11-tinytor\r\n250 OK\r\n")
	run(true)

	// After AUTHCHALLENGE, the next command must be AUTHENTICATE.
	c := dial(t, addr)
	c.do("AUTHCHALLENGE SAFECOOKIE 00")
	c.expect("PROTOCOLINFO", "514 Authentication required.\r\n")
	c.expectClosed()
	// And the raw cookie is not accepted in place of the response.
	c = dial(t, addr)
	c.do("AUTHCHALLENGE SAFECOOKIE 00")
	c.expect("AUTHENTICATE "+hex.EncodeToString(testCookie), "515 Authentication failed: Safe cookie response did not match expected value.\r\n")
	c = dial(t, addr)
	c.expect("AUTHCHALLENGE FOO 00", "513 AUTHCHALLENGE only supports SAFECOOKIE authentication\r\n")
	c.expectClosed()
}

func fmtSscan(r string, sh, sn *string) (int, error) {
	r = strings.TrimSuffix(r, "\r\n")
	f := strings.Fields(r)
	if len(f) != 4 || f[0] != "250" || f[1] != "AUTHCHALLENGE" ||
		!strings.HasPrefix(f[2], "SERVERHASH=") || !strings.HasPrefix(f[3], "SERVERNONCE=") {
		return 0, errors.New("malformed")
	}
	*sh = strings.TrimPrefix(f[2], "SERVERHASH=")
	*sn = strings.TrimPrefix(f[3], "SERVERNONCE=")
	return 2, nil
}

func authed(t *testing.T, addr string) *client {
	c := dial(t, addr)
	c.expect(`AUTHENTICATE "foo"`, "250 OK\r\n")
	return c
}

func TestCommands(t *testing.T) {
	_, addr, be := startServer(t, fullAuth(), 0)
	c := authed(t, addr)
	c.expect("GETINFO version config-text", "250-version=0.4.9.11-tinytor\r\n250+config-text=\r\nSocksPort 9050\r\n..hidden\r\n.\r\n250 OK\r\n")
	c.expect("GETINFO version nosuch", "552 Unrecognized key \"nosuch\"\r\n")
	c.expect("GETINFO", "250 OK\r\n")
	c.expect("GETINFO events/names", "250-events/names="+strings.Join(EventNames(), " ")+"\r\n250 OK\r\n")
	c.expect("FOO bar", "510 Unrecognized command \"FOO\"\r\n")
	c.expect("GETCONF SocksPort ExitNodes", "250-SocksPort=9050\r\n250 ExitNodes\r\n")
	c.expect("GETCONF NoSuch", "552 Unrecognized configuration key \"NoSuch\"\r\n")
	c.expect(`SETCONF ExitNodes="{de}, {fr}" StrictNodes`, "250 OK\r\n")
	c.expect("SAVECONF", "551 read-only filesystem\r\n")
	c.expect("SIGNAL NEWNYM", "250 OK\r\n")
	c.expect("SIGNAL hup", "250 OK\r\n")
	c.expect("SIGNAL FOO", "552 Unrecognized signal code \"FOO\"\r\n")
	c.expect("SIGNAL", "512 Bad arguments to SIGNAL: Need at least 1 argument(s)\r\n")
	c.expect("SETEVENTS CIRC FOO", "552 Unrecognized event \"FOO\"\r\n")
	c.expect("CLOSECIRCUIT 99", "552 Unknown circuit \"99\"\r\n")
	c.expect("CLOSESTREAM 5", "512 Bad arguments to CLOSESTREAM: Need at least 2 argument(s)\r\n")
	c.expect("HSFETCH abc", "513 Invalid argument \"abc\"\r\n")
	c.expect("HSFETCH "+be.onion+" SERVER=$AAAA", "250 OK\r\n")
	c.expect("ADD_ONION NEW:BEST", "512 Missing 'Port' argument\r\n")
	c.expect("ADD_ONION FOO:BAR Port=80", "513 Invalid key type\r\n")
	c.expect("ADD_ONION NEW:BEST Port=0", "512 Invalid VIRTPORT/TARGET\r\n")
	c.expect("ADD_ONION NEW:BEST Port=80 Flags=Bogus", "512 Invalid 'Flags' argument: \"Bogus\"\r\n")
	c.expect("ADD_ONION NEW:BEST Port=80,127.0.0.1:8080", "250-ServiceID="+be.onion+"\r\n250-PrivateKey=ED25519-V3:"+strings.Repeat("A", 86)+"==\r\n250 OK\r\n")
	c.expect("ADD_ONION NEW:ED25519-V3 Flags=DiscardPK,Detach Port=22", "250-ServiceID="+be.onion+"\r\n250 OK\r\n")
	c.expect("ADD_ONION ED25519-V3:"+strings.Repeat("A", 86)+"== Port=80", "250-ServiceID="+be.onion+"\r\n250 OK\r\n")
	c.expect("ADD_ONION ED25519-V3:AAAA Port=80", "512 Failed to decode ED25519-V3 key\r\n")
	c.expect("DEL_ONION abc", "512 Malformed Onion Service id\r\n")
	other := onionAddr(edKey(8))
	c.expect("DEL_ONION "+other, "552 Unknown Onion Service id\r\n")
	c.expect("ONION_CLIENT_AUTH_ADD abc", "512 Incomplete ONION_CLIENT_AUTH_ADD command\r\n")
	c.expect("ONION_CLIENT_AUTH_ADD abc x25519:zz", "512 Invalid v3 address \"abc\"\r\n")
	c.expect("ONION_CLIENT_AUTH_ADD "+be.onion+" x25519:"+strings.Repeat("A", 43)+"= ClientName=bob Flags=Permanent", "251 Client for onion existed and replaced\r\n")
	c.expect("ONION_CLIENT_AUTH_REMOVE "+be.onion, "251 No credentials for \""+be.onion+"\"\r\n")
	c.expect("ONION_CLIENT_AUTH_VIEW", "250-ONION_CLIENT_AUTH_VIEW\r\n250-CLIENT "+be.onion+" x25519:"+strings.Repeat("A", 43)+"= ClientName=bob Flags=Permanent\r\n250 OK\r\n")
	c.expect("TAKEOWNERSHIP", "250 OK\r\n")
	c.expect("QUIT", "250 closing connection\r\n")
	c.expectClosed()

	be.mu.Lock()
	defer be.mu.Unlock()
	if strings.Join(be.signals, ",") != "NEWNYM,RELOAD" {
		t.Errorf("signals %v", be.signals)
	}
	if len(be.set) != 2 || be.set[0] != (ConfEntry{Key: "ExitNodes", Value: "{de}, {fr}", HasValue: true}) || be.set[1] != (ConfEntry{Key: "StrictNodes"}) {
		t.Errorf("SETCONF passed %+v", be.set)
	}
}

// TestOnionsRemovedOnClose: a non-detached ADD_ONION service goes away with
// its connection.
func TestOnionsRemovedOnClose(t *testing.T) {
	s, addr, be := startServer(t, fullAuth(), 0)
	deleted := make(chan string, 1)
	be.mu.Lock()
	be.delOnion = deleted
	be.mu.Unlock()
	c := authed(t, addr)
	c.do("ADD_ONION NEW:BEST Port=80")
	c.expect("QUIT", "250 closing connection\r\n")
	c.expectClosed()
	// The connection's cleanup deletes its service after leaving s.conns.
	select {
	case id := <-deleted:
		if id != be.onion {
			t.Errorf("deleted %q, want %q", id, be.onion)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("onion not removed when its connection closed")
	}
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	if n != 0 {
		t.Errorf("%d connections left after the only one closed", n)
	}
}

func TestEvents(t *testing.T) {
	s, addr, _ := startServer(t, fullAuth(), 0)
	c := authed(t, addr)
	if s.Wants("CIRC") {
		t.Fatal("Wants(CIRC) before any subscription")
	}
	c.expect("SETEVENTS EXTENDED circ STATUS_CLIENT notice HS_DESC_CONTENT", "250 OK\r\n")
	if !s.Wants("CIRC") || s.Wants("STREAM") {
		t.Fatal("Wants does not follow SETEVENTS")
	}
	s.Emit(StreamEvent{ID: "1", Status: "NEW", Target: "x:80"}.Event()) // not subscribed
	s.Emit(CircEvent{ID: "7", Status: "BUILT", Path: []string{"$AA~a", "$BB~b"}, Purpose: "GENERAL",
		TimeCreated: time.Date(2026, 11, 27, 3, 4, 5, 510000000, time.UTC)}.Event())
	s.Emit(StatusEvent{Type: "STATUS_CLIENT", Severity: "NOTICE", Action: "BOOTSTRAP",
		Args: []StatusArg{{"PROGRESS", "100"}, {"TAG", "done"}, {"SUMMARY", "Done"}}}.Event())
	s.Emit(Event{Type: "NOTICE", Body: "two\nlines"})
	s.Emit(HSDescContentEvent{Address: "abc", DescriptorID: "XYZ", HSDir: "$AA~a", Content: "hs-descriptor 3\n.dot\n"}.Event())
	s.Emit(HSDescContentEvent{Address: "abc", DescriptorID: "XYZ", HSDir: "$AA~a"}.Event()) // a 404
	want := []string{
		"650 CIRC 7 BUILT $AA~a,$BB~b PURPOSE=GENERAL TIME_CREATED=2026-11-27T03:04:05.510000\r\n",
		"650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=Done\r\n",
		"650+NOTICE\r\ntwo\r\nlines\r\n.\r\n650 OK\r\n",
		"650+HS_DESC_CONTENT abc XYZ $AA~a\r\nhs-descriptor 3\r\n..dot\r\n.\r\n650 OK\r\n",
		"650+HS_DESC_CONTENT abc XYZ $AA~a\r\n.\r\n650 OK\r\n",
	}
	for _, w := range want {
		if got := c.reply(); got != w {
			t.Errorf("event:\n got %q\nwant %q", got, w)
		}
	}
	c.expect("SETEVENTS", "250 OK\r\n")
	if s.Wants("CIRC") {
		t.Fatal("still wanted after SETEVENTS with no events")
	}
	c.expect("GETINFO version", "250-version=0.4.9.11-tinytor\r\n250 OK\r\n")
}

// TestSlowControllerDisconnected: a controller that does not read is cut
// off once its queue is full, and Emit never blocks.
func TestSlowControllerDisconnected(t *testing.T) {
	s, addr, _ := startServer(t, fullAuth(), 4)
	c := authed(t, addr)
	c.expect("SETEVENTS BW", "250 OK\r\n")
	big := strings.Repeat("x", 64<<10)
	deadline := time.Now().Add(5 * time.Second)
	for s.Wants("BW") {
		if time.Now().After(deadline) {
			t.Fatal("slow controller never disconnected")
		}
		s.Emit(Event{Type: "BW", Body: big}) // fills socket buffers, then the queue
	}
}

func TestEventFormats(t *testing.T) {
	tests := []struct {
		e    Event
		want string
	}{
		{StreamEvent{ID: "5", Status: "FAILED", CircID: "3", Target: "example.com:443", Reason: "END", RemoteReason: "EXITPOLICY", SourceAddr: "127.0.0.1:5000", Purpose: "USER"}.Event(),
			"STREAM 5 FAILED 3 example.com:443 REASON=END REMOTE_REASON=EXITPOLICY SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER"},
		{ORConnEvent{Target: "$AA~a", Status: "CONNECTED", NCircs: 2, ID: "9"}.Event(), "ORCONN $AA~a CONNECTED NCIRCS=2 ID=9"},
		{BWEvent(10, 20), "BW 10 20"},
		{HSDescEvent{Action: "REQUESTED", Address: "abc", AuthType: "NO_AUTH", HSDir: "$AA~a", DescriptorID: "desc", HSDirIndex: "00"}.Event(),
			"HS_DESC REQUESTED abc NO_AUTH $AA~a desc HSDIR_INDEX=00"},
		{HSDescEvent{Action: "FAILED", Address: "abc", Reason: "NOT_FOUND"}.Event(), "HS_DESC FAILED abc UNKNOWN UNKNOWN REASON=NOT_FOUND"},
		{StatusEvent{Type: "STATUS_CLIENT", Severity: "WARN", Action: "BOOTSTRAP", Args: []StatusArg{{"WARNING", "no route"}}}.Event(),
			"STATUS_CLIENT WARN BOOTSTRAP WARNING=\"no route\""},
	}
	for _, tc := range tests {
		if got := tc.e.Type + " " + tc.e.Body; got != tc.want {
			t.Errorf("got %q\nwant %q", got, tc.want)
		}
	}
}

func TestLineTooLong(t *testing.T) {
	be := &fakeBackend{}
	s, err := NewServer(Config{Auth: AuthConfig{AllowNull: true}, Backend: be, MaxLine: 100})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, l)
	c := dial(t, l.Addr().String())
	c.expect("AUTHENTICATE", "250 OK\r\n")
	c.expect("GETINFO "+strings.Repeat("a", 200), "500 Line too long.\r\n")
	c.expectClosed()
}

func TestLogHook(t *testing.T) {
	s, addr, _ := startServer(t, fullAuth(), 0)
	l := torlog.New()
	l.OnMessage(s.LogHook)
	c := authed(t, addr)
	c.expect("SETEVENTS WARN", "250 OK\r\n")
	l.Noticef("not subscribed")
	l.Warnf("Something %s happened", "odd")
	if got := c.reply(); got != "650 WARN Something odd happened\r\n" {
		t.Errorf("got %q", got)
	}
}

func TestNewCookieWriter(t *testing.T) {
	var gotPath string
	var gotPerm os.FileMode
	var gotData []byte
	c, err := NewCookie("/board/control_auth_cookie", func(p string, d []byte, perm os.FileMode) error {
		gotPath, gotData, gotPerm = p, d, perm
		return nil
	})
	if err != nil || gotPath != "/board/control_auth_cookie" || gotPerm != 0o600 || !bytes.Equal(gotData, c) {
		t.Fatalf("writer got %q %v %x (cookie %x, err %v)", gotPath, gotPerm, gotData, c, err)
	}
	if _, err := NewCookie("/x", func(string, []byte, os.FileMode) error { return errors.New("flash full") }); err == nil {
		t.Fatal("writer error ignored")
	}
}
