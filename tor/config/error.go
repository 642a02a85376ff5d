package config

import (
	"errors"
	"strconv"
	"strings"
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
	s := where(e.File, e.Line)
	switch {
	case errors.Is(e.Err, ErrUnknownOption):
		return s + "Unknown option '" + e.Option + "'"
	case e.Option != "":
		s += e.Option + ": "
	}
	return s + e.Err.Error()
}

// where returns "FILE:LINE: ", "FILE: " or "".
func where(file string, line int) string {
	switch {
	case file == "":
		return ""
	case line > 0:
		return file + ":" + strconv.Itoa(line) + ": "
	}
	return file + ": "
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// errAt wraps err with the location of l, unless err is an *Error
// already (as one from an included file), which tells its own.
func errAt(l Line, option string, err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	return &Error{File: l.File, Line: l.Line, Option: option, Err: err}
}

// badValue returns the error msg says about value: msg with its %q
// replaced by value, quoted as by strconv.Quote.
func badValue(msg, value string) error { return wrapErr(msg, value, nil) }

// wrapErr is badValue with a cause: err follows msg after a colon, and
// errors.Is and errors.As find it. msg may lack the %q (value is then
// unused). Each site is one plain call, not fmt.Errorf's argument list.
func wrapErr(msg, value string, err error) error {
	if before, after, ok := strings.Cut(msg, "%q"); ok {
		msg = before + strconv.Quote(value) + after
	}
	return &valueError{msg: msg, err: err}
}

// valueError is the error of badValue and wrapErr.
type valueError struct {
	msg string
	err error // the cause, or nil
}

func (e *valueError) Error() string {
	if e.err == nil {
		return e.msg
	}
	return e.msg + ": " + e.err.Error()
}

// Unwrap returns the cause.
func (e *valueError) Unwrap() error { return e.err }
