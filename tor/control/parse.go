package control

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

	"tinytor/tor/cstring"
	"tinytor/tor/errfmt"
)

// Default input limits. The spec sets no limit on line length; C tor caps
// a command at 1 MiB. A router has little memory, so the defaults are lower
// and configurable.
const (
	DefaultMaxLine = 64 << 10
	DefaultMaxData = 1 << 20
)

// Command is one command received from a controller.
type Command struct {
	// Keyword is the command name in upper case ("GETINFO").
	Keyword string
	// Args is the raw text after the keyword and its separating space,
	// without the line ending.
	Args string
	// Multiline is true for the "+KEYWORD ... CRLF data CRLF . CRLF" form.
	Multiline bool
	// Data is the dot-unstuffed body of a multi-line command, each line
	// ended by "\n". It is nil for single-line commands.
	Data []byte
}

// Reader reads controller commands from a stream, enforcing size limits.
type Reader struct {
	br      *bufio.Reader
	maxLine int
	maxData int
	buf     []byte
}

// NewReader returns a Reader on r. maxLine bounds one line (including its
// line ending) and maxData the body of a multi-line command; values <= 0
// select DefaultMaxLine and DefaultMaxData.
func NewReader(r io.Reader, maxLine, maxData int) *Reader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	if maxData <= 0 {
		maxData = DefaultMaxData
	}
	return &Reader{br: bufio.NewReaderSize(r, 4096), maxLine: maxLine, maxData: maxData}
}

// errLineTooLong is the reply to an over-long line; the connection is then
// closed, as C tor does.
var errLineTooLong = &Error{Code: CodeSyntaxProtocol, Msg: "Line too long."}

// readLine returns the next line without its CRLF or LF. io.EOF means a
// clean end of input before any byte of a new line; a partial last line is
// io.ErrUnexpectedEOF.
func (r *Reader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.buf)+len(chunk) > r.maxLine {
			return nil, errLineTooLong
		}
		r.buf = append(r.buf, chunk...)
		switch {
		case err == nil:
			line := r.buf[:len(r.buf)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(r.buf) == 0 {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// ReadCommand reads one command. Protocol violations are returned as *Error
// (500 for an over-long line or body); I/O errors are returned as they are,
// with io.EOF for a clean end of input.
func (r *Reader) ReadCommand() (*Command, error) {
	line, err := r.readLine()
	if err != nil {
		return nil, err
	}
	cmd := &Command{}
	if len(line) > 0 && line[0] == '+' {
		cmd.Multiline = true
		line = line[1:]
	}
	kw, args, _ := bytes.Cut(line, []byte{' '})
	cmd.Keyword = strings.ToUpper(string(kw))
	cmd.Args = string(args)
	if !cmd.Multiline {
		return cmd, nil
	}
	var data []byte
	for {
		l, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if err == errLineTooLong {
				return nil, err
			}
			return nil, errfmt.Errorf("reading body of %s: %w", cmd.Keyword, err)
		}
		if len(l) == 1 && l[0] == '.' {
			break
		}
		if len(l) > 0 && l[0] == '.' {
			l = l[1:] // dot-unstuffing (RFC 2821 4.5.2)
		}
		if len(data)+len(l)+1 > r.maxData {
			return nil, &Error{Code: CodeSyntaxProtocol, Msg: "Command body too long."}
		}
		data = append(data, l...)
		data = append(data, '\n')
	}
	if data == nil {
		data = []byte{}
	}
	cmd.Data = data
	return cmd, nil
}

// ParseCommand parses exactly one command from b (which must hold the
// complete command including its final line ending) with the default
// limits.
func ParseCommand(b []byte) (*Command, error) {
	r := NewReader(bytes.NewReader(b), 0, 0)
	cmd, err := r.ReadCommand()
	if err != nil {
		return nil, err
	}
	if _, err := r.br.Peek(1); err == nil {
		return nil, &Error{Code: CodeSyntaxProtocol, Msg: "Trailing data after command."}
	}
	return cmd, nil
}

// Arg is one argument of a command line: either positional (HasKey false,
// the value in Value) or Key=Value. Quoted reports that the value was a
// QuotedString (and has been unescaped).
type Arg struct {
	Key    string
	Value  string
	HasKey bool
	Quoted bool
}

// ParseArgs splits a command's argument text into arguments separated by
// spaces. An argument is a bare word, a QuotedString, Key=word or
// Key=QuotedString. QuotedStrings take C escapes (\n \t \r \\ \" \' \xHH
// and octal \ooo); any other escaped character stands for itself.
func ParseArgs(s string) ([]Arg, error) { return parseArgs(s, 0) }

// ParsePositionalArgs is ParseArgs where the first npos arguments are
// positional even if they contain '=' (as C tor's command syntax tables
// do: "ADD_ONION ED25519-V3:<base64>=" is a key, not Key=Value).
func ParsePositionalArgs(s string, npos int) ([]Arg, error) { return parseArgs(s, npos) }

func parseArgs(s string, npos int) ([]Arg, error) {
	var out []Arg
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		var a Arg
		if s[i] != '"' && len(out) >= npos {
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '=' && s[j] != '"' {
				j++
			}
			if j < len(s) && s[j] == '=' {
				a.Key, a.HasKey = s[i:j], true
				if j == i {
					return nil, argError("empty key before '='", i)
				}
				i = j + 1
			}
		}
		if i < len(s) && s[i] == '"' {
			v, n, err := unquote(s[i:])
			if err != nil {
				return nil, errfmt.Errorf("argument at byte %d: %w", i, err)
			}
			a.Value, a.Quoted = v, true
			i += n
			if i < len(s) && s[i] != ' ' && s[i] != '\t' {
				return nil, argError("no space after quoted string", i)
			}
		} else {
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' {
				if s[j] == '"' && len(out) >= npos {
					return nil, argError("unexpected quote inside word", j)
				}
				j++
			}
			a.Value = s[i:j]
			i = j
		}
		out = append(out, a)
	}
}

// argError reports a syntax error in arguments at byte pos.
func argError(msg string, pos int) error {
	return errors.New(msg + " at byte " + strconv.Itoa(pos))
}

// unquote decodes the QuotedString at the start of s and returns its value
// and the number of bytes consumed. It reads C tor's C-quoted form
// (unescape_string, which C tor's kvline parser uses for quoted values):
// \n, \r, \t, \", \\, \', \xHH and octal escapes, nothing else.
func unquote(s string) (string, int, error) { return cstring.Unquote(s) }

// QuoteString returns s as a QuotedString the way C tor escapes strings
// for controllers: backslash, quote, CR, LF and TAB get C escapes, other
// bytes outside printable ASCII become octal escapes.
func QuoteString(s string) string { return cstring.Quote(s) }
