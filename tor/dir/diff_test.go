package dir

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Documents captured from a private test network (scripts/testnet) on
// 2026-12-03: three consecutive-ish microdesc consensuses from auth1's
// DirPort, the diffs C tor 0.4.9 served for "X-Or-Diff-From-Consensus:
// <DigestAsSigned(base)>" once each newer consensus was current, and the
// network's authority certificates.
var diffAuthorities = [][20]byte{
	mustFP("9D7293ACC56438205F4C429BFF31251F3863D4F6"),
	mustFP("B7D118DD429EF0D87BADAF27B61D6FA2F30FD81B"),
	mustFP("34C2CD53CA59DEC8DAF94FD7540167141D1FB59C"),
}

func TestDigestAsSigned(t *testing.T) {
	base := mustRead(t, "testnet-diff-base")
	// The digest C tor's cache recognised (the hash line of its diff).
	if got, want := fmt.Sprintf("%X", DigestAsSigned(base)), "A8CE01C8FACAA242DC52461A10BB85047A571B439A0DD5051F50127CE394776B"; got != want {
		t.Errorf("DigestAsSigned = %s, want %s", got, want)
	}
	// Only the signed part counts: the signatures may change.
	i := bytes.Index(base, []byte("\ndirectory-signature "))
	changed := append(append([]byte{}, base[:i+len("\ndirectory-signature ")]...), "sha256 X Y\n"...)
	if DigestAsSigned(changed) != DigestAsSigned(base) {
		t.Error("DigestAsSigned depends on the signatures")
	}
	// Without a signed part, the whole document is hashed (as C tor).
	if DigestAsSigned([]byte("hello\n")) != DocumentDigest([]byte("hello\n")) {
		t.Error("DigestAsSigned of a document without a signed part is not its SHA3-256")
	}
}

func TestApplyRealDiffs(t *testing.T) {
	base := mustRead(t, "testnet-diff-base")
	certs, err := ParseAuthCerts(mustRead(t, "testnet-diff-certs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ diff, want string }{
		{"testnet-diff-base-next", "testnet-diff-next"},
		{"testnet-diff-base-later", "testnet-diff-later"},
	} {
		diff, want := mustRead(t, tc.diff), mustRead(t, tc.want)
		if !IsDiff(diff) || IsDiff(want) {
			t.Fatalf("IsDiff wrong on %s or %s", tc.diff, tc.want)
		}
		got, err := ApplyDiff(base, diff, 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", tc.diff, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: result differs from %s", tc.diff, tc.want)
		}
		from, to, err := DiffDigests(diff)
		if err != nil || from != DigestAsSigned(base) || to != DocumentDigest(want) {
			t.Fatalf("DiffDigests = %X, %X, %v", from, to, err)
		}
		cons, err := ParseConsensus(got)
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Verify(certs, diffAuthorities, cons.ValidAfter.Add(time.Second)); err != nil {
			t.Fatalf("%s: result does not verify: %v", tc.diff, err)
		}
		t.Logf("%s: %d bytes of diff for a %d-byte consensus", tc.diff, len(diff), len(got))
	}
}

// makeDiff builds a diff from base with the given ed commands and the
// digest of the document they produce.
func makeDiff(base []byte, commands, result string) []byte {
	return fmt.Appendf(nil, "network-status-diff-version 1\nhash %X %X\n%s", DigestAsSigned(base), DocumentDigest([]byte(result)), commands)
}

// lines returns a document with the given lines.
func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

func TestApplyDiffCommands(t *testing.T) {
	// A base without signatures, so that any first command is allowed.
	base := []byte(lines("one", "two", "three", "four", "five"))
	for _, tc := range []struct{ name, commands, want string }{
		{"append at end", "5a\nsix\nseven\n.\n", lines("one", "two", "three", "four", "five", "six", "seven")},
		{"append at start", "0a\nzero\n.\n", lines("zero", "one", "two", "three", "four", "five")},
		{"delete one", "3d\n", lines("one", "two", "four", "five")},
		{"delete range", "2,4d\n", lines("one", "five")},
		{"delete to end", "2,$d\n", lines("one")},
		{"change", "2,3c\nTWO\n.\n", lines("one", "TWO", "four", "five")},
		{"several", "5c\nFIVE\n.\n3a\nthree and a half\n.\n1d\n", lines("two", "three", "three and a half", "four", "FIVE")},
		{"two appends at one line", "2a\nB\n.\n2a\nA\n.\n", lines("one", "two", "A", "B", "three", "four", "five")},
		{"append after a changed line", "3a\nx\n.\n3c\nTHREE\n.\n", lines("one", "two", "THREE", "x", "four", "five")},
		{"no commands", "", string(base)},
	} {
		got, err := ApplyDiff(base, makeDiff(base, tc.commands, tc.want), 1<<20)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestApplyDiffRefusals(t *testing.T) {
	real := mustRead(t, "testnet-diff-base")
	next := mustRead(t, "testnet-diff-next")
	good := mustRead(t, "testnet-diff-base-next")
	base := []byte(lines("one", "two", "three", "four", "five"))
	header := func(b []byte) string {
		return fmt.Sprintf("network-status-diff-version 1\nhash %X %X\n", DigestAsSigned(b), DocumentDigest(nil))
	}
	cases := []struct {
		name       string
		base, diff []byte
		max        int
		is         error
		line       int    // the DiffError line, if any
		msg        string // a part of the message
	}{
		{name: "other base", base: next, diff: good, is: ErrDiffBaseMismatch, msg: "from A8CE01C8"},
		{name: "bad result hash", base: real,
			diff: bytes.Replace(good, []byte("88E90CDD"), []byte("88E90CDE"), 1), is: ErrDiffResultMismatch, msg: "want 88E90CDE"},
		{name: "changed content", base: real,
			diff: bytes.Replace(good, []byte("Unmeasured=1"), []byte("Unmeasured=0"), 1), is: ErrDiffResultMismatch},
		{name: "not a diff", base: base, diff: []byte("network-status-version 3 microdesc\n"), line: 1, msg: "want \"network-status-diff-version 1\""},
		{name: "version 2", base: base, diff: []byte("network-status-diff-version 2\nhash A B\n"), line: 1},
		{name: "no hash line", base: base, diff: []byte("network-status-diff-version 1\n"), line: 2},
		{name: "short digest", base: base, diff: []byte("network-status-diff-version 1\nhash AB CD\n"), line: 2, msg: "not 64 hex digits"},
		{name: "hash extra word", base: base, diff: []byte("network-status-diff-version 1\nhash A B C\n"), line: 2},
		{name: "no final newline", base: base, diff: []byte(header(base) + "3d"), line: 3, msg: "does not end with a newline"},
		{name: "line past the end", base: base, diff: []byte(header(base) + "6d\n"), line: 3, msg: "refers to line 6, but only lines 1-5"},
		{name: "range past the end", base: base, diff: []byte(header(base) + "4,9d\n"), line: 3, msg: "refers to line 9"},
		{name: "append past the end", base: base, diff: []byte(header(base) + "6a\nx\n.\n"), line: 3, msg: "refers to line 6"},
		{name: "increasing order", base: base, diff: []byte(header(base) + "2d\n4d\n"), line: 4, msg: "decreasing line order"},
		{name: "overlapping ranges", base: base, diff: []byte(header(base) + "3,4d\n2,3d\n"), line: 4, msg: "refers to line 3, but only lines 1-2"},
		{name: "dollar after the first", base: base, diff: []byte(header(base) + "4d\n2,$d\n"), line: 4, msg: "refers to line 5"},
		{name: "line zero", base: base, diff: []byte(header(base) + "0d\n"), line: 3, msg: "line 0"},
		{name: "reversed range", base: base, diff: []byte(header(base) + "4,2d\n"), line: 3, msg: "reversed range"},
		{name: "one-line range", base: base, diff: []byte(header(base) + "2,2d\n"), line: 3, msg: "empty or reversed range"},
		{name: "unknown command", base: base, diff: []byte(header(base) + "2i\nx\n.\n"), line: 3, msg: "unknown command"},
		{name: "two letters", base: base, diff: []byte(header(base) + "2dd\n"), line: 3, msg: "one command letter"},
		{name: "no number", base: base, diff: []byte(header(base) + "d\n"), line: 3, msg: "does not start with a line number"},
		{name: "no letter", base: base, diff: []byte(header(base) + "2\n"), line: 3},
		{name: "no range end", base: base, diff: []byte(header(base) + "2,d\n"), line: 3, msg: "lacks the end of its range"},
		{name: "huge number", base: base, diff: []byte(header(base) + "99999999999d\n"), line: 3},
		{name: "negative", base: base, diff: []byte(header(base) + "-1d\n"), line: 3},
		{name: "dollar with c", base: base, diff: []byte(header(base) + "2,$c\nx\n.\n"), line: 3, msg: "uses $"},
		{name: "range with a", base: base, diff: []byte(header(base) + "2,3a\nx\n.\n"), line: 3, msg: "appends after a range"},
		{name: "empty block", base: base, diff: []byte(header(base) + "2a\n.\n"), line: 3, msg: "inserts no lines"},
		{name: "unended block", base: base, diff: []byte(header(base) + "2a\nx\n"), line: 3, msg: "does not end with a \".\""},
		{name: "long command", base: base, diff: []byte(header(base) + strings.Repeat("0", 200) + "1d\n"), line: 3, msg: "longer than 127"},
		{name: "signatures kept", base: real,
			diff: []byte(header(real) + "4,6c\nx\n.\n"), line: 3, msg: "first command must be \"N,$d\""},
		{name: "signatures partly kept", base: real,
			diff: []byte(header(real) + "82,$d\n"), line: 3, msg: "signatures from line 81"},
		{name: "signatures not deleted", base: real, diff: []byte(header(real)), msg: "no command deleting them"},
		{name: "too large", base: base, diff: makeDiff(base, "5a\nsix\n.\n", lines("one", "two", "three", "four", "five", "six")), max: 20, msg: "more than the limit of 20"},
	}
	for _, tc := range cases {
		max := tc.max
		if max == 0 {
			max = 1 << 20
		}
		got, err := ApplyDiff(tc.base, tc.diff, max)
		if err == nil {
			t.Errorf("%s: accepted, got %q", tc.name, got)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: error %v is not %v", tc.name, err, tc.is)
		}
		var de *DiffError
		if tc.line != 0 && (!errors.As(err, &de) || de.Line != tc.line) {
			t.Errorf("%s: error %v, want a DiffError on line %d", tc.name, err, tc.line)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %q lacks %q", tc.name, err, tc.msg)
		}
	}
}

func TestApplyDiffBaseWithoutNewline(t *testing.T) {
	base := []byte("one\ntwo")
	if _, err := ApplyDiff(base, makeDiff(base, "1d\n", "two"), 100); err == nil || !strings.Contains(err.Error(), "base consensus does not end with a newline") {
		t.Fatalf("got %v", err)
	}
}

func FuzzApplyDiff(f *testing.F) {
	base := mustRead(f, "testnet-diff-base")
	f.Add(mustRead(f, "testnet-diff-base-next"), false)
	f.Add(mustRead(f, "testnet-diff-base-later"), false)
	small := []byte(lines("one", "two", "three", "four", "five"))
	f.Add(makeDiff(small, "5c\nFIVE\n.\n3a\nthree and a half\n.\n1d\n", lines("two", "three", "three and a half", "four", "FIVE")), true)
	f.Add(makeDiff(small, "2a\nB\n.\n2a\nA\n.\n2,$d\n", ""), true)
	f.Add(makeDiff(small, "0a\nx\n.\n", ""), true)
	f.Fuzz(func(t *testing.T, diff []byte, useSmall bool) {
		b := base
		if useSmall {
			b = small
		}
		const max = 64 << 10
		out, err := ApplyDiff(b, diff, max)
		if err != nil {
			return
		}
		if len(out) > max || len(out) > len(b)+len(diff) {
			t.Fatalf("result of %d bytes from a %d-byte base and a %d-byte diff", len(out), len(b), len(diff))
		}
		if _, to, err := DiffDigests(diff); err != nil || to != DocumentDigest(out) {
			t.Fatalf("accepted a result whose digest is not the diff's target (%v)", err)
		}
	})
}

func TestDiffRequest(t *testing.T) {
	base := mustRead(t, "testnet-diff-base")
	c := &conn{resp: strings.NewReader("HTTP/1.0 200 OK\r\n\r\n" + string(mustRead(t, "testnet-diff-base-next")))}
	body, err := GetWithHeaders(c, "", ConsensusPath(nil), []Header{DiffRequestHeader(DigestAsSigned(base))}, 1<<20)
	if err != nil || !IsDiff(body) {
		t.Fatalf("GetWithHeaders: %v", err)
	}
	want := "GET /tor/status-vote/current/consensus-microdesc HTTP/1.0\r\n" +
		"X-Or-Diff-From-Consensus: A8CE01C8FACAA242DC52461A10BB85047A571B439A0DD5051F50127CE394776B\r\n" +
		"Accept-Encoding: deflate, gzip, identity\r\n\r\n"
	if c.sent.String() != want {
		t.Errorf("sent %q, want %q", c.sent.String(), want)
	}
	for _, h := range []Header{{"X-Bad Name", "v"}, {"", "v"}, {"X-Ok", "a\r\nInjected: 1"}, {"X:Colon", "v"}} {
		c := &conn{resp: strings.NewReader("")}
		if _, err := GetWithHeaders(c, "", "/x", []Header{h}, 10); err == nil || c.sent.Len() != 0 {
			t.Errorf("header %q: %q accepted (sent %q)", h.Name, h.Value, c.sent.String())
		}
	}
}

func TestMatchesDocument(t *testing.T) {
	base, next := mustRead(t, "testnet-diff-base"), mustRead(t, "testnet-diff-next")
	c, err := ParseConsensus(base)
	if err != nil {
		t.Fatal(err)
	}
	if !c.MatchesDocument(base) || c.MatchesDocument(next) || c.MatchesDocument(nil) {
		t.Error("MatchesDocument wrong")
	}
}
