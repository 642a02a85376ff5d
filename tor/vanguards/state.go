package vanguards

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"tinytor/tor/errfmt"
)

// The persistent format is one line per layer-2 guard, in the K=V style
// of the guard state's Guard lines (C tor writes no such lines: it keeps
// the set in memory):
//
//	Layer2Guard rsa_id=<40 hex> expires=<time>
//
// Times are ISO 8601 in UTC without a space (2026-12-03T16:23:03). Unknown
// K=V items are ignored; empty lines and lines starting with "#" too.

const (
	stateHeader = "# tinytor layer-2 guards (vanguards-lite, proposal 333)"
	keyword     = "Layer2Guard"
	timeLayout  = "2006-01-02T15:04:05"
	// maxStateGuards bounds the lines read back: a set never holds more
	// than MaxNumber.
	maxStateGuards = MaxNumber
)

// encodeState returns the state content for guards, in order.
func encodeState(guards []l2) []byte {
	b := append([]byte(stateHeader), '\n')
	for _, g := range guards {
		b = append(b, keyword+" rsa_id="+strings.ToUpper(hex.EncodeToString(g.id[:]))+
			" expires="+g.expires.UTC().Format(timeLayout)+"\n"...)
	}
	return b
}

// LineError says why one line of the state was skipped.
type LineError struct {
	Line int // 1-based line number
	Err  error
}

func (e *LineError) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *LineError) Unwrap() error { return e.Err }

// Errors of whole lines.
var (
	errMissing   = errors.New("rsa_id or expires missing")
	errTooMany   = errfmt.Errorf("more than %d layer-2 guards", maxStateGuards)
	errDuplicate = errors.New("duplicate layer-2 guard")
)

// parseState reads a state: the guards in order (duplicates and lines past
// maxStateGuards dropped) and a LineError for each line skipped.
func parseState(data []byte) (guards []l2, problems []error) {
	seen := map[[20]byte]bool{}
	for i, raw := range bytes.Split(data, []byte("\n")) {
		line := strings.TrimSpace(string(raw))
		if line == "" || line[0] == '#' {
			continue
		}
		g, err := parseLine(line)
		if err == nil && seen[g.id] {
			err = errfmt.Errorf("%w %X", errDuplicate, g.id)
		}
		if err == nil && len(guards) >= maxStateGuards {
			err = errTooMany
		}
		if err != nil {
			problems = append(problems, &LineError{Line: i + 1, Err: err})
			continue
		}
		seen[g.id] = true
		guards = append(guards, g)
	}
	return guards, problems
}

// parseLine reads one Layer2Guard line.
func parseLine(line string) (l2, error) {
	var g l2
	fields := strings.Fields(line)
	what, value, why := "unknown keyword", fields[0], ""
	if fields[0] != keyword {
		why = "in place of " + keyword
	}
	var haveID, haveExp bool
	for _, kv := range fields[1:] {
		if why != "" {
			break
		}
		k, v, ok := strings.Cut(kv, "=")
		what, value = k, v
		switch {
		case !ok:
			what, value, why = "item", kv, "is not K=V"
		case k == "rsa_id":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != len(g.id) {
				why = "is not 40 hex digits"
			}
			copy(g.id[:], b)
			haveID = true
		case k == "expires":
			var err error
			if g.expires, err = time.Parse(timeLayout, v); err != nil {
				why = "is not YYYY-MM-DDTHH:MM:SS"
			}
			haveExp = true
		}
	}
	if why != "" {
		return g, errors.New(what + " " + strconv.Quote(truncate(value)) + " " + why)
	}
	if !haveID || !haveExp {
		return g, errMissing
	}
	return g, nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
