package control

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in   string
		want *Command
		code int // expected *Error code, 0 for success, -1 for a non-protocol error
	}{
		{"GETINFO version\r\n", &Command{Keyword: "GETINFO", Args: "version"}, 0},
		{"getinfo version\n", &Command{Keyword: "GETINFO", Args: "version"}, 0},
		{"QUIT\r\n", &Command{Keyword: "QUIT"}, 0},
		{"SETCONF a=1  b=\"x y\"\r\n", &Command{Keyword: "SETCONF", Args: "a=1  b=\"x y\""}, 0},
		{"+LOADCONF\r\nSocksPort 0\r\n..dot\r\n.\r\n", &Command{Keyword: "LOADCONF", Multiline: true, Data: []byte("SocksPort 0\n.dot\n")}, 0},
		{"+HSPOST SERVER=x\r\n.\r\n", &Command{Keyword: "HSPOST", Args: "SERVER=x", Multiline: true, Data: []byte{}}, 0},
		{"+LOADCONF\r\nabc\r\n", nil, -1},
		{"GETINFO version", nil, -1},
		{"GETINFO " + strings.Repeat("a", DefaultMaxLine) + "\r\n", nil, 500},
		{"GETINFO a\r\nGETINFO b\r\n", nil, 500},
	}
	for _, tc := range tests {
		got, err := ParseCommand([]byte(tc.in))
		var ce *Error
		switch {
		case tc.code == 0:
			if err != nil {
				t.Errorf("ParseCommand(%.40q): %v", tc.in, err)
			} else if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseCommand(%.40q) = %+v, want %+v", tc.in, got, tc.want)
			}
		case tc.code > 0:
			if !errors.As(err, &ce) || ce.Code != tc.code {
				t.Errorf("ParseCommand(%.40q) error = %v, want code %d", tc.in, err, tc.code)
			}
		default:
			if err == nil || errors.As(err, &ce) {
				t.Errorf("ParseCommand(%.40q) error = %v, want I/O error", tc.in, err)
			}
		}
	}
	if _, err := ParseCommand(nil); !errors.Is(err, io.EOF) {
		t.Errorf("empty input: %v, want EOF", err)
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		in      string
		want    []Arg
		wantErr bool
	}{
		{"", nil, false},
		{"a b", []Arg{{Value: "a"}, {Value: "b"}}, false},
		{"k=v", []Arg{{Key: "k", Value: "v", HasKey: true}}, false},
		{`k="a b\"c\\d\n\101\x41"`, []Arg{{Key: "k", Value: "a b\"c\\d\nAA", HasKey: true, Quoted: true}}, false},
		{`"pw d"`, []Arg{{Value: "pw d", Quoted: true}}, false},
		{"k= x", []Arg{{Key: "k", HasKey: true}, {Value: "x"}}, false},
		{`Port=80,127.0.0.1:8080 Flags=Detach`, []Arg{{Key: "Port", Value: "80,127.0.0.1:8080", HasKey: true}, {Key: "Flags", Value: "Detach", HasKey: true}}, false},
		{`"unterminated`, nil, true},
		{`"a"b`, nil, true},
		{`a"b`, nil, true},
		{`=v`, nil, true},
		{`k="\x4"`, nil, true},
		{`k="\777"`, nil, true},
	}
	for _, tc := range tests {
		got, err := ParseArgs(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseArgs(%q) error %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseArgs(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestQuoteStringRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", `a"b\c`, "line\r\nnext\ttab", "\x00\x01\xff"} {
		q := QuoteString(s)
		as, err := ParseArgs("k=" + q)
		if err != nil || len(as) != 1 || as[0].Value != s {
			t.Errorf("round trip of %q via %s: %+v %v", s, q, as, err)
		}
	}
	if got := QuoteString("/a b/\"c\"\n"); got != `"/a b/\"c\"\n"` {
		t.Errorf("QuoteString = %s", got)
	}
}

func TestReplyWriterData(t *testing.T) {
	var b strings.Builder
	w := NewReplyWriter(&b)
	w.Mid(250, "k=v")
	w.Data(250, "config-text=", "a\n.b\n\n..\r\nlast")
	w.End(250, "OK")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "250-k=v\r\n250+config-text=\r\na\r\n..b\r\n\r\n...\r\nlast\r\n.\r\n250 OK\r\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"GETINFO version\r\n", "+LOADCONF\r\n..x\r\n.\r\n", "AUTHENTICATE \"a\\\"b\"\r\n",
		"SETCONF a=\"\\x41\\101\" b\n", "ADD_ONION NEW:BEST Port=80,127.0.0.1:8080 Flags=DiscardPK\r\n",
		"ONION_CLIENT_AUTH_ADD abc x25519:AAAA ClientName=x Flags=Permanent\r\n", "\r\n", "+\r\n.\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := ParseCommand(b)
		if err != nil {
			return
		}
		if strings.ToUpper(cmd.Keyword) != cmd.Keyword {
			t.Fatalf("keyword not upper-cased: %q", cmd.Keyword)
		}
		if cmd.Multiline != (cmd.Data != nil) {
			t.Fatalf("Multiline %v but Data %q", cmd.Multiline, cmd.Data)
		}
		as, err := ParseArgs(cmd.Args)
		if err != nil {
			return
		}
		for _, a := range as {
			if a.HasKey && a.Key == "" {
				t.Fatalf("empty key from %q", cmd.Args)
			}
		}
		ParseAddOnion(cmd.Args)
		ParseOnionClientAuthAdd(cmd.Args)
	})
}

func TestValidOnionV3(t *testing.T) {
	good := onionAddr(edKey(7))
	if !ValidOnionV3(good) || !ValidOnionV3(strings.ToUpper(good)) {
		t.Errorf("valid address %s rejected", good)
	}
	// Known address of the Tor Project's website.
	if !ValidOnionV3("2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid") {
		t.Error("torproject.org onion rejected")
	}
	bad := []string{
		"", "abc", good[:55], good + "a",
		onionAddr([32]byte{9}), // not a curve point
		onionAddr(edKey(0)),    // identity
		good[:55] + "b",        // checksum / version broken
		strings.Replace(good, good[:1], "0", 1),
	}
	for _, b := range bad {
		if ValidOnionV3(b) {
			t.Errorf("ValidOnionV3(%q) = true", b)
		}
	}
}
