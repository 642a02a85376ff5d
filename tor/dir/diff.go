package dir

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
)

// Consensus diffs (dir-spec 4.5 and appendix E, proposal 140).
//
// A client that holds a consensus asks a cache for the current one with
// the header "X-Or-Diff-From-Consensus: <hex>", where <hex> is
// DigestAsSigned of the consensus held. The cache answers with the full
// consensus or with a diff:
//
//	network-status-diff-version 1
//	hash <FromDigest> <ToDigest>
//	<ed commands>
//
// FromDigest is the SHA3-256 of the signed part of the base consensus
// (C tor's router_get_networkstatus_v3_sha3_as_signed: from
// "network-status-version" through "\ndirectory-signature" and the space
// after it), ToDigest the SHA3-256 of the whole resulting document (C
// tor's consensus_compute_digest). ApplyDiff follows C tor's
// apply_ed_diff (src/feature/dircommon/consdiff.c).

// DiffFromHeader is the request header that offers a cache the digest of
// the consensus held (DigestAsSigned, in hex).
const DiffFromHeader = "X-Or-Diff-From-Consensus"

// Diff format constants (C tor's ns_diff_version and hash_token).
const (
	diffVersionLine = "network-status-diff-version 1"
	diffHashToken   = "hash"
	// maxDiffCommandLen is C tor's limit on an ed command line (its
	// 128-byte buffer, less the NUL).
	maxDiffCommandLen = 127
	// maxDiffLineLen is C tor's CONSENSUS_LINE_MAX_LEN: a longer line in
	// the base or the diff makes the input invalid.
	maxDiffLineLen = 1 << 20
)

var (
	// ErrDiffBaseMismatch is returned (wrapped) when a diff is not from
	// the consensus it is applied to.
	ErrDiffBaseMismatch = errors.New("consensus diff is from another consensus")
	// ErrDiffResultMismatch is returned (wrapped) when the document a
	// diff produced does not have the digest its hash line names.
	ErrDiffResultMismatch = errors.New("consensus diff result has the wrong digest")
)

// DiffError is a malformed consensus diff.
type DiffError struct {
	// Line is the 1-based line of the diff at fault, or 0 if the fault
	// concerns the whole diff.
	Line int
	Err  error
}

func (e *DiffError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("consensus diff: %v", e.Err)
	}
	return fmt.Sprintf("consensus diff line %d: %v", e.Line, e.Err)
}

func (e *DiffError) Unwrap() error { return e.Err }

// diffError returns err as the error of line.
func diffError(line int, err error) error { return &DiffError{Line: line, Err: err} }

func diffErrorf(line int, format string, args ...any) error {
	return &DiffError{Line: line, Err: errfmt.Errorf(format, args...)}
}

// DigestAsSigned returns the SHA3-256 digest of the signed part of a
// consensus document: from the first "network-status-version" at the
// start of a line through the space after the first following
// "\ndirectory-signature". As in C tor, the whole document is hashed if
// that part cannot be found. This digest names the consensus in
// DiffFromHeader and in the "hash" line of a diff.
func DigestAsSigned(doc []byte) [32]byte {
	if start, end, ok := signedBoundaries(doc); ok {
		return sha3.Sum256(doc[start:end])
	}
	return sha3.Sum256(doc)
}

// signedBoundaries is C tor's router_get_networkstatus_v3_signed_boundaries.
func signedBoundaries(doc []byte) (start, end int, ok bool) {
	const first, last = "network-status-version", "\ndirectory-signature"
	start = bytes.Index(doc, []byte(first))
	if start < 0 || (start > 0 && doc[start-1] != '\n') {
		return 0, 0, false
	}
	from := start + len(first)
	i := bytes.Index(doc[from:], []byte(last))
	if i < 0 {
		return 0, 0, false
	}
	from += i + len(last)
	sp := bytes.IndexByte(doc[from:], ' ')
	if sp < 0 {
		return 0, 0, false
	}
	return start, from + sp + 1, true
}

// DiffRequestHeader returns the header that asks a cache for a diff from
// the consensus whose DigestAsSigned is digest (in upper-case hex, as C
// tor's dir_consensus_request_set_additional_headers sends it).
func DiffRequestHeader(digest [32]byte) Header {
	return Header{Name: DiffFromHeader, Value: strings.ToUpper(hex.EncodeToString(digest[:]))}
}

// MatchesDocument reports whether doc has the same signed part as c, that
// is, whether doc is the text c was parsed from (its signatures aside):
// the base a diff from c applies to.
func (c *Consensus) MatchesDocument(doc []byte) bool {
	start, end, ok := signedBoundaries(doc)
	return ok && start == 0 && sha256.Sum256(doc[start:end]) == c.digestSHA256
}

// DocumentDigest returns the SHA3-256 digest of a whole document, the
// ToDigest of a diff that produces it.
func DocumentDigest(doc []byte) [32]byte {
	return sha3.Sum256(doc)
}

// IsDiff reports whether a directory response body is a consensus diff
// rather than a consensus (C tor's looks_like_a_consensus_diff).
func IsDiff(body []byte) bool {
	return bytes.HasPrefix(body, []byte(diffVersionLine))
}

// DiffDigests returns the FromDigest and ToDigest of a diff's header.
func DiffDigests(diff []byte) (from, to [32]byte, err error) {
	_, from, to, err = diffHeader(diff)
	return from, to, err
}

// diffHeader checks the first two lines of a diff and returns the offset
// of the third line and the two digests.
func diffHeader(diff []byte) (rest int, from, to [32]byte, err error) {
	l1, n1, ok := nextLine(diff, 0)
	if !ok {
		return 0, from, to, diffErrorf(1, "no complete first line")
	}
	if string(l1) != diffVersionLine {
		return 0, from, to, diffError(1, netdoc.Reason(nil, "want \""+diffVersionLine+"\", got %q", truncateBytes(l1)))
	}
	l2, n2, ok := nextLine(diff, n1)
	if !ok {
		return 0, from, to, diffErrorf(2, "no complete hash line")
	}
	words := bytes.Split(l2, []byte(" "))
	if len(words) != 3 || string(words[0]) != diffHashToken {
		return 0, from, to, diffError(2, netdoc.Reason(nil, "want \"hash FROM TO\", got %q", truncateBytes(l2)))
	}
	for i, out := range []*[32]byte{&from, &to} {
		w := words[1+i]
		if len(w) != 2*len(out) {
			return 0, from, to, diffError(2, netdoc.Reason(nil, "digest %q is not 64 hex digits", truncateBytes(w)))
		}
		if _, err := hex.Decode(out[:], w); err != nil {
			return 0, from, to, diffError(2, netdoc.Reason(err, "digest %q", truncateBytes(w)))
		}
	}
	return n2, from, to, nil
}

// nextLine returns the line of b starting at off, without its newline,
// and the offset after the newline; ok is false if no newline ends it.
func nextLine(b []byte, off int) (line []byte, next int, ok bool) {
	i := bytes.IndexByte(b[off:], '\n')
	if i < 0 {
		return nil, 0, false
	}
	return b[off : off+i], off + i + 1, true
}

// ApplyDiff applies a consensus diff to base, the text of the consensus
// held, and returns the resulting document. It refuses a diff that is
// not from base (ErrDiffBaseMismatch), that is malformed or whose
// commands break the rules of dir-spec appendix E as C tor's
// apply_ed_diff enforces them (*DiffError), whose result would exceed
// maxSize bytes, or whose result does not have the digest the diff names
// (ErrDiffResultMismatch). The result is a new slice; base and diff are
// not changed. The caller still has to parse and verify the result as
// any downloaded consensus.
//
// Memory: besides the result (at most len(base)+len(diff) bytes, and at
// most maxSize), ApplyDiff allocates nothing that grows with the inputs:
// it checks the commands and measures the result in a first pass, then
// writes the result from its end in a second.
func ApplyDiff(base, diff []byte, maxSize int) ([]byte, error) {
	rest, from, to, err := diffHeader(diff)
	if err != nil {
		return nil, err
	}
	if got := DigestAsSigned(base); got != from {
		return nil, errfmt.Errorf("%w: the diff is from %X, our consensus is %X", ErrDiffBaseMismatch, from, got)
	}
	if len(base) > 0 && base[len(base)-1] != '\n' {
		return nil, netdoc.Message("consensus diff: the base consensus does not end with a newline")
	}
	if len(diff) > 0 && diff[len(diff)-1] != '\n' {
		return nil, diffErrorf(bytes.Count(diff, []byte("\n"))+1, "last line does not end with a newline")
	}
	ed := edScript{base: base, diff: diff, start: rest}
	size, err := ed.run(nil)
	if err != nil {
		return nil, err
	}
	if size > maxSize {
		return nil, diffErrorf(0, "the result would have %d bytes, more than the limit of %d", size, maxSize)
	}
	out := make([]byte, size)
	if _, err := ed.run(out); err != nil {
		return nil, err // cannot happen: the first pass checked the same input
	}
	if got := DocumentDigest(out); got != to {
		return nil, errfmt.Errorf("%w: want %X, got %X", ErrDiffResultMismatch, to, got)
	}
	return out, nil
}

// edScript is the ed part of a diff applied to a base document.
type edScript struct {
	base  []byte
	diff  []byte
	start int // offset in diff of the first command
}

// run executes the script. With out == nil it only checks the commands
// and returns the size of the result; otherwise it writes the result,
// which must have exactly that size, into out from its end.
//
// As C tor's apply_ed_diff, commands come in decreasing line order and
// refer to lines of the base: j counts the base lines not yet passed
// (lines 1..j), and each command must end at or before line j. Going
// backwards, the base lines after a command's range are copied, its range
// is dropped ('c', 'd') and its block inserted ('a', 'c').
func (e *edScript) run(out []byte) (int, error) {
	base, diff := e.base, e.diff
	total := bytes.Count(base, []byte("\n"))
	j := total           // base lines not yet passed
	baseEnd := len(base) // offset just after line j
	size := 0            // bytes of result produced
	pos := len(out)      // where the next bytes go before
	emit := func(b []byte) {
		size += len(b)
		if out != nil {
			pos -= len(b)
			copy(out[pos:], b)
		}
	}
	// lineEnd returns the offset just after base line n (the start of
	// line n+1), searching back from baseEnd, which ends line j >= n.
	lineEnd := func(n int) int {
		off := baseEnd
		for k := j; k > n; k-- {
			off = bytes.LastIndexByte(base[:off-1], '\n') + 1
		}
		return off
	}
	sigLine := firstSignatureLine(base)
	lineNo := 2 // diff lines read so far
	first := true
	for off := e.start; off < len(diff); {
		cmd, next, _ := nextLine(diff, off) // ApplyDiff checked the final newline
		lineNo++
		cmdLine := lineNo
		off = next
		c, err := parseEdCommand(cmd, j, total)
		if err != nil {
			return 0, &DiffError{Line: cmdLine, Err: err}
		}
		if first && sigLine > 0 && !(c.op == 'd' && c.toEOF && c.start <= sigLine) {
			return 0, diffErrorf(cmdLine, "the base has directory signatures from line %d, so the first command must be \"N,$d\" deleting them (dir-spec appendix E), not %q", sigLine, truncate(string(cmd)))
		}
		first = false
		// Copy the base lines after the command's range.
		keep := lineEnd(c.end)
		emit(base[keep:baseEnd])
		baseEnd, j = keep, c.end
		if c.op == 'c' || c.op == 'd' {
			baseEnd = lineEnd(c.start - 1)
			j = c.start - 1
		}
		if c.op == 'a' || c.op == 'c' {
			blockStart := off
			n := 0
			for {
				if off >= len(diff) {
					return 0, diffErrorf(cmdLine, "the block of %q runs to the end of the diff: it does not end with a \".\" line", truncate(string(cmd)))
				}
				l, next, _ := nextLine(diff, off)
				lineNo++
				if len(l) > maxDiffLineLen {
					return 0, diffErrorf(lineNo, "line longer than %d bytes", maxDiffLineLen)
				}
				if string(l) == "." {
					break
				}
				off = next
				n++
			}
			if n == 0 {
				return 0, diffErrorf(cmdLine, "command %q inserts no lines", truncate(string(cmd)))
			}
			emit(diff[blockStart:off])
			off += len(".\n")
		}
	}
	if first && sigLine > 0 {
		return 0, diffErrorf(0, "the base has directory signatures from line %d, but the diff has no command deleting them (dir-spec appendix E)", sigLine)
	}
	emit(base[:baseEnd])
	if out != nil && pos != 0 {
		return 0, errfmt.Errorf("consensus diff: internal error: result size changed between passes (%d bytes left)", pos)
	}
	return size, nil
}

// firstSignatureLine returns the 1-based number of the first base line
// that starts with "directory-signature " (C tor's
// START_OF_SIGNATURES_SECTION), or 0.
func firstSignatureLine(base []byte) int {
	const sig = "directory-signature "
	i := 0
	if !bytes.HasPrefix(base, []byte(sig)) {
		i = bytes.Index(base, []byte("\n"+sig))
		if i < 0 {
			return 0
		}
		i++
	}
	return bytes.Count(base[:i], []byte("\n")) + 1
}

// edCommand is one parsed ed command: lines start..end of the base
// ('d', 'c'), or after line start ('a', with end == start).
type edCommand struct {
	start, end int
	op         byte
	toEOF      bool // the range ended with "$"
}

// edError is the error of the malformed ed command cmd: "ed command
// "CMD"" and what.
func edError(cmd []byte, what string) error {
	return errors.New("ed command " + strconv.Quote(truncate(string(cmd))) + what)
}

// parseEdCommand parses "N", "N,M" or "N,$" followed by 'a', 'c' or 'd',
// with the rules of C tor's apply_ed_diff; j is the last base line a
// command may still refer to (commands go in decreasing order) and total
// the number of base lines ("$").
func parseEdCommand(cmd []byte, j, total int) (edCommand, error) {
	var c edCommand
	if len(cmd) > maxDiffCommandLen {
		return c, errfmt.Errorf("ed command longer than %d bytes", maxDiffCommandLen)
	}
	s := string(cmd)
	num := func() (int, bool) {
		k := 0
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(s[:k], 10, 32)
		if err != nil {
			return 0, false
		}
		s = s[k:]
		return int(n), true
	}
	var ok bool
	if c.start, ok = num(); !ok {
		return c, edError(cmd, " does not start with a line number")
	}
	c.end = c.start
	hadRange := false
	if len(s) > 0 && s[0] == ',' {
		hadRange = true
		s = s[1:]
		if len(s) > 0 && s[0] == '$' {
			c.toEOF, c.end = true, total
			s = s[1:]
		} else if c.end, ok = num(); !ok {
			return c, edError(cmd, " lacks the end of its range")
		}
		if c.end <= c.start {
			return c, edError(cmd, " has an empty or reversed range")
		}
	}
	if len(s) != 1 {
		return c, edError(cmd, " does not end with one command letter")
	}
	c.op = s[0]
	switch c.op {
	case 'a', 'c', 'd':
	default:
		return c, edError(cmd, ": unknown command "+strconv.QuoteRune(rune(c.op))+" (only a, c and d are allowed)")
	}
	if c.toEOF && c.op != 'd' {
		return c, edError(cmd, " uses $ with a command other than d")
	}
	if hadRange && c.op == 'a' {
		return c, edError(cmd, " appends after a range")
	}
	if c.start == 0 && c.op != 'a' {
		return c, edError(cmd, " names line 0 (lines count from 1)")
	}
	if c.end > j {
		return c, errfmt.Errorf("ed command %q refers to line %d, but only lines 1-%d of the base (%d lines) remain: commands must go in decreasing line order within the base",
			truncate(string(cmd)), c.end, j, total)
	}
	return c, nil
}
