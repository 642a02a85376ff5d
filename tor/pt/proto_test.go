package pt

import (
	"strings"
	"testing"

	"tinytor/tor/torlog"
)

func TestEncodeArgs(t *testing.T) {
	got := EncodeArgs([]KV{{"shared-secret", "rahasia"}, {"secrets-file", "/tmp/blob"}})
	if got != "shared-secret=rahasia;secrets-file=/tmp/blob" {
		t.Errorf("got %q", got)
	}
	if got := EncodeArgs([]KV{{`a;b`, `c=d\e`}}); got != `a\;b=c\=d\\e` {
		t.Errorf("escaping: got %q", got)
	}
}

func TestSOCKS5Auth(t *testing.T) {
	for _, c := range []struct {
		n          int
		user, pass int
		err        bool
	}{{0, 0, 0, false}, {1, 1, 1, false}, {255, 255, 1, false}, {256, 255, 1, false}, {510, 255, 255, false}, {511, 0, 0, true}} {
		enc := strings.Repeat("a", c.n)
		u, p, err := socks5Auth(enc)
		if (err != nil) != c.err || len(u) != c.user || len(p) != c.pass {
			t.Errorf("%d bytes: user %d pass %d err %v", c.n, len(u), len(p), err)
		}
		if !c.err && c.n > 0 && c.n <= 255 && p != "\x00" {
			t.Errorf("%d bytes: password %q, want NUL", c.n, p)
		}
		if !c.err && c.n > 255 && u+p != enc {
			t.Errorf("%d bytes: split loses bytes", c.n)
		}
	}
}

func TestParseCMethod(t *testing.T) {
	m, err := parseCMethod("obfs4 socks5 127.0.0.1:37347 ARGS:x=y")
	if err != nil || m.name != "obfs4" || m.socks != 5 || m.addr.String() != "127.0.0.1:37347" {
		t.Errorf("got %+v, %v", m, err)
	}
	if m, err := parseCMethod("meek socks4 [::1]:1"); err != nil || m.socks != 4 || m.addr.String() != "[::1]:1" {
		t.Errorf("got %+v, %v", m, err)
	}
	for _, bad := range []string{"obfs4 socks5", "ob-fs socks5 127.0.0.1:1", "obfs4 http 127.0.0.1:1",
		"obfs4 socks5 127.0.0.1:0", "obfs4 socks5 localhost:80", "obfs4 socks5 [fe80::1%eth0]:80"} {
		if _, err := parseCMethod(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseKVs(t *testing.T) {
	kvs, err := parseKVs(`TRANSPORT=obfs4 ADDRESS=198.51.100.222:2222 ERRSTR="Connection \"refused\"" X=`)
	want := []KV{{"TRANSPORT", "obfs4"}, {"ADDRESS", "198.51.100.222:2222"}, {"ERRSTR", `Connection "refused"`}, {"X", ""}}
	if err != nil || len(kvs) != len(want) {
		t.Fatalf("got %q, %v", kvs, err)
	}
	for i := range want {
		if kvs[i] != want[i] {
			t.Errorf("kv %d: %q, want %q", i, kvs[i], want[i])
		}
	}
	for _, bad := range []string{`NOVALUE`, `=x`, `A="unterminated`, `A="x"y`, `A=1 B`} {
		if _, err := parseKVs(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestSessionProtocol(t *testing.T) {
	run := func(proxy bool, lines ...string) (*session, *outcome) {
		s := newSession("/bin/pt", torlog.Discard(), []string{"a", "b"}, proxy, nil)
		for _, l := range lines {
			if o := s.line(l); o != nil {
				return s, o
			}
		}
		return s, nil
	}
	s, o := run(false, "VERSION 1", "CMETHOD a socks5 127.0.0.1:5", "CMETHOD c socks5 127.0.0.1:6",
		"CMETHOD-ERROR b broken", "CMETHODS DONE")
	if o == nil || o.err != nil || len(s.methods) != 1 || s.errs["b"] == nil || s.errs["a"] != nil {
		t.Fatalf("good session: %+v %+v %v", o, s.methods, s.errs)
	}
	for _, c := range []struct {
		proxy bool
		lines []string
		want  string
	}{
		{false, []string{"VERSION 2"}, `version "2"`},
		{false, []string{"CMETHOD a socks5 127.0.0.1:5"}, "unexpected line"},
		{false, []string{"VERSION 1", "VERSION 1"}, "unexpected line"},
		{false, []string{"VERSION 1", "CMETHOD a socks5 nowhere"}, "bad CMETHOD"},
		{false, []string{"ENV-ERROR missing X"}, "ENV-ERROR missing X"},
		{true, []string{"VERSION 1", "PROXY-ERROR no socks4"}, "PROXY-ERROR no socks4"},
		{true, []string{"VERSION 1", "CMETHODS DONE"}, "no PROXY DONE"},
	} {
		_, o := run(c.proxy, c.lines...)
		if o == nil || o.err == nil || !o.permanent || !strings.Contains(o.err.Error(), c.want) {
			t.Errorf("%q: outcome %+v, want %q", c.lines, o, c.want)
		}
	}
	if _, o := run(true, "VERSION 1", "PROXY READY", "CMETHODS FOO", "PROXY DONE", "CMETHODS DONE"); o == nil || o.err != nil {
		t.Errorf("proxy session: %+v", o)
	}
}

func FuzzLine(f *testing.F) {
	for _, l := range []string{"VERSION 1", "CMETHOD obfs4 socks5 127.0.0.1:1", "CMETHOD-ERROR x y",
		"CMETHODS DONE", "PROXY DONE", `LOG SEVERITY=debug MESSAGE="a\x41\101"`, "STATUS TRANSPORT=x A=b",
		"VERSION-ERROR no-version", "ENV-ERROR x"} {
		f.Add("VERSION 1\n" + l)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := newSession("p", torlog.Discard(), []string{"obfs4", "x"}, false, func(Event) {})
		readLines(strings.NewReader(in), torlog.Discard(), "p", func(l string) {
			if o := s.line(l); o != nil && o.err == nil {
				for n, m := range s.methods {
					if !ValidName(n) || (m.SOCKS != 4 && m.SOCKS != 5) || m.Addr.Port() == 0 {
						t.Fatalf("accepted method %+v", m)
					}
				}
			}
		})
		if kvs, err := parseKVs(in); err == nil {
			for _, kv := range kvs {
				if kv.Key == "" || strings.ContainsAny(kv.Key, " =") {
					t.Fatalf("bad key %q", kv.Key)
				}
			}
		}
	})
}
