package socks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// cat joins byte slices and strings into one message.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case []byte:
			b = append(b, v...)
		case string:
			b = append(b, v...)
		case byte:
			b = append(b, v)
		case int:
			b = append(b, byte(v))
		default:
			panic("cat: bad part")
		}
	}
	return b
}

func TestReadRequest(t *testing.T) {
	long := strings.Repeat("a", 256)
	label64 := strings.Repeat("b", 64) + ".com"
	type want struct {
		req       *Request // nil: expect an error
		written   []byte   // bytes written during the handshake
		errVer    int
		sendReply bool
		reply     ReplyCode
		errIs     error
	}
	tests := []struct {
		name string
		in   []byte
		opts ReadOptions
		want want
	}{
		{"socks4 ip connect", cat(4, 1, 0, 80, 10, 1, 2, 3, "", 0), ReadOptions{},
			want{req: &Request{Version: 4, Command: Connect, Host: "10.1.2.3", AddrType: AddrIPv4, Port: 80}}},
		{"socks4 user id", cat(4, 1, 0x1f, 0x90, 127, 0, 0, 1, "alice", 0), ReadOptions{},
			want{req: &Request{Version: 4, Command: Connect, Host: "127.0.0.1", AddrType: AddrIPv4, Port: 8080, Auth: true, Username: "alice"}}},
		{"socks4a hostname", cat(4, 1, 1, 187, 0, 0, 0, 1, "u", 0, "example.com", 0), ReadOptions{},
			want{req: &Request{Version: 4, Command: Connect, Host: "example.com", AddrType: AddrDomain, Port: 443, Auth: true, Username: "u"}}},
		{"socks4a resolve port 0", cat(4, 0xF0, 0, 0, 0, 0, 0, 9, 0, "torproject.org", 0), ReadOptions{},
			want{req: &Request{Version: 4, Command: Resolve, Host: "torproject.org", AddrType: AddrDomain}}},
		{"socks4 port 0 connect", cat(4, 1, 0, 0, 1, 2, 3, 4, 0), ReadOptions{},
			want{errVer: 4, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks4 ip 0", cat(4, 1, 0, 80, 0, 0, 0, 0, 0), ReadOptions{},
			want{errVer: 4, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks4 bind", cat(4, 2, 0, 80, 1, 2, 3, 4, 0), ReadOptions{},
			want{errVer: 4, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks4 resolve_ptr", cat(4, 0xF1, 0, 80, 1, 2, 3, 4, 0), ReadOptions{},
			want{errVer: 4, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks4 user id too long", cat(4, 1, 0, 80, 1, 2, 3, 4, long, 0), ReadOptions{},
			want{errVer: 4, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks4a hostname too long", cat(4, 1, 0, 80, 0, 0, 0, 1, 0, long, 0), ReadOptions{},
			want{errVer: 4, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks4a bad hostname", cat(4, 1, 0, 80, 0, 0, 0, 1, 0, "a b", 0), ReadOptions{},
			want{errVer: 4, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks4 truncated header", cat(4, 1, 0, 80), ReadOptions{},
			want{errVer: 4, sendReply: true, reply: ReplyGeneralFailure, errIs: io.ErrUnexpectedEOF}},
		{"socks4 unterminated user", cat(4, 1, 0, 80, 1, 2, 3, 4, "bob"), ReadOptions{},
			want{errVer: 4, sendReply: true, reply: ReplyGeneralFailure, errIs: io.ErrUnexpectedEOF}},

		{"socks5 noauth ipv4", cat(5, 1, 0, 5, 1, 0, 1, 93, 184, 216, 34, 0, 80), ReadOptions{},
			want{req: &Request{Version: 5, Command: Connect, Host: "93.184.216.34", AddrType: AddrIPv4, Port: 80}, written: []byte{5, 0}}},
		{"socks5 noauth ipv6", cat(5, 1, 0, 5, 1, 0, 4, []byte{0x20, 1, 0xd, 0xb8, 15: 1}, 1, 187), ReadOptions{},
			want{req: &Request{Version: 5, Command: Connect, Host: "2001:db8::1", AddrType: AddrIPv6, Port: 443}, written: []byte{5, 0}}},
		{"socks5 domain", cat(5, 2, 0, 0x80, 5, 1, 0, 3, 11, "example.org", 0, 80), ReadOptions{},
			want{req: &Request{Version: 5, Command: Connect, Host: "example.org", AddrType: AddrDomain, Port: 80}, written: []byte{5, 0}}},
		{"socks5 user/pass preferred", cat(5, 2, 0, 2, 1, 3, "bob", 3, "pwd", 5, 1, 0, 3, 5, "a.org", 0, 22), ReadOptions{},
			want{req: &Request{Version: 5, Command: Connect, Host: "a.org", AddrType: AddrDomain, Port: 22, Auth: true, Username: "bob", Password: "pwd"}, written: []byte{5, 2, 1, 0}}},
		{"socks5 prefer no auth", cat(5, 2, 2, 0, 5, 1, 0, 3, 5, "a.org", 0, 22), ReadOptions{PreferNoAuth: true},
			want{req: &Request{Version: 5, Command: Connect, Host: "a.org", AddrType: AddrDomain, Port: 22}, written: []byte{5, 0}}},
		{"socks5 only user/pass, empty fields", cat(5, 1, 2, 1, 0, 0, 5, 1, 0, 3, 5, "a.org", 0, 22), ReadOptions{PreferNoAuth: true},
			want{req: &Request{Version: 5, Command: Connect, Host: "a.org", AddrType: AddrDomain, Port: 22, Auth: true}, written: []byte{5, 2, 1, 0}}},
		{"socks5 auth message after no auth", cat(5, 1, 0, 1, 1, "x", 1, "y", 5, 1, 0, 3, 5, "a.org", 0, 22), ReadOptions{},
			want{req: &Request{Version: 5, Command: Connect, Host: "a.org", AddrType: AddrDomain, Port: 22, Auth: true, Username: "x", Password: "y"}, written: []byte{5, 0, 1, 0}}},
		{"socks5 resolve", cat(5, 1, 0, 5, 0xF0, 0, 3, 14, "torproject.org", 0, 0), ReadOptions{},
			want{req: &Request{Version: 5, Command: Resolve, Host: "torproject.org", AddrType: AddrDomain}, written: []byte{5, 0}}},
		{"socks5 resolve_ptr", cat(5, 1, 0, 5, 0xF1, 0, 1, 8, 8, 4, 4, 0, 0), ReadOptions{},
			want{req: &Request{Version: 5, Command: ResolvePTR, Host: "8.8.4.4", AddrType: AddrIPv4}, written: []byte{5, 0}}},
		{"socks5 resolve_ptr ip as domain", cat(5, 1, 0, 5, 0xF1, 0, 3, 7, "1.2.3.4", 0, 0), ReadOptions{},
			want{req: &Request{Version: 5, Command: ResolvePTR, Host: "1.2.3.4", AddrType: AddrDomain}, written: []byte{5, 0}}},
		{"socks5 resolve_ptr hostname", cat(5, 1, 0, 5, 0xF1, 0, 3, 5, "a.org", 0, 0), ReadOptions{},
			want{written: []byte{5, 0}, errVer: 5, sendReply: true, reply: ReplyAddrTypeUnsupported}},
		{"socks5 bracketed ipv6 domain", cat(5, 1, 0, 5, 1, 0, 3, 5, "[::1]", 0, 80), ReadOptions{},
			want{req: &Request{Version: 5, Command: Connect, Host: "::1", AddrType: AddrDomain, Port: 80}, written: []byte{5, 0}}},
		{"socks5 no acceptable method", cat(5, 2, 1, 3), ReadOptions{},
			want{written: []byte{5, 0xFF}, errVer: 5}},
		{"socks5 zero methods", cat(5, 0), ReadOptions{},
			want{errVer: 5}},
		{"socks5 bind", cat(5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80), ReadOptions{},
			want{written: []byte{5, 0}, errVer: 5, sendReply: true, reply: ReplyCommandUnsupported}},
		{"socks5 udp associate", cat(5, 1, 0, 5, 3, 0, 1, 1, 2, 3, 4, 0, 80), ReadOptions{},
			want{written: []byte{5, 0}, errVer: 5, sendReply: true, reply: ReplyCommandUnsupported}},
		{"socks5 bad atyp", cat(5, 1, 0, 5, 1, 0, 9, 1, 2, 3, 4, 0, 80), ReadOptions{},
			want{written: []byte{5, 0}, errVer: 5, sendReply: true, reply: ReplyAddrTypeUnsupported}},
		{"socks5 bad request version", cat(5, 1, 0, 4, 1, 0, 1, 1, 2, 3, 4, 0, 80), ReadOptions{},
			want{written: []byte{5, 0}, errVer: 5, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks5 empty hostname", cat(5, 1, 0, 5, 1, 0, 3, 0, 0, 80), ReadOptions{},
			want{written: []byte{5, 0}, errVer: 5, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks5 hostname with NUL", cat(5, 1, 0, 5, 1, 0, 3, 3, "a\x00b", 0, 80), ReadOptions{},
			want{written: []byte{5, 0}, errVer: 5, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks5 label too long", cat(5, 1, 0, 5, 1, 0, 3, len(label64), label64, 0, 80), ReadOptions{},
			want{written: []byte{5, 0}, errVer: 5, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks5 bad auth version", cat(5, 1, 2, 5, 1, 0, 1, 1, 2, 3, 4, 0, 80), ReadOptions{},
			want{written: []byte{5, 2}, errVer: 5, sendReply: true, reply: ReplyGeneralFailure}},
		{"socks5 truncated methods", cat(5, 3, 0), ReadOptions{},
			want{errVer: 5, errIs: io.ErrUnexpectedEOF}},
		{"socks5 truncated address", cat(5, 1, 0, 5, 1, 0, 1, 1, 2), ReadOptions{},
			want{written: []byte{5, 0}, errVer: 5, errIs: io.ErrUnexpectedEOF}},
		{"socks5 truncated hostname", cat(5, 1, 0, 5, 1, 0, 3, 20, "short"), ReadOptions{},
			want{written: []byte{5, 0}, errVer: 5, errIs: io.ErrUnexpectedEOF}},
		{"socks5 truncated password", cat(5, 1, 2, 1, 1, "u", 9, "pw"), ReadOptions{},
			want{written: []byte{5, 2}, errVer: 5, sendReply: true, reply: ReplyGeneralFailure, errIs: io.ErrUnexpectedEOF}},

		{"http get", []byte("GET / HTTP/1.1\r\n\r\n"), ReadOptions{}, want{errIs: ErrHTTPRequest}},
		{"http connect", []byte("CONNECT a:443 HTTP/1.1\r\n\r\n"), ReadOptions{}, want{errIs: ErrHTTPRequest}},
		{"bad version", []byte{6, 1, 0}, ReadOptions{}, want{}},
		{"empty", nil, ReadOptions{}, want{errIs: io.ErrUnexpectedEOF}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const early = "optimistic data"
			in := bytes.NewReader(append(append([]byte{}, tc.in...), early...))
			if tc.want.req == nil {
				in = bytes.NewReader(tc.in)
			}
			var out bytes.Buffer
			req, err := ReadRequest(in, &out, tc.opts)
			if !bytes.Equal(out.Bytes(), tc.want.written) {
				t.Errorf("written % x, want % x", out.Bytes(), tc.want.written)
			}
			if tc.want.req != nil {
				if err != nil {
					t.Fatalf("ReadRequest: %v", err)
				}
				if *req != *tc.want.req {
					t.Errorf("request\n got %+v\nwant %+v", *req, *tc.want.req)
				}
				rest, _ := io.ReadAll(in)
				if string(rest) != early {
					t.Errorf("left %q unread, want %q (read past the request)", rest, early)
				}
				return
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want *RequestError", err, err)
			}
			if re.Version != tc.want.errVer || re.SendReply != tc.want.sendReply || (re.SendReply && re.Reply != tc.want.reply) {
				t.Errorf("error %v: version %d sendReply %v reply %v, want %d %v %v",
					err, re.Version, re.SendReply, re.Reply, tc.want.errVer, tc.want.sendReply, tc.want.reply)
			}
			if tc.want.errIs != nil && !errors.Is(err, tc.want.errIs) {
				t.Errorf("error %v is not %v", err, tc.want.errIs)
			}
			if err.Error() == "" {
				t.Error("empty error message")
			}
		})
	}
}

func TestAppendReply(t *testing.T) {
	tests := []struct {
		name    string
		version int
		code    ReplyCode
		addr    netip.Addr
		host    string
		want    []byte
	}{
		{"socks4 granted", 4, ReplySucceeded, netip.Addr{}, "", []byte{0, 0x5A, 0, 0, 0, 0, 0, 0}},
		{"socks4 rejected", 4, ReplyHostUnreachable, netip.Addr{}, "", []byte{0, 0x5B, 0, 0, 0, 0, 0, 0}},
		{"socks4 resolved", 4, ReplySucceeded, netip.MustParseAddr("1.2.3.4"), "", []byte{0, 0x5A, 0, 0, 1, 2, 3, 4}},
		{"socks5 connect ok", 5, ReplySucceeded, netip.Addr{}, "", []byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"socks5 refused", 5, ReplyConnectionRefused, netip.Addr{}, "", []byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"socks5 extended", 5, ReplyOnionIntroTimedOut, netip.Addr{}, "", []byte{5, 0xF7, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"socks5 resolved v4", 5, ReplySucceeded, netip.MustParseAddr("9.8.7.6"), "", []byte{5, 0, 0, 1, 9, 8, 7, 6, 0, 0}},
		{"socks5 resolved v6", 5, ReplySucceeded, netip.MustParseAddr("2001:db8::2"), "",
			[]byte{5, 0, 0, 4, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0}},
		{"socks5 ptr", 5, ReplySucceeded, netip.Addr{}, "dns.google", cat(5, 0, 0, 3, 10, "dns.google", 0, 0)},
	}
	for _, tc := range tests {
		got := appendReply(nil, tc.version, tc.code, tc.addr, tc.host)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: % x, want % x", tc.name, got, tc.want)
		}
	}
}

func TestReplyFor(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		err      error
		def      ReplyCode
		extended bool
		want     ReplyCode
	}{
		{nil, ReplyGeneralFailure, false, ReplySucceeded},
		{base, ReplyGeneralFailure, false, ReplyGeneralFailure},
		{base, ReplyHostUnreachable, false, ReplyHostUnreachable},
		{&Error{Reply: ReplyConnectionRefused, Err: base}, ReplyGeneralFailure, false, ReplyConnectionRefused},
		{fmtWrap(&Error{Reply: ReplyOnionDescNotFound}), ReplyGeneralFailure, true, ReplyOnionDescNotFound},
		{fmtWrap(&Error{Reply: ReplyOnionDescNotFound}), ReplyGeneralFailure, false, ReplyGeneralFailure},
		{&Error{Reply: ReplySucceeded}, ReplyHostUnreachable, false, ReplyGeneralFailure},
		{fmtWrap(context.DeadlineExceeded), ReplyGeneralFailure, false, ReplyTTLExpired},
	}
	for i, tc := range tests {
		if got := ReplyFor(tc.err, tc.def, tc.extended); got != tc.want {
			t.Errorf("%d: ReplyFor(%v) = %v, want %v", i, tc.err, got, tc.want)
		}
	}
}

func TestIsOnion(t *testing.T) {
	for host, want := range map[string]bool{
		"abc.onion": true, "x.y.ONION": true, "abc.onion.": true,
		".onion": false, "onion": false, "abc.onion.org": false, "example.com": false,
	} {
		if got := IsOnion(host); got != want {
			t.Errorf("IsOnion(%q) = %v, want %v", host, got, want)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add(cat(4, 1, 0, 80, 10, 1, 2, 3, "", 0))
	f.Add(cat(4, 1, 1, 187, 0, 0, 0, 1, "u", 0, "example.com", 0))
	f.Add(cat(5, 1, 0, 5, 1, 0, 1, 93, 184, 216, 34, 0, 80))
	f.Add(cat(5, 2, 0, 2, 1, 3, "bob", 3, "pwd", 5, 1, 0, 3, 5, "a.org", 0, 22))
	f.Add(cat(5, 1, 0, 5, 0xF1, 0, 4, []byte{15: 1}, 0, 0))
	f.Add(cat(5, 1, 0, 1, 1, "x", 1, "y", 5, 0xF0, 0, 3, 5, "a.org", 0, 0))
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opts := range []ReadOptions{{}, {PreferNoAuth: true}} {
			req, err := ReadRequest(bytes.NewReader(data), io.Discard, opts)
			if (req == nil) == (err == nil) {
				t.Fatalf("req %v and err %v", req, err)
			}
			if err != nil {
				var re *RequestError
				if !errors.As(err, &re) {
					t.Fatalf("error %T is not a *RequestError", err)
				}
				continue
			}
			if req.Version != 4 && req.Version != 5 {
				t.Fatalf("version %d", req.Version)
			}
			if req.Host == "" || len(req.Host) > maxField || len(req.Username) > maxField || len(req.Password) > maxField {
				t.Fatalf("bad field lengths in %+v", req)
			}
			if req.Command != Connect && req.Command != Resolve && req.Command != ResolvePTR {
				t.Fatalf("command %v accepted", req.Command)
			}
			_ = appendReply(nil, req.Version, ReplySucceeded, netip.Addr{}, req.Host)
		}
	})
}

func fmtWrap(err error) error { return fmt.Errorf("dialing: %w", err) }

func BenchmarkReadRequest(b *testing.B) {
	msg := cat(5, 1, 2, 1, 5, "alice", 3, "pwd", 5, 1, 0, 3, 11, "example.com", 1, 187)
	r := bytes.NewReader(msg)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(msg)
		if _, err := ReadRequest(r, io.Discard, ReadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
