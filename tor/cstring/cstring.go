// Package cstring reads and writes C tor's quoted strings, the form that
// torrc values and control-port arguments share (C tor
// lib/encoding/cstring.c unescape_string): "..." with the escapes \n, \r,
// \t, \", \\, \', \xHH and octal \N, \NN, \NNN (at most \377).
package cstring

import (
	"errors"
	"fmt"
	"strings"

	"tinytor/tor/errfmt"
)

// HexDigit returns the value of the hexadecimal digit c, or -1 if c is not
// one.
func HexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// Unquote decodes the quoted string at the start of s (which must begin
// with '"') as C tor's unescape_string does, and returns its value with the
// number of bytes consumed, closing quote included. A raw newline, an
// unknown escape, a \x without two hex digits, an octal escape above \377
// or a missing closing quote are errors; the messages say which.
func Unquote(s string) (string, int, error) {
	if !strings.HasPrefix(s, `"`) {
		return "", 0, errors.New("quoted string does not start with '\"'")
	}
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch c {
		case '\n':
			return "", 0, errors.New("quoted string is not closed on its line")
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(s) {
				return "", 0, errors.New("quoted string is not closed")
			}
			e := s[i+1]
			switch {
			case e == 'n':
				b.WriteByte('\n')
				i += 2
			case e == 'r':
				b.WriteByte('\r')
				i += 2
			case e == 't':
				b.WriteByte('\t')
				i += 2
			case e == '"' || e == '\\' || e == '\'':
				b.WriteByte(e)
				i += 2
			case e == 'x' || e == 'X':
				if i+3 >= len(s) || HexDigit(s[i+2]) < 0 || HexDigit(s[i+3]) < 0 {
					return "", 0, errors.New(`invalid escape sequence \x in quoted string (want two hex digits)`)
				}
				b.WriteByte(byte(HexDigit(s[i+2])<<4 | HexDigit(s[i+3])))
				i += 4
			case isOctal(e):
				n, j := int(e-'0'), i+2
				for k := 0; k < 2 && j < len(s) && isOctal(s[j]); k++ {
					n = n*8 + int(s[j]-'0')
					j++
				}
				if n > 255 {
					return "", 0, errfmt.Errorf(`octal escape %q in quoted string is above \377`, s[i:j])
				}
				b.WriteByte(byte(n))
				i = j
			default:
				return "", 0, errfmt.Errorf(`invalid escape sequence \%c in quoted string`, e)
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, errors.New("quoted string is not closed")
}

// Quote returns s as a quoted string that Unquote reads back: backslash,
// quote, CR, LF and TAB get C escapes, other bytes outside printable ASCII
// octal escapes, as C tor's esc_for_log writes them.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
