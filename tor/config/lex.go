package config

import (
	"errors"
	"strings"

	"tinytor/tor/cstring"
	"tinytor/tor/errfmt"
)

// Command says how a torrc line combines with earlier lines of the same
// option (C tor's CONFIG_LINE_NORMAL, CONFIG_LINE_APPEND, CONFIG_LINE_CLEAR).
type Command int

const (
	// Set is a plain "Key Value" line. The first Set line of a list option
	// in a layer (defaults file, torrc, command line) replaces the values of
	// earlier layers; further lines in the same layer accumulate.
	Set Command = iota
	// Append is a "+Key Value" line: it appends to the values of earlier
	// layers instead of replacing them.
	Append
	// Clear is a "/Key" line: it removes every earlier value of the option.
	Clear
)

// Line is one "Key Value" entry of a torrc or of the command line, with
// where it came from.
type Line struct {
	Key     string // as written, without a +/ prefix
	Value   string // unquoted, continuation lines joined
	Command Command
	File    string // file name, or CommandLine
	Line    int    // 1-based line of the key; 0 for the command line
}

// CommandLine is the File of lines that came from command-line arguments.
const CommandLine = "command line"

// ErrSyntax is wrapped by errors about torrc syntax (bad quoting and the like).
var ErrSyntax = errors.New("syntax error")

// Lex splits torrc text into lines, following C tor's rules
// (parse_config_line_from_str_verbose):
//
//   - a line is "Key Value"; the key ends at the first space, and leading and
//     trailing whitespace of the value are dropped;
//   - '#' starts a comment, except inside a quoted value;
//   - a backslash right before a newline continues the value on the next
//     line; once a value is continued, a '#' comment is dropped together
//     with its newline, so the next line joins the value (C tor quirk);
//   - a value that starts with '"' is a C string with the escapes
//     \n \r \t \" \\ \' \xHH and \ooo (octal), and must end on its line;
//   - a key starting with '+' appends, a key "/Key" clears (see Command).
//
// %include lines are returned as ordinary lines with Key "%include"; Load
// expands them.
func Lex(data []byte, file string) ([]Line, error) {
	s := string(data)
	var out []Line
	i, lineNo := 0, 1
	// advance moves i to j, counting newlines passed.
	advance := func(j int) {
		lineNo += strings.Count(s[i:j], "\n")
		i = j
	}
	for {
		// Skip whitespace and comment lines before the key.
		for i < len(s) {
			if isSpace(s[i]) {
				advance(i + 1)
			} else if s[i] == '#' {
				advance(lineEnd(s, i))
			} else {
				break
			}
		}
		if i >= len(s) {
			return out, nil
		}
		keyLine := lineNo
		start := i
		for i < len(s) && !isSpace(s[i]) && s[i] != '#' && !(s[i] == '\\' && i+1 < len(s) && s[i+1] == '\n') {
			i++
		}
		key := s[start:i]
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var value string
		if i < len(s) && s[i] == '"' {
			v, n, err := unquote(s[i:])
			if err != nil {
				return nil, &Error{File: file, Line: keyLine, Option: key, Err: err}
			}
			value = v
			j := i + n
			for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r') {
				j++
			}
			if j < len(s) && s[j] != '#' && s[j] != '\n' {
				return nil, &Error{File: file, Line: keyLine, Option: key,
					Err: syntaxErr(errors.New("excess data after quoted string"))}
			}
			advance(lineEnd(s, j))
		} else {
			var b strings.Builder
			j, continued := i, false
			for j < len(s) && s[j] != '\n' {
				switch {
				case s[j] == '\\' && j+1 < len(s) && s[j+1] == '\n':
					continued = true
					j += 2
				case s[j] == '#' && !continued:
					j = lineEnd(s, j) // the comment ends the value
				case s[j] == '#':
					// Inside a continued value, C tor drops a comment
					// together with its newline, so the next line joins
					// the value.
					j = lineEnd(s, j)
					if j < len(s) {
						j++
					}
				default:
					b.WriteByte(s[j])
					j++
				}
			}
			value = strings.TrimRight(b.String(), " \t\r\n\v\f")
			advance(j)
		}
		l := Line{Value: value, File: file, Line: keyLine}
		if l.Key, l.Command = cutCommand(key); l.Command == Clear {
			l.Value = ""
		}
		out = append(out, l)
	}
}

// cutCommand splits the "+" or "/" prefix off a key, as the line's Command.
func cutCommand(key string) (string, Command) {
	switch {
	case strings.HasPrefix(key, "+"):
		return key[1:], Append
	case strings.HasPrefix(key, "/"):
		return key[1:], Clear
	}
	return key, Set
}

// lineEnd returns the index of the newline ending the line containing i, or
// len(s).
func lineEnd(s string, i int) int {
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		return i + j
	}
	return len(s)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// unquote decodes the C string at the start of s (which begins with '"') as
// C tor's unescape_string does, and returns it with the number of bytes
// consumed, closing quote included. Errors wrap ErrSyntax.
func unquote(s string) (string, int, error) {
	v, n, err := cstring.Unquote(s)
	if err != nil {
		return "", 0, syntaxErr(err)
	}
	return v, n, nil
}

// syntaxErr returns err as a syntax error: "syntax error: err", wrapping
// both.
func syntaxErr(err error) error {
	return errfmt.Errorf("%w: %w", ErrSyntax, err)
}
