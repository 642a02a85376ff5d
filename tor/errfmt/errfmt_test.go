package errfmt

import (
	"errors"
	"io/fs"
	"testing"
)

func TestErrorfIsFmtErrorf(t *testing.T) {
	err := Errorf("opening %q at line %d: %w", "torrc", 3, fs.ErrNotExist)
	if got, want := err.Error(), `opening "torrc" at line 3: file does not exist`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("%w operand not wrapped")
	}
	two := Errorf("%w and %w", fs.ErrExist, fs.ErrPermission)
	if !errors.Is(two, fs.ErrExist) || !errors.Is(two, fs.ErrPermission) {
		t.Error("two %w operands not both wrapped")
	}
	if err := Errorf("no verbs"); err.Error() != "no verbs" || errors.Unwrap(err) != nil {
		t.Errorf("constant message: %q, unwraps to %v", err, errors.Unwrap(err))
	}
}
