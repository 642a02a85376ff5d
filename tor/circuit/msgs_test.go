package circuit

import (
	"bytes"
	"net/netip"
	"testing"
)

func TestEncodeBegin(t *testing.T) {
	for _, tc := range []struct {
		host string
		port uint16
		want string
		bad  bool
	}{
		{host: "Example.COM", port: 443, want: "example.com:443\x00\x00\x00\x00\x01"},
		{host: "127.0.0.1", port: 80, want: "127.0.0.1:80\x00\x00\x00\x00\x01"},
		{host: "::1", port: 80, want: "[::1]:80\x00\x00\x00\x00\x01"},
		{host: "[::1]", port: 80, want: "[::1]:80\x00\x00\x00\x00\x01"},
		{host: "", port: 80, want: ":80\x00\x00\x00\x00\x01"},
		{host: "a\x00b", port: 80, bad: true},
		{host: "a:b", port: 80, bad: true},
		{host: "a", port: 0, bad: true},
		{host: string(bytes.Repeat([]byte("a"), 600)), port: 1, bad: true},
	} {
		got, err := encodeBegin(tc.host, tc.port, IPv6OK)
		if tc.bad {
			if err == nil {
				t.Errorf("encodeBegin(%q, %d) accepted", tc.host, tc.port)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("encodeBegin(%q, %d) = %q, %v; want %q", tc.host, tc.port, got, err, tc.want)
		}
	}
}

func TestParseConnected(t *testing.T) {
	v6 := append([]byte{0, 0, 0, 0, 6}, netip.MustParseAddr("2001:db8::1").AsSlice()...)
	v6 = append(v6, 0, 0, 1, 0)
	for _, tc := range []struct {
		in   []byte
		addr string
		ttl  uint32
		bad  bool
	}{
		{in: nil},
		{in: make([]byte, 8)},
		{in: []byte{10, 0, 0, 1, 0, 0, 0, 30}, addr: "10.0.0.1", ttl: 30},
		{in: v6, addr: "2001:db8::1", ttl: 256},
		{in: v6[:20], bad: true},
		{in: []byte{0, 0, 0, 0, 9, 1}, bad: true},
		{in: []byte{1, 2}, bad: true},
	} {
		c, err := ParseConnected(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseConnected(%x) accepted", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseConnected(%x): %v", tc.in, err)
			continue
		}
		if (tc.addr == "" && c.Addr.IsValid()) || (tc.addr != "" && c.Addr != netip.MustParseAddr(tc.addr)) || c.TTL != tc.ttl {
			t.Errorf("ParseConnected(%x) = %+v", tc.in, c)
		}
	}
}

func TestParseResolved(t *testing.T) {
	in := []byte{
		4, 4, 192, 0, 2, 1, 0, 0, 0, 10,
		0, 5, 'a', '.', 'b', 'c', 'd', 0, 0, 0, 20,
		0xf0, 3, 'e', 'r', 'r', 0, 0, 0, 0,
	}
	as, err := ParseResolved(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 3 || as[0].Addr != netip.MustParseAddr("192.0.2.1") || as[0].TTL != 10 ||
		as[1].Host != "a.bcd" || as[1].TTL != 20 || as[2].Type != AnswerErrTransient {
		t.Fatalf("answers %+v", as)
	}
	for _, bad := range [][]byte{{4, 3, 1, 2, 3, 0, 0, 0, 0}, {6, 4, 1, 2, 3, 4, 0, 0, 0, 0}, {4, 4, 1, 2, 3, 4, 0}, {4}} {
		if _, err := ParseResolved(bad); err == nil {
			t.Errorf("ParseResolved(%x) accepted", bad)
		}
	}
}
