// Package errfmt formats errors for the whole binary from one place.
//
// Since Go 1.26 fmt.Errorf is inlinable: every call site carries its own
// copy of the no-arguments fast path (an errors.New), about 100 bytes of
// mips code plus tables per site. tinytor had about 900 such sites, whose
// copies cost about 80 KB of a stripped mipsle binary, which router flash
// cannot spare. Errorf here is fmt.Errorf compiled once.
package errfmt

import "fmt"

// Errorf is fmt.Errorf: it formats according to format and returns the
// result as an error, wrapping the operands of %w verbs.
//
//go:noinline
func Errorf(format string, a ...any) error {
	return fmt.Errorf(format, a...)
}
