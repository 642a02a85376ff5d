package config

import (
	"errors"
	"fmt"
)

// Error is a configuration error with the place it was found.
type Error struct {
	File   string // torrc path, CommandLine, or "" when no single place is to blame
	Line   int    // 1-based line; 0 if unknown or on the command line
	Option string // option name as written (canonical case when known)
	Err    error
}

// ErrUnknownOption is wrapped by errors about options tinytor does not know.
var ErrUnknownOption = errors.New("unknown option")

// ErrRelayOption is wrapped by errors about C tor relay-only options.
var ErrRelayOption = errors.New("tinytor is a Tor client only and does not support relay options")

// Error returns "FILE:LINE: Option: problem", or C tor's
// "FILE:LINE: Unknown option 'Foo'".
func (e *Error) Error() string {
	where := ""
	switch {
	case e.File != "" && e.Line > 0:
		where = fmt.Sprintf("%s:%d: ", e.File, e.Line)
	case e.File != "":
		where = e.File + ": "
	}
	if errors.Is(e.Err, ErrUnknownOption) {
		return fmt.Sprintf("%sUnknown option '%s'", where, e.Option)
	}
	if e.Option == "" {
		return where + e.Err.Error()
	}
	return fmt.Sprintf("%s%s: %v", where, e.Option, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// errAt wraps err with the location of l.
func errAt(l Line, option string, err error) *Error {
	return &Error{File: l.File, Line: l.Line, Option: option, Err: err}
}
