package vanguards

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
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
	var b bytes.Buffer
	b.WriteString(stateHeader)
	b.WriteByte('\n')
	for _, g := range guards {
		fmt.Fprintf(&b, "%s rsa_id=%s expires=%s\n", keyword,
			strings.ToUpper(hex.EncodeToString(g.id[:])), g.expires.UTC().Format(timeLayout))
	}
	return b.Bytes()
}

// LineError says why one line of the state was skipped.
type LineError struct {
	Line int // 1-based line number
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the cause.
func (e *LineError) Unwrap() error { return e.Err }

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
			err = fmt.Errorf("duplicate layer-2 guard %X", g.id)
		}
		if err == nil && len(guards) >= maxStateGuards {
			err = fmt.Errorf("more than %d layer-2 guards", maxStateGuards)
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
	if fields[0] != keyword {
		return g, fmt.Errorf("unknown keyword %q", truncate(fields[0]))
	}
	var haveID, haveExp bool
	for _, kv := range fields[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return g, fmt.Errorf("item %q is not K=V", truncate(kv))
		}
		switch k {
		case "rsa_id":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != len(g.id) {
				return g, fmt.Errorf("rsa_id %q is not 40 hex digits", truncate(v))
			}
			copy(g.id[:], b)
			haveID = true
		case "expires":
			t, err := time.Parse(timeLayout, v)
			if err != nil {
				return g, fmt.Errorf("expires %q is not YYYY-MM-DDTHH:MM:SS", truncate(v))
			}
			g.expires = t
			haveExp = true
		}
	}
	if !haveID || !haveExp {
		return g, errors.New("rsa_id or expires missing")
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
