package guard

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The persistent format is one line per sampled guard, as C tor writes
// "Guard" lines in its state file (guard-spec appendix A.5; C tor's
// entry_guard_encode_for_state):
//
//	Guard in=default rsa_id=<40 hex> nickname=<name> sampled_on=<time>
//	    sampled_idx=<n> sampled_by=<version> [unlisted_since=<time>]
//	    listed=<0|1> [confirmed_on=<time> confirmed_idx=<n>] [other K=V...]
//
// (all on one line). Times are ISO 8601 in UTC without a space
// (2016-11-29T19:39:31). K=V items this package does not know, such as C
// tor's pb_* path-bias counters, are kept and written back unchanged.
// Lines of other guard selections ("in=bridges", "in=restricted") are kept
// verbatim. Empty lines and lines starting with "#" are ignored.

const (
	// DefaultSelection and BridgeSelection are the "in=" values of the
	// guard selections a Manager can keep (Options.Selection).
	DefaultSelection = "default"
	BridgeSelection  = "bridges"
	// timeLayout is C tor's format_iso_time_nospace.
	timeLayout = "2006-01-02T15:04:05"
	// maxIndex bounds sampled_idx and confirmed_idx values read back.
	maxIndex = 1 << 30
	// maxStateLines bounds how many Guard lines are read back; more are
	// ignored (a sample never holds more than a few dozen).
	maxStateLines = 10000
)

// stateHeader is the first line of an encoded state.
const stateHeader = "# tinytor guard state (guard-spec A.5 Guard lines)"

// formatTime formats t as a state-file date.
func formatTime(t time.Time) string {
	return t.UTC().Format(timeLayout)
}

// parseTime parses a state-file date.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q is not YYYY-MM-DDTHH:MM:SS", s)
	}
	return t, nil
}

// validNickname reports whether s is a legal relay nickname (1 to 19
// ASCII letters and digits).
func validNickname(s string) bool {
	if len(s) == 0 || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// encodeEntry returns e's Guard line (without a newline).
func encodeEntry(e *entry, sel string) string {
	var b strings.Builder
	b.WriteString("Guard in=")
	b.WriteString(sel)
	b.WriteString(" rsa_id=")
	b.WriteString(strings.ToUpper(hex.EncodeToString(e.id[:])))
	if validNickname(e.nickname) {
		b.WriteString(" nickname=")
		b.WriteString(e.nickname)
	}
	b.WriteString(" sampled_on=")
	b.WriteString(formatTime(e.sampledOn))
	fmt.Fprintf(&b, " sampled_idx=%d", e.sampledIdx)
	if e.sampledBy != "" {
		b.WriteString(" sampled_by=")
		b.WriteString(e.sampledBy)
	}
	if !e.listed && !e.unlistedSince.IsZero() {
		b.WriteString(" unlisted_since=")
		b.WriteString(formatTime(e.unlistedSince))
	}
	if e.listed {
		b.WriteString(" listed=1")
	} else {
		b.WriteString(" listed=0")
	}
	if e.confirmedIdx >= 0 {
		b.WriteString(" confirmed_on=")
		b.WriteString(formatTime(e.confirmedOn))
		fmt.Fprintf(&b, " confirmed_idx=%d", e.confirmedIdx)
	}
	for _, kv := range e.extra {
		b.WriteByte(' ')
		b.WriteString(kv)
	}
	return b.String()
}

// encodeState returns the state file content for the sample (in sample
// order) and the foreign lines.
func encodeState(sampled []*entry, foreign []string, sel string) []byte {
	var b bytes.Buffer
	b.WriteString(stateHeader)
	b.WriteByte('\n')
	for _, e := range sampled {
		b.WriteString(encodeEntry(e, sel))
		b.WriteByte('\n')
	}
	for _, l := range foreign {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// LineError says why one line of a guard state was skipped or corrected.
type LineError struct {
	Line int    // 1-based line number
	Item string // the K=V item at fault, or "" for the whole line
	Err  error
}

// Error describes the problem with its line number.
func (e *LineError) Error() string {
	if e.Item == "" {
		return fmt.Sprintf("guard state line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("guard state line %d, item %q: %v", e.Line, e.Item, e.Err)
}

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

// decoded is what parseState read.
type decoded struct {
	sampled []*entry // in sample order, indices renumbered 0..n-1
	foreign []string // Guard lines of other selections, verbatim
}

// parseState reads a guard state. It never fails as a whole: bad lines
// are skipped and bad items corrected, each reported in problems. now is
// used for required dates that are missing or malformed.
func parseState(data []byte, now time.Time, sel string) (d decoded, problems []error) {
	type parsed struct {
		e        *entry
		hasIdx   bool
		fileLine int
	}
	var all []parsed
	seen := map[[20]byte]bool{}
	lines := bytes.Split(data, []byte("\n"))
	for i, raw := range lines {
		lineNo := i + 1
		line := strings.TrimSpace(string(bytes.TrimSuffix(raw, []byte("\r"))))
		if line == "" || line[0] == '#' {
			continue
		}
		if len(all)+len(d.foreign) >= maxStateLines {
			problems = append(problems, &LineError{Line: lineNo, Err: fmt.Errorf("more than %d guard lines; rest ignored", maxStateLines)})
			break
		}
		fields := strings.Fields(line)
		if fields[0] != "Guard" {
			problems = append(problems, &LineError{Line: lineNo, Err: fmt.Errorf("keyword %q is not \"Guard\"", truncate(fields[0]))})
			continue
		}
		e, hasIdx, foreign, probs := parseGuardLine(fields[1:], lineNo, now, sel)
		problems = append(problems, probs...)
		if foreign {
			d.foreign = append(d.foreign, strings.Join(fields, " "))
			continue
		}
		if e == nil {
			continue
		}
		if seen[e.id] {
			problems = append(problems, &LineError{Line: lineNo, Err: fmt.Errorf("guard %X listed twice; later line ignored", e.id)})
			continue
		}
		seen[e.id] = true
		all = append(all, parsed{e: e, hasIdx: hasIdx, fileLine: lineNo})
	}
	// Sample order: by sampled_idx; lines without one come after, in file
	// order.
	sort.SliceStable(all, func(a, b int) bool {
		pa, pb := all[a], all[b]
		if pa.hasIdx != pb.hasIdx {
			return pa.hasIdx
		}
		if pa.hasIdx && pa.e.sampledIdx != pb.e.sampledIdx {
			return pa.e.sampledIdx < pb.e.sampledIdx
		}
		return pa.fileLine < pb.fileLine
	})
	for i, p := range all {
		p.e.sampledIdx = i
		d.sampled = append(d.sampled, p.e)
	}
	// Confirmed order: by confirmed_idx, renumbered 0..n-1 (sample order
	// breaks ties).
	var confirmed []*entry
	for _, e := range d.sampled {
		if e.confirmedIdx >= 0 {
			confirmed = append(confirmed, e)
		}
	}
	sort.SliceStable(confirmed, func(a, b int) bool { return confirmed[a].confirmedIdx < confirmed[b].confirmedIdx })
	for i, e := range confirmed {
		e.confirmedIdx = i
	}
	return d, problems
}

// truncate shortens s for error messages.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// parseGuardLine parses the K=V items of one Guard line. It returns
// foreign=true for a line of another guard selection, and e=nil when the
// line is unusable.
func parseGuardLine(items []string, lineNo int, now time.Time, sel string) (e *entry, hasIdx, foreign bool, problems []error) {
	bad := func(item string, err error) {
		problems = append(problems, &LineError{Line: lineNo, Item: truncate(item), Err: err})
	}
	e = &entry{confirmedIdx: -1, reachable: Maybe}
	var in string
	var haveID, haveSampledOn, haveListed, haveConfirmedOn bool
	known := map[string]bool{}
	for _, item := range items {
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" {
			bad(item, fmt.Errorf("not a K=V item"))
			continue
		}
		switch k {
		case "in", "rsa_id", "nickname", "sampled_on", "sampled_idx", "sampled_by",
			"unlisted_since", "listed", "confirmed_on", "confirmed_idx":
			if known[k] {
				bad(item, fmt.Errorf("%s given twice; first kept", k))
				continue
			}
			known[k] = true
		default:
			e.extra = append(e.extra, item)
			continue
		}
		switch k {
		case "in":
			in = v
		case "rsa_id":
			if len(v) != 40 {
				bad(item, fmt.Errorf("rsa_id has %d characters, want 40 hex digits", len(v)))
				continue
			}
			if _, err := hex.Decode(e.id[:], []byte(v)); err != nil {
				bad(item, fmt.Errorf("rsa_id is not hex: %w", err))
				continue
			}
			haveID = true
		case "nickname":
			if !validNickname(v) {
				bad(item, fmt.Errorf("nickname is not 1-19 letters and digits; dropped"))
				continue
			}
			e.nickname = v
		case "sampled_on":
			t, err := parseTime(v)
			if err != nil {
				bad(item, err)
				continue
			}
			e.sampledOn, haveSampledOn = t, true
		case "sampled_idx":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxIndex {
				bad(item, fmt.Errorf("sampled_idx is not an integer in [0, %d]", maxIndex))
				continue
			}
			e.sampledIdx, hasIdx = n, true
		case "sampled_by":
			e.sampledBy = v
		case "unlisted_since":
			t, err := parseTime(v)
			if err != nil {
				bad(item, err)
				continue
			}
			e.unlistedSince = t
		case "listed":
			// As C tor: anything but "0" means listed.
			e.listed, haveListed = v != "0", true
		case "confirmed_on":
			t, err := parseTime(v)
			if err != nil {
				bad(item, err)
				continue
			}
			e.confirmedOn, haveConfirmedOn = t, true
		case "confirmed_idx":
			n, err := strconv.Atoi(v)
			if err != nil || n > maxIndex {
				bad(item, fmt.Errorf("confirmed_idx is not an integer up to %d", maxIndex))
				continue
			}
			if n >= 0 {
				e.confirmedIdx = n
			}
		}
	}
	if in == "" {
		problems = append(problems, &LineError{Line: lineNo, Err: fmt.Errorf("no in= item; line skipped")})
		return nil, false, false, problems
	}
	if in != sel {
		return nil, false, true, problems
	}
	if !haveID {
		problems = append(problems, &LineError{Line: lineNo, Err: fmt.Errorf("no valid rsa_id; line skipped")})
		return nil, false, false, problems
	}
	if !haveSampledOn {
		problems = append(problems, &LineError{Line: lineNo, Err: fmt.Errorf("no valid sampled_on; using the current time")})
		e.sampledOn = now.Truncate(time.Second)
	}
	if !haveListed {
		problems = append(problems, &LineError{Line: lineNo, Err: fmt.Errorf("no listed item; assuming unlisted")})
	}
	if e.listed {
		e.unlistedSince = time.Time{}
	} else if e.unlistedSince.IsZero() {
		e.unlistedSince = now.Truncate(time.Second)
	}
	if e.confirmedIdx >= 0 && !haveConfirmedOn {
		problems = append(problems, &LineError{Line: lineNo, Err: fmt.Errorf("confirmed_idx without a valid confirmed_on; using the current time")})
		e.confirmedOn = now.Truncate(time.Second)
	}
	if e.confirmedIdx < 0 {
		e.confirmedOn = time.Time{}
	}
	return e, hasIdx, false, problems
}
