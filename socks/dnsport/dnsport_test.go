package dnsport

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"tinytor/socks"
	"tinytor/tor/policy"
)

// fakeResolver answers from tables and counts calls.
type fakeResolver struct {
	mu    sync.Mutex
	addrs map[string][]netip.Addr
	ptrs  map[netip.Addr]string
	ttl   uint32
	calls atomic.Int64
	block chan struct{} // if set, lookups wait for it
	isos  []socks.IsolationKey
}

func (f *fakeResolver) wait(ctx context.Context) error {
	if f.block == nil {
		return nil
	}
	select {
	case <-f.block:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeResolver) Resolve(ctx context.Context, host string, ipv6 bool, client netip.AddrPort, iso socks.IsolationKey) ([]netip.Addr, uint32, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.isos = append(f.isos, iso)
	a, ok := f.addrs[host]
	f.mu.Unlock()
	if err := f.wait(ctx); err != nil {
		return nil, 0, err
	}
	if host == "fail.example" {
		return nil, 0, errors.New("transient error at the exit")
	}
	if !ok {
		return nil, 0, ErrNotFound
	}
	return a, f.ttl, nil
}

func (f *fakeResolver) ResolvePTR(ctx context.Context, addr netip.Addr, client netip.AddrPort, iso socks.IsolationKey) (string, uint32, error) {
	f.calls.Add(1)
	if n, ok := f.ptrs[addr]; ok {
		return n, f.ttl, nil
	}
	return "", 0, ErrNotFound
}

func newFake() *fakeResolver {
	return &fakeResolver{ttl: 100,
		addrs: map[string][]netip.Addr{
			"example.com": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
			"v4only.test": {netip.MustParseAddr("192.0.2.7")},
		},
		ptrs: map[netip.Addr]string{netip.MustParseAddr("192.0.2.1"): "example.com"},
	}
}

func mkQuery(t testing.TB, id uint16, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func decode(t testing.TB, b []byte) dnsmessage.Message {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(b); err != nil {
		t.Fatalf("unpacking the answer: %v", err)
	}
	return m
}

var loopback = netip.MustParseAddrPort("127.0.0.1:40000")

func newServer(t *testing.T, cfg Config, r Resolver) *Server {
	t.Helper()
	if cfg.ID == "" {
		cfg.ID = "127.0.0.1:5353"
	}
	s, err := New(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestAnswers(t *testing.T) {
	f := newFake()
	s := newServer(t, Config{Flags: socks.Flags{IsolateClientAddr: true}}, f)
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		want  string
		ttl   uint32
	}{
		{"example.com.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "192.0.2.1", 100},
		{"Example.COM.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, "2001:db8::1", 100},
		{"v4only.test.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, "", 0},
		{"nowhere.test.", dnsmessage.TypeA, dnsmessage.RCodeNameError, "", 0},
		{"fail.example.", dnsmessage.TypeA, dnsmessage.RCodeServerFailure, "", 0},
		{"1.2.0.192.in-addr.arpa.", dnsmessage.TypePTR, dnsmessage.RCodeSuccess, "example.com.", 100},
		{"9.9.9.9.in-addr.arpa.", dnsmessage.TypePTR, dnsmessage.RCodeNameError, "", 0},
		{"bogus.arpa.", dnsmessage.TypePTR, dnsmessage.RCodeNameError, "", 0},
		{"10.1.2.3.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "10.1.2.3", MinAnswerTTL},
		{"example.com.", dnsmessage.TypeMX, dnsmessage.RCodeNotImplemented, "", 0},
		{"example.com.", dnsmessage.TypeTXT, dnsmessage.RCodeNotImplemented, "", 0},
	} {
		out := s.handle(ctx, mkQuery(t, 77, c.name, c.typ), loopback, true)
		m := decode(t, out)
		if m.ID != 77 || !m.Response || !m.RecursionAvailable || !m.RecursionDesired || m.RCode != c.rcode {
			t.Errorf("%s %v: header %+v, want rcode %v", c.name, c.typ, m.Header, c.rcode)
			continue
		}
		if len(m.Questions) != 1 || m.Questions[0].Name.String() != c.name {
			t.Errorf("%s %v: questions %v", c.name, c.typ, m.Questions)
		}
		got := ""
		if len(m.Answers) > 0 {
			a := m.Answers[0]
			if a.Header.Name.String() != c.name || a.Header.TTL != c.ttl {
				t.Errorf("%s %v: answer header %+v, want TTL %d", c.name, c.typ, a.Header, c.ttl)
			}
			switch r := a.Body.(type) {
			case *dnsmessage.AResource:
				got = netip.AddrFrom4(r.A).String()
			case *dnsmessage.AAAAResource:
				got = netip.AddrFrom16(r.AAAA).String()
			case *dnsmessage.PTRResource:
				got = r.PTR.String()
			}
		}
		if got != c.want {
			t.Errorf("%s %v: answer %q, want %q", c.name, c.typ, got, c.want)
		}
	}
	if f.isos[0].ClientAddr != loopback.Addr() || f.isos[0].Listener != "127.0.0.1:5353" {
		t.Errorf("isolation key %+v", f.isos[0])
	}
}

func TestCacheAndTTLClip(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFake()
	f.ttl = 30 // clipped to MinCacheTTL for the cache, raised to 60 in the answer
	s := newServer(t, Config{Now: func() time.Time { return now }}, f)
	ctx := context.Background()
	m := decode(t, s.handle(ctx, mkQuery(t, 1, "example.com.", dnsmessage.TypeA), loopback, true))
	if m.Answers[0].Header.TTL != MinAnswerTTL {
		t.Fatalf("TTL %d, want %d", m.Answers[0].Header.TTL, MinAnswerTTL)
	}
	now = now.Add(100 * time.Second)
	m = decode(t, s.handle(ctx, mkQuery(t, 2, "EXAMPLE.com.", dnsmessage.TypeA), loopback, true))
	if f.calls.Load() != 1 || m.Answers[0].Header.TTL != MinCacheTTL-100 {
		t.Fatalf("second query: %d lookups, TTL %d; want a cache hit with %d s left", f.calls.Load(), m.Answers[0].Header.TTL, MinCacheTTL-100)
	}
	now = now.Add(MinCacheTTL * time.Second)
	s.handle(ctx, mkQuery(t, 3, "example.com.", dnsmessage.TypeA), loopback, true)
	if f.calls.Load() != 2 {
		t.Fatalf("expired entry used: %d lookups", f.calls.Load())
	}
	for in, want := range map[uint32]uint32{0: MinCacheTTL, 299: MinCacheTTL, 300: MaxCacheTTL, 86400: MaxCacheTTL} {
		if got := ClipTTL(in); got != want {
			t.Errorf("ClipTTL(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestMalformedAndPolicy(t *testing.T) {
	f := newFake()
	pol, err := policy.Parse("accept 127.0.0.0/8, reject *")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, Config{Policy: pol}, f)
	ctx := context.Background()
	for _, bad := range [][]byte{nil, {1, 2, 3}, mkQuery(t, 1, "example.com.", dnsmessage.TypeA)[:15]} {
		if out := s.handle(ctx, bad, loopback, true); out != nil {
			t.Errorf("malformed %x answered", bad)
		}
	}
	resp := mkQuery(t, 1, "example.com.", dnsmessage.TypeA)
	resp[2] |= 0x80 // QR: a response
	if s.handle(ctx, resp, loopback, true) != nil {
		t.Error("a response was answered")
	}
	m := decode(t, s.handle(ctx, mkQuery(t, 5, "example.com.", dnsmessage.TypeA), netip.MustParseAddrPort("192.168.1.5:53"), true))
	if m.RCode != dnsmessage.RCodeRefused || f.calls.Load() != 0 {
		t.Errorf("refused client: rcode %v, %d lookups", m.RCode, f.calls.Load())
	}
	if s.counters.Get(Malformed) != 4 || s.counters.Get(Refused) != 1 {
		t.Errorf("counters: malformed %d, refused %d", s.counters.Get(Malformed), s.counters.Get(Refused))
	}
}

func TestOutstandingBound(t *testing.T) {
	f := newFake()
	f.block = make(chan struct{})
	s := newServer(t, Config{MaxOutstanding: 2}, f)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { s.handle(ctx, mkQuery(t, uint16(i), "example.com.", dnsmessage.TypeA), loopback, true) })
	}
	for f.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	m := decode(t, s.handle(ctx, mkQuery(t, 9, "v4only.test.", dnsmessage.TypeA), loopback, true))
	if m.RCode != dnsmessage.RCodeServerFailure || s.counters.Get(Overloaded) != 1 {
		t.Fatalf("third query: %v, overloaded %d", m.RCode, s.counters.Get(Overloaded))
	}
	close(f.block)
	wg.Wait()
	m = decode(t, s.handle(ctx, mkQuery(t, 10, "v4only.test.", dnsmessage.TypeA), loopback, true))
	if m.RCode != dnsmessage.RCodeSuccess {
		t.Fatalf("after the bound cleared: %v", m.RCode)
	}
}

func TestParsePTRName(t *testing.T) {
	for in, want := range map[string]string{
		"4.3.2.1.in-addr.arpa.": "1.2.3.4",
		"4.3.2.1.IN-ADDR.ARPA":  "1.2.3.4",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa": "2001:db8::1",
	} {
		a, ok := ParsePTRName(in)
		if !ok || a.String() != want {
			t.Errorf("ParsePTRName(%q) = %v, %v; want %s", in, a, ok, want)
		}
	}
	for _, bad := range []string{"3.2.1.in-addr.arpa", "x.3.2.1.in-addr.arpa", "256.3.2.1.in-addr.arpa", "1.ip6.arpa", "example.com"} {
		if a, ok := ParsePTRName(bad); ok {
			t.Errorf("ParsePTRName(%q) = %v", bad, a)
		}
	}
}

// TestOverTheWire serves UDP and TCP: a malformed datagram is dropped
// and the next query answered; a cut or oversized TCP message closes
// only its own connection.
func TestOverTheWire(t *testing.T) {
	f := newFake()
	ls := NewListeners(f, nil)
	defer ls.Close()
	ctx := context.Background()
	if err := ls.Apply(ctx, []Port{{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Config: Config{ID: "test"}}}); err != nil {
		t.Fatal(err)
	}
	var udpAddr, tcpAddr net.Addr
	for _, l := range ls.open {
		udpAddr, tcpAddr = l.udp, l.tcp
	}
	uc, err := net.Dial("udp", udpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("garbage that is no DNS message"))
	uc.Write(mkQuery(t, 42, "example.com.", dnsmessage.TypeA))
	uc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := uc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if m := decode(t, buf[:n]); m.ID != 42 || len(m.Answers) != 1 {
		t.Fatalf("UDP answer %+v", m)
	}

	tcpQuery := func(c net.Conn, id uint16) dnsmessage.Message {
		t.Helper()
		q := mkQuery(t, id, "example.com.", dnsmessage.TypeAAAA)
		c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		return decode(t, b)
	}
	good, err := net.Dial("tcp", tcpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if m := tcpQuery(good, 1); len(m.Answers) != 1 {
		t.Fatalf("TCP answer %+v", m)
	}
	for _, bad := range [][]byte{
		{0xff, 0xff, 1, 2, 3},            // longer than MaxTCPMessage
		{0, 40, 1, 2, 3},                 // cut short (then closed)
		append([]byte{0, 5}, "hello"...), // not DNS
	} {
		c, err := net.Dial("tcp", tcpAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(bad)
		if bad[1] == 40 {
			c.(*net.TCPConn).CloseWrite()
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 10)); err == nil || n != 0 {
			t.Errorf("message %x: connection not closed (%d bytes, %v)", bad, n, err)
		}
		c.Close()
	}
	if m := tcpQuery(good, 2); len(m.Answers) != 1 {
		t.Fatalf("TCP answer after bad connections %+v", m)
	}
}

func FuzzHandle(f *testing.F) {
	f.Add(mkQuery(f, 1, "example.com.", dnsmessage.TypeA), false)
	f.Add(mkQuery(f, 2, "1.2.0.192.in-addr.arpa.", dnsmessage.TypePTR), true)
	f.Add(mkQuery(f, 3, "x.onion.", dnsmessage.TypeAAAA), true)
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0}, true)
	s, err := New(Config{ID: "fuzz", CacheEntries: 4}, newFake())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	f.Fuzz(func(t *testing.T, msg []byte, udp bool) {
		out := s.handle(context.Background(), msg, loopback, udp)
		if out == nil {
			return
		}
		m := decode(t, out)
		if !m.Response || m.ID != binary.BigEndian.Uint16(msg) {
			t.Fatalf("answer %+v to %x", m.Header, msg)
		}
		if udp && len(out) > 512 {
			t.Fatalf("UDP answer of %d bytes", len(out))
		}
		if _, err := readTCPMessage(bytesReader(msg), DefaultMaxTCPMessage); err == nil && len(msg) < 2 {
			t.Fatal("short frame accepted")
		}
	})
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &byteReader{b} }

// TestTCPHalfCloseGetsAnswer: a client that sends its query and closes
// its side still gets the answer of a lookup that takes a while.
func TestTCPHalfCloseGetsAnswer(t *testing.T) {
	f := newFake()
	f.block = make(chan struct{})
	ls := NewListeners(f, nil)
	defer ls.Close()
	if err := ls.Apply(context.Background(), []Port{{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Config: Config{ID: "test"}}}); err != nil {
		t.Fatal(err)
	}
	var tcpAddr net.Addr
	for _, l := range ls.open {
		tcpAddr = l.tcp
	}
	c, err := net.Dial("tcp", tcpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := mkQuery(t, 7, "example.com.", dnsmessage.TypeA)
	c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...))
	c.(*net.TCPConn).CloseWrite()
	close(f.block) // the lookup ends after the client's EOF may have been read
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatalf("no answer after half-close: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	if m := decode(t, b); m.ID != 7 || len(m.Answers) != 1 {
		t.Fatalf("answer %+v", m)
	}
}
