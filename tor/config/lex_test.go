package config

import (
	"errors"
	"reflect"
	"testing"
)

func TestLex(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Line
	}{
		{"simple", "SocksPort 9050\n", []Line{{Key: "SocksPort", Value: "9050", Line: 1}}},
		{"no trailing newline", "SocksPort 9050", []Line{{Key: "SocksPort", Value: "9050", Line: 1}}},
		{"whitespace trimmed", "  \t SocksPort \t 9050  \t\r\n", []Line{{Key: "SocksPort", Value: "9050", Line: 1}}},
		{"comments and blanks", "# c\n\n   # indented\nLog notice stdout # trailing\n", []Line{{Key: "Log", Value: "notice stdout", Line: 4}}},
		{"comment right after value", "Log notice#x\n", []Line{{Key: "Log", Value: "notice", Line: 1}}},
		{"comment right after key", "Log#x\n", []Line{{Key: "Log", Value: "", Line: 1}}},
		{"key only", "SocksPort\nLog x\n", []Line{{Key: "SocksPort", Line: 1}, {Key: "Log", Value: "x", Line: 2}}},
		{"spaces inside value kept", "Log notice   file /a b\n", []Line{{Key: "Log", Value: "notice   file /a b", Line: 1}}},
		{"line numbers", "A 1\n\n#\nB 2\r\nC 3\n", []Line{{Key: "A", Value: "1", Line: 1}, {Key: "B", Value: "2", Line: 4}, {Key: "C", Value: "3", Line: 5}}},
		{"continuation", "ExitNodes a,\\\n  b,\\\nc\nLog x\n", []Line{{Key: "ExitNodes", Value: "a,  b,c", Line: 1}, {Key: "Log", Value: "x", Line: 4}}},
		// Checked against C tor 0.4.9 (tor --dump-config short).
		{"continuation skips comment lines", "ExitNodes a,\\\n# note\n  # more\nb\nLog x\n",
			[]Line{{Key: "ExitNodes", Value: "a,  b", Line: 1}, {Key: "Log", Value: "x", Line: 5}}},
		{"comment in continued value joins next line", "ExitNodes a,\\\nb # c\nc2\nLog x\n",
			[]Line{{Key: "ExitNodes", Value: "a,b c2", Line: 1}, {Key: "Log", Value: "x", Line: 4}}},
		{"comment before backslash ends value", "ExitNodes a # x \\\nLog x\n",
			[]Line{{Key: "ExitNodes", Value: "a", Line: 1}, {Key: "Log", Value: "x", Line: 2}}},
		// As in C tor, the value starts right after the key, so the
		// continued text keeps its leading space.
		{"continuation right after key", "ExitNodes\\\n a\n", []Line{{Key: "ExitNodes", Value: " a", Line: 1}}},
		{"backslash not before newline is literal", "DataDirectory C:\\x\\y\n", []Line{{Key: "DataDirectory", Value: "C:\\x\\y", Line: 1}}},
		{"quoted", `DataDirectory "/a b/#c"` + "\n", []Line{{Key: "DataDirectory", Value: "/a b/#c", Line: 1}}},
		{"quoted escapes", `User "\n\r\t\"\\\'\x41\X4a\101\7\0"`, []Line{{Key: "User", Value: "\n\r\t\"\\'AJA\x07\x00", Line: 1}}},
		{"quoted then comment", "User \"x\"   # c\nPidFile p\n", []Line{{Key: "User", Value: "x", Line: 1}, {Key: "PidFile", Value: "p", Line: 2}}},
		{"quoted CRLF", "User \"x\"\r\nPidFile p\n", []Line{{Key: "User", Value: "x", Line: 1}, {Key: "PidFile", Value: "p", Line: 2}}},
		{"quote not at start is literal", `User a"b"`, []Line{{Key: "User", Value: `a"b"`, Line: 1}}},
		{"append", "+SocksPort 9150\n", []Line{{Key: "SocksPort", Value: "9150", Command: Append, Line: 1}}},
		{"clear drops value", "/SocksPort x\n", []Line{{Key: "SocksPort", Command: Clear, Line: 1}}},
		{"include kept", "%include /etc/x\n", []Line{{Key: "%include", Value: "/etc/x", Line: 1}}},
		{"empty", "", nil},
		{"only comments", "# a\n#b", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Lex([]byte(tc.in), "f")
			if err != nil {
				t.Fatalf("Lex: %v", err)
			}
			for i := range tc.want {
				tc.want[i].File = "f"
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestLexErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"A 1\nUser \"abc\n", `f:2: User: syntax error: quoted string is not closed on its line`},
		{`User "abc`, `f:1: User: syntax error: quoted string is not closed`},
		{`User "a" b`, `f:1: User: syntax error: excess data after quoted string`},
		{`User "\q"`, `f:1: User: syntax error: invalid escape sequence \q in quoted string`},
		{`User "\x4"`, `f:1: User: syntax error: invalid escape sequence \x in quoted string (want two hex digits)`},
		{`User "\777"`, `f:1: User: syntax error: octal escape "\\777" in quoted string is above \377`},
		{`User "\`, `f:1: User: syntax error: quoted string is not closed`},
	}
	for _, tc := range tests {
		_, err := Lex([]byte(tc.in), "f")
		if err == nil || err.Error() != tc.want {
			t.Errorf("Lex(%q) error = %v, want %s", tc.in, err, tc.want)
		}
		var ce *Error
		if !errors.As(err, &ce) || !errors.Is(err, ErrSyntax) {
			t.Errorf("Lex(%q) error %v is not a *Error wrapping ErrSyntax", tc.in, err)
		}
	}
}
