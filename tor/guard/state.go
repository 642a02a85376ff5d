package guard

import (
	"bytes"
	"encoding/hex"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"tinytor/tor/errfmt"
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
		return time.Time{}, errors.New("date " + strconv.Quote(s) + " is not YYYY-MM-DDTHH:MM:SS")
	}
	return t, nil
}

// idHex returns id in upper-case hex, as C tor writes it.
func idHex(id *[20]byte) string {
	return strings.ToUpper(hex.EncodeToString(id[:]))
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

// The K=V items of a Guard line this package reads, as indexes into
// guardKeys (in the order C tor writes them).
const (
	keyIn = iota
	keyRSAID
	keyNickname
	keySampledOn
	keySampledIdx
	keySampledBy
	keyUnlistedSince
	keyListed
	keyConfirmedOn
	keyConfirmedIdx
	numKeys
)

// guardKeys are the keys of the known items.
var guardKeys = [numKeys]string{"in", "rsa_id", "nickname", "sampled_on", "sampled_idx", "sampled_by",
	"unlisted_since", "listed", "confirmed_on", "confirmed_idx"}

// keyIndex returns the index of k in guardKeys, or -1 for an unknown key.
func keyIndex(k string) int {
	for i, g := range guardKeys {
		if g == k {
			return i
		}
	}
	return -1
}

// encodeEntry returns e's Guard line (without a newline).
func encodeEntry(e *entry, sel string) string {
	// The values of the known items; empty ones are not written.
	var v [numKeys]string
	v[keyIn] = sel
	v[keyRSAID] = idHex(&e.id)
	if validNickname(e.nickname) {
		v[keyNickname] = e.nickname
	}
	v[keySampledOn] = formatTime(e.sampledOn)
	v[keySampledIdx] = strconv.Itoa(e.sampledIdx)
	v[keySampledBy] = e.sampledBy
	v[keyListed] = "1"
	if !e.listed {
		v[keyListed] = "0"
		if !e.unlistedSince.IsZero() {
			v[keyUnlistedSince] = formatTime(e.unlistedSince)
		}
	}
	if e.confirmedIdx >= 0 {
		v[keyConfirmedOn] = formatTime(e.confirmedOn)
		v[keyConfirmedIdx] = strconv.Itoa(e.confirmedIdx)
	}
	b := append(make([]byte, 0, 256), "Guard"...)
	for k, val := range v {
		if val != "" {
			b = append(b, ' ')
			b = append(b, guardKeys[k]...)
			b = append(b, '=')
			b = append(b, val...)
		}
	}
	for _, kv := range e.extra {
		b = append(b, ' ')
		b = append(b, kv...)
	}
	return string(b)
}

// encodeState returns the state file content for the sample (in sample
// order) and the foreign lines.
func encodeState(sampled []*entry, foreign []string, sel string) []byte {
	b := append([]byte(stateHeader), '\n')
	for _, e := range sampled {
		b = append(b, encodeEntry(e, sel)...)
		b = append(b, '\n')
	}
	for _, l := range foreign {
		b = append(b, l...)
		b = append(b, '\n')
	}
	return b
}

// LineError says why one line of a guard state was skipped or corrected.
type LineError struct {
	Line int    // 1-based line number
	Item string // the K=V item at fault, or "" for the whole line
	Err  error
}

// Error describes the problem with its line number (and the item, cut
// short if long).
func (e *LineError) Error() string {
	s := "guard state line " + strconv.Itoa(e.Line)
	if e.Item != "" {
		s += ", item " + strconv.Quote(truncate(e.Item))
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

// problemList collects the problems found in a state.
type problemList []error

// add records a LineError for line and item ("" for the whole line).
func (p *problemList) add(line int, item string, err error) {
	*p = append(*p, &LineError{Line: line, Item: item, Err: err})
}

// decoded is what parseState read.
type decoded struct {
	sampled []*entry // in sample order, indices renumbered 0..n-1
	foreign []string // Guard lines of other selections, verbatim
}

// parseState reads a guard state. It never fails as a whole: bad lines
// are skipped and bad items corrected, each reported in problems. now is
// used for required dates that are missing or malformed.
func parseState(data []byte, now time.Time, sel string) (d decoded, problems problemList) {
	type parsed struct {
		e        *entry
		hasIdx   bool
		fileLine int
	}
	var all []parsed
	seen := map[[20]byte]bool{}
	for i, raw := range bytes.Split(data, []byte("\n")) {
		lineNo := i + 1
		line := strings.TrimSpace(string(bytes.TrimSuffix(raw, []byte("\r"))))
		if line == "" || line[0] == '#' {
			continue
		}
		if len(all)+len(d.foreign) >= maxStateLines {
			problems.add(lineNo, "", errTooManyLines)
			break
		}
		var err error
		fields := strings.Fields(line)
		if fields[0] != "Guard" {
			err = errors.New("keyword " + strconv.Quote(truncate(fields[0])) + ` is not "Guard"`)
		} else {
			e, hasIdx, foreign, probs := parseGuardLine(fields[1:], lineNo, now, sel)
			problems = append(problems, probs...)
			switch {
			case foreign:
				d.foreign = append(d.foreign, strings.Join(fields, " "))
			case e == nil:
			case seen[e.id]:
				err = errors.New("guard " + idHex(&e.id) + " listed twice; later line ignored")
			default:
				seen[e.id] = true
				all = append(all, parsed{e: e, hasIdx: hasIdx, fileLine: lineNo})
			}
		}
		if err != nil {
			problems.add(lineNo, "", err)
		}
	}
	// Sample order: by sampled_idx; lines without one come after, in file
	// order. (The orders here are total: sort.Slice, which other packages
	// link too, gives the same result as a stable sort.)
	sort.Slice(all, func(a, b int) bool {
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
	sort.Slice(confirmed, func(a, b int) bool {
		ca, cb := confirmed[a], confirmed[b]
		if ca.confirmedIdx != cb.confirmedIdx {
			return ca.confirmedIdx < cb.confirmedIdx
		}
		return ca.sampledIdx < cb.sampledIdx
	})
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

// stateError is a constant error about a guard state line.
type stateError string

func (e stateError) Error() string { return string(e) }

// Errors of the items and lines of a guard state.
const (
	errNotKV         stateError = "not a K=V item"
	errNickname      stateError = "nickname is not 1-19 letters and digits; dropped"
	errSampledIdx    stateError = "sampled_idx is not an integer in [0, 1073741824]"
	errConfirmIdx    stateError = "confirmed_idx is not an integer up to 1073741824"
	errNoIn          stateError = "no in= item; line skipped"
	errNoRSAID       stateError = "no valid rsa_id; line skipped"
	errNoSampledOn   stateError = "no valid sampled_on; using the current time"
	errNoListed      stateError = "no listed item; assuming unlisted"
	errNoConfirmedOn stateError = "confirmed_idx without a valid confirmed_on; using the current time"
	errTooManyLines  stateError = "more than 10000 guard lines; rest ignored"
)

// setItem stores the value v of the known item k (a guardKeys index) in
// e, or says why v is not valid.
func (e *entry) setItem(k int, v string) error {
	var err error
	switch k {
	case keyRSAID:
		if len(v) != 40 {
			return errors.New("rsa_id has " + strconv.Itoa(len(v)) + " characters, want 40 hex digits")
		}
		if _, err = hex.Decode(e.id[:], []byte(v)); err != nil {
			return errfmt.Errorf("rsa_id is not hex: %w", err)
		}
	case keyNickname:
		if !validNickname(v) {
			return errNickname
		}
		e.nickname = v
	case keySampledOn:
		e.sampledOn, err = parseTime(v)
	case keyUnlistedSince:
		e.unlistedSince, err = parseTime(v)
	case keyConfirmedOn:
		e.confirmedOn, err = parseTime(v)
	case keySampledIdx:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxIndex {
			return errSampledIdx
		}
		e.sampledIdx = n
	case keyConfirmedIdx:
		n, err := strconv.Atoi(v)
		if err != nil || n > maxIndex {
			return errConfirmIdx
		}
		e.confirmedIdx = max(n, -1)
	case keySampledBy:
		e.sampledBy = v
	case keyListed:
		// As C tor: anything but "0" means listed.
		e.listed = v != "0"
	}
	return err
}

// parseGuardLine parses the K=V items of one Guard line. It returns
// foreign=true for a line of another guard selection, and e=nil when the
// line is unusable.
func parseGuardLine(items []string, lineNo int, now time.Time, sel string) (e *entry, hasIdx, foreign bool, problems problemList) {
	e = &entry{confirmedIdx: -1, reachable: Maybe}
	var in string
	var given, valid [numKeys]bool
	for _, item := range items {
		k, v, ok := strings.Cut(item, "=")
		i := keyIndex(k)
		var err error
		switch {
		case !ok || k == "":
			err = errNotKV
		case i < 0:
			e.extra = append(e.extra, item)
		case given[i]:
			err = errors.New(k + " given twice; first kept")
		default:
			given[i] = true
			if i == keyIn {
				in = v
			} else if err = e.setItem(i, v); err == nil {
				valid[i] = true
			}
		}
		if err != nil {
			problems.add(lineNo, item, err)
		}
	}
	var fixes []error
	switch {
	case in == "":
		fixes, e = append(fixes, errNoIn), nil
	case in != sel:
		return nil, false, true, problems
	case !valid[keyRSAID]:
		fixes, e = append(fixes, errNoRSAID), nil
	default:
		fixes = e.complete(&valid, now.Truncate(time.Second))
	}
	for _, f := range fixes {
		problems.add(lineNo, "", f)
	}
	if e == nil {
		return nil, false, false, problems
	}
	return e, valid[keySampledIdx], false, problems
}

// complete fills in the required items of e missing or invalid in its
// Guard line (valid says which were read) and returns what it corrected.
func (e *entry) complete(valid *[numKeys]bool, now time.Time) (fixes []error) {
	if !valid[keySampledOn] {
		fixes = append(fixes, errNoSampledOn)
		e.sampledOn = now
	}
	if !valid[keyListed] {
		fixes = append(fixes, errNoListed)
	}
	if e.listed {
		e.unlistedSince = time.Time{}
	} else if e.unlistedSince.IsZero() {
		e.unlistedSince = now
	}
	if e.confirmedIdx < 0 {
		e.confirmedOn = time.Time{}
	} else if !valid[keyConfirmedOn] {
		fixes = append(fixes, errNoConfirmedOn)
		e.confirmedOn = now
	}
	return fixes
}
