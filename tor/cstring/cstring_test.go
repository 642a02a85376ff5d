package cstring

import (
	"strings"
	"testing"
)

func TestHexDigit(t *testing.T) {
	for c, want := range map[byte]int{'0': 0, '9': 9, 'a': 10, 'f': 15, 'A': 10, 'F': 15, 'g': -1, 'G': -1, ' ': -1, '/': -1, ':': -1} {
		if got := HexDigit(c); got != want {
			t.Errorf("HexDigit(%q) = %d, want %d", c, got, want)
		}
	}
}

func TestUnquote(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		n    int
	}{
		{`""`, "", 2},
		{`"abc" rest`, "abc", 5},
		{`"\n\r\t\"\\\'\x41\X4a\101\7\0"`, "\n\r\t\"\\'AJA\x07\x00", 30},
		{`"\1011"`, "A1", 7},
		{"\"a\rb\"", "a\rb", 5},
		{`"#not a comment"`, "#not a comment", 16},
	} {
		got, n, err := Unquote(tc.in)
		if err != nil || got != tc.want || n != tc.n {
			t.Errorf("Unquote(%q) = %q, %d, %v; want %q, %d", tc.in, got, n, err, tc.want, tc.n)
		}
	}
	for in, msg := range map[string]string{
		"abc":        `quoted string does not start with '"'`,
		"\"abc\nx\"": "quoted string is not closed on its line",
		`"abc`:       "quoted string is not closed",
		`"\`:         "quoted string is not closed",
		`"\q"`:       `invalid escape sequence \q in quoted string`,
		`"\?"`:       `invalid escape sequence \? in quoted string`,
		`"\x4"`:      `invalid escape sequence \x in quoted string (want two hex digits)`,
		`"\x4g"`:     `invalid escape sequence \x in quoted string (want two hex digits)`,
		`"\777"`:     `octal escape "\\777" in quoted string is above \377`,
	} {
		if _, _, err := Unquote(in); err == nil || err.Error() != msg {
			t.Errorf("Unquote(%q) error %v, want %q", in, err, msg)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := Quote("/a b/\"c\"\n\x01\xff\\"); got != `"/a b/\"c\"\n\001\377\\"` {
		t.Errorf("Quote = %s", got)
	}
}

func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`"abc"`, `"\x41\101\n"`, `"\777"`, `"\`, "\"a\nb\"", `"\q"`, `"" tail`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, n, err := Unquote(s)
		if err == nil {
			if n < 2 || n > len(s) || s[n-1] != '"' {
				t.Fatalf("Unquote(%q) consumed %d bytes", s, n)
			}
			if len(v) > n {
				t.Fatalf("Unquote(%q) = %q is longer than its input", s, v)
			}
		}
		// Anything quoted reads back as itself.
		q := Quote(s)
		back, m, err := Unquote(q + " tail")
		if err != nil || back != s || m != len(q) {
			t.Fatalf("Quote(%q) = %s reads back as %q, %d, %v", s, q, back, m, err)
		}
		if strings.ContainsAny(q, "\n\r") {
			t.Fatalf("Quote(%q) = %q has a raw line break", s, q)
		}
	})
}
