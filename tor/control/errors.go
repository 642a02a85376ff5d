package control

import (
	"errors"
	"fmt"
	"strings"
)

// Reply status codes used by the control protocol (control-spec section 4).
const (
	CodeOK                  = 250
	CodeUnnecessary         = 251
	CodeResourceExhausted   = 451
	CodeSyntaxProtocol      = 500
	CodeUnrecognizedCommand = 510
	CodeUnimplemented       = 511
	CodeSyntaxArgs          = 512
	CodeUnrecognizedArg     = 513
	CodeAuthRequired        = 514
	CodeBadAuth             = 515
	CodeUnspecified         = 550
	CodeInternal            = 551
	CodeUnrecognizedEntity  = 552
	CodeInvalidConfig       = 553
	CodeInvalidDescriptor   = 554
	CodeUnmanagedEntity     = 555
	CodeAsync               = 650
)

// Error is a control-protocol error: it carries the reply code and the text
// the server sends for it. Backends return an *Error when they want a
// specific reply; any other error is reported as "551 <text>".
type Error struct {
	Code int
	Msg  string
}

// Error returns the reply line without CRLF, e.g. "552 Unrecognized key".
func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Msg) }

// Errorf returns an *Error with the given code and formatted text.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ErrorWith returns an *Error whose text is msg, a space and value as a
// QuotedString, the way C tor's replies name a refused argument.
func ErrorWith(code int, msg, value string) *Error {
	// A Builder rather than a concatenation: the body is then too big to
	// be inlined into its many callers, which keeps them small.
	q := QuoteString(value)
	var b strings.Builder
	b.Grow(len(msg) + 1 + len(q))
	b.WriteString(msg)
	b.WriteByte(' ')
	b.WriteString(q)
	return &Error{code, b.String()}
}

// WrapError returns an *Error whose text is msg followed by err's text,
// kept on one line.
func WrapError(code int, msg string, err error) *Error {
	return &Error{code, oneLine(msg + err.Error())}
}

// argsError is the 512 reply to bad arguments of command keyword.
func argsError(keyword, why string) *Error {
	return &Error{CodeSyntaxArgs, "Bad arguments to " + keyword + ": " + why}
}

// ErrNotFound is returned (possibly wrapped) by a Backend when a key,
// circuit, stream or onion service does not exist. The server turns it into
// the command's C tor 552 reply (`552 Unrecognized key "x"`, ...).
var ErrNotFound = errors.New("not found")

// asError converts err into the reply to send: an *Error anywhere in the
// chain keeps its code; ErrNotFound becomes 552 with notFound as text;
// anything else becomes 551 with the error text.
func asError(err error, notFound string) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	if errors.Is(err, ErrNotFound) {
		return &Error{Code: CodeUnrecognizedEntity, Msg: notFound}
	}
	return &Error{Code: CodeInternal, Msg: oneLine(err.Error())}
}

// oneLine makes s safe to put on a single reply line.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return string(b)
}
