// Package netdoc tokenizes Tor directory documents in the meta-format of
// dir-spec section 1.2: a sequence of items, each a keyword line with
// arguments, optionally followed by one "-----BEGIN X-----" object.
//
// The tokenizer works on the caller's byte slice and does not copy it: an
// Item's byte slices point into the document and its Args are valid only
// until the next call to Next.
package netdoc

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"time"

	"tinytor/tor/errfmt"
)

// Error is a precise parse error: which document, which line, which
// keyword, and why.
type Error struct {
	Doc     string // document kind, e.g. "consensus"
	Line    int    // 1-based line number, 0 if unknown
	Keyword string // keyword of the offending item, "" if none
	Err     error  // the reason
}

func (e *Error) Error() string {
	var b bytes.Buffer
	b.WriteString(e.Doc)
	if e.Line > 0 {
		b.WriteString(": line ")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Keyword != "" {
		b.WriteString(": ")
		b.WriteString(strconv.Quote(e.Keyword))
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("invalid")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Message is an error that is only a constant text: returning one costs
// no allocation.
type Message string

func (m Message) Error() string { return string(m) }

// Item is one keyword line and its optional object.
type Item struct {
	Keyword []byte   // the keyword (annotations keep their leading '@')
	Args    [][]byte // whitespace-separated arguments
	Line    int      // 1-based line number of the keyword line
	Start   int      // byte offset of the keyword line in the document
	// ArgsEnd is the byte offset of the newline ending the keyword line.
	ArgsEnd int
	End     int // byte offset just after the item (after its object, if any)

	// ObjectType is the type of the object ("RSA PUBLIC KEY"), nil if none.
	ObjectType []byte
	// objectBody is the base64 text between the BEGIN and END lines.
	objectBody []byte
}

// HasObject reports whether the item is followed by an object.
func (it *Item) HasObject() bool { return it.ObjectType != nil }

// Is reports whether the item's keyword is kw.
func (it *Item) Is(kw string) bool { return string(it.Keyword) == kw }

// Object decodes the item's base64 object. It fails if there is no object
// or it is not valid base64.
func (it *Item) Object() ([]byte, error) {
	if it.ObjectType == nil {
		return nil, Message("missing object")
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(it.objectBody)))
	n, err := base64.StdEncoding.Decode(out, it.objectBody)
	if err != nil {
		return nil, Reason(err, "object %q: bad base64", it.ObjectType)
	}
	return out[:n], nil
}

// Tokenizer splits a document into items.
type Tokenizer struct {
	doc  []byte
	pos  int
	line int
	// Name is the document kind used in errors.
	Name string
	// Annotations allows keywords starting with '@' (C tor cache files).
	Annotations bool
	args        [][]byte
	cur         Item // the item Scan returns
}

// NewTokenizer returns a tokenizer over doc; name is used in errors.
func NewTokenizer(name string, doc []byte) *Tokenizer {
	return &Tokenizer{doc: doc, line: 1, Name: name}
}

// Errorf returns an *Error for the given item.
func (t *Tokenizer) Errorf(it *Item, format string, args ...any) error {
	return t.fail(it, 0, errfmt.Errorf(format, args...), "", nil)
}

// Wrap returns an *Error for the given item wrapping err.
func (t *Tokenizer) Wrap(it *Item, err error) error { return t.fail(it, 0, err, "", nil) }

// Fail returns an *Error for the given item (nil: none) whose reason is
// msg, in which each "%q" is replaced by the next of vals quoted as a Go
// string and each "%s" by the next of vals as it is.
func (t *Tokenizer) Fail(it *Item, msg string, vals ...[]byte) error {
	return t.fail(it, 0, nil, msg, vals)
}

// FailLine is Fail for a line that has no item: the line number alone
// (0 if unknown) locates the problem.
func (t *Tokenizer) FailLine(line int, msg string, vals ...[]byte) error {
	return t.fail(nil, line, nil, msg, vals)
}

// WrapMsg returns an *Error for the given item whose reason is "msg:
// err", msg formatted as in Fail; it wraps err.
func (t *Tokenizer) WrapMsg(it *Item, err error, msg string, vals ...[]byte) error {
	return t.fail(it, 0, err, msg, vals)
}

// failAt is Fail at a line of the object of it (it.Line is the keyword line).
func (t *Tokenizer) failAt(it *Item, line int, msg string, vals ...[]byte) error {
	return t.fail(it, line, nil, msg, vals)
}

// hexByte formats c as 0x and two hex digits.
func hexByte(c byte) []byte {
	const digits = "0123456789abcdef"
	return []byte{'0', 'x', digits[c>>4], digits[c&15]}
}

// fail builds the errors of Errorf, Wrap, Fail, FailLine and WrapMsg:
// for it (nil: none), at line if that is not 0 (else at it.Line).
func (t *Tokenizer) fail(it *Item, line int, err error, msg string, vals [][]byte) error {
	e := &Error{Doc: t.Name, Line: line, Err: err}
	if it != nil {
		if line == 0 {
			e.Line = it.Line
		}
		e.Keyword = string(it.Keyword)
	}
	if msg != "" {
		e.Err = Reason(err, msg, vals...)
	}
	return e
}

// Reason returns the error "msg: err" (just msg if err is nil), msg
// formatted as in Fail; it wraps err. It is the cheap form of fmt.Errorf
// for messages that quote a document's bytes.
func Reason(err error, msg string, vals ...[]byte) error {
	var b []byte
	for i := 0; i < len(msg); i++ {
		if msg[i] == '%' && i+1 < len(msg) && len(vals) > 0 && (msg[i+1] == 'q' || msg[i+1] == 's') {
			if msg[i+1] == 'q' {
				b = strconv.AppendQuote(b, string(vals[0]))
			} else {
				b = append(b, vals[0]...)
			}
			vals = vals[1:]
			i++
			continue
		}
		b = append(b, msg[i])
	}
	return &reason{msg: string(b), err: err}
}

// reason is the error Reason returns (the reason of the *Error of Fail,
// FailLine and WrapMsg).
type reason struct {
	msg string
	err error // wrapped, or nil
}

func (r *reason) Error() string {
	if r.err == nil {
		return r.msg
	}
	return r.msg + ": " + r.err.Error()
}

func (r *reason) Unwrap() error { return r.err }

// Shape is what CheckShape requires of an item's object.
type Shape int8

// Object rules for CheckShape.
const (
	NoObject   Shape = iota // the item must not have an object
	NeedObject              // the item must have an object
	AnyObject               // the item may have an object
)

// CheckShape fails unless it has at least min and at most max arguments
// (max < 0: no limit) and an object as obj requires.
func (t *Tokenizer) CheckShape(it *Item, min, max int, obj Shape) error {
	n := len(it.Args)
	switch {
	case n < min:
		return t.Errorf(it, "too few arguments (%d, want at least %d)", n, min)
	case max >= 0 && n > max:
		return t.Errorf(it, "too many arguments (%d, want at most %d)", n, max)
	case obj == NeedObject && !it.HasObject():
		return t.Fail(it, "missing object")
	case obj == NoObject && it.HasObject():
		return t.Fail(it, "unexpected object %q", it.ObjectType)
	}
	return nil
}

// ObjectOf returns the item's decoded object, failing unless its type is
// typ.
func (t *Tokenizer) ObjectOf(it *Item, typ string) ([]byte, error) {
	if string(it.ObjectType) != typ {
		return nil, t.Fail(it, "want a%s %s object, got %q", article(typ), []byte(typ), it.ObjectType)
	}
	b, err := it.Object()
	if err != nil {
		return nil, t.Wrap(it, err)
	}
	return b, nil
}

// Pos returns the byte offset of the next item.
func (t *Tokenizer) Pos() int { return t.pos }

// Next returns the next item, or io.EOF at the end of the document.
// Blank lines are skipped.
func (t *Tokenizer) Next() (Item, error) {
	it, err := t.Scan()
	if err != nil {
		return Item{}, err
	}
	return *it, nil
}

// Scan is Next returning the item in place: the *Item is the
// tokenizer's, valid (like its Args) until the next call.
func (t *Tokenizer) Scan() (*Item, error) {
	it := &t.cur
	*it = Item{}
	doc := t.doc
	for t.pos < len(doc) && doc[t.pos] == '\n' {
		t.pos++
		t.line++
	}
	if t.pos >= len(doc) {
		return nil, io.EOF
	}
	start := t.pos
	nl := bytes.IndexByte(doc[start:], '\n')
	if nl < 0 {
		return nil, t.FailLine(t.line, "last line does not end with a newline")
	}
	lineEnd := start + nl
	line := doc[start:lineEnd]
	it.Line, it.Start, it.ArgsEnd = t.line, start, lineEnd
	t.args = t.args[:0]
	i := 0
	for i < len(line) && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	kw := line[:i]
	it.Keyword = kw
	if err := t.checkKeyword(kw); err != nil {
		return nil, t.fail(&Item{Line: t.line, Keyword: []byte(printable(kw))}, 0, err, "", nil)
	}
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			c := line[j]
			if c < 0x21 || c > 0x7e {
				return nil, t.failAt(it, t.line, "non-printable character %s in arguments", hexByte(c))
			}
			j++
		}
		if j > i {
			t.args = append(t.args, line[i:j])
		}
		i = j
	}
	it.Args = t.args
	t.pos = lineEnd + 1
	t.line++
	it.End = t.pos
	// Optional object.
	if bytes.HasPrefix(doc[t.pos:], []byte("-----BEGIN ")) {
		if err := t.readObject(it); err != nil {
			return nil, err
		}
	}
	return it, nil
}

func (t *Tokenizer) readObject(it *Item) error {
	doc := t.doc
	begLine := t.line
	nl := bytes.IndexByte(doc[t.pos:], '\n')
	if nl < 0 {
		return t.failAt(it, begLine, "object BEGIN line does not end with a newline")
	}
	beg := doc[t.pos : t.pos+nl]
	if !bytes.HasSuffix(beg, []byte("-----")) || len(beg) < len("-----BEGIN X-----") {
		return t.failAt(it, begLine, "malformed object BEGIN line %q", []byte(printable(beg)))
	}
	typ := beg[len("-----BEGIN ") : len(beg)-5]
	if err := checkObjectType(typ); err != nil {
		return t.fail(it, begLine, err, "", nil)
	}
	t.pos += nl + 1
	t.line++
	bodyStart := t.pos
	for {
		if t.pos >= len(doc) {
			return t.failAt(it, begLine, "object %q has no END line", typ)
		}
		nl := bytes.IndexByte(doc[t.pos:], '\n')
		if nl < 0 {
			return t.failAt(it, t.line, "object %q: line does not end with a newline", typ)
		}
		l := doc[t.pos : t.pos+nl]
		if bytes.HasPrefix(l, []byte("-----END ")) {
			if !bytes.HasSuffix(l, []byte("-----")) || len(l) < len("-----END -----") ||
				!bytes.Equal(l[len("-----END "):len(l)-5], typ) {
				return t.failAt(it, t.line, "object END line %q does not match BEGIN %q", []byte(printable(l)), typ)
			}
			it.ObjectType = typ
			it.objectBody = doc[bodyStart:t.pos]
			t.pos += nl + 1
			t.line++
			it.End = t.pos
			return nil
		}
		for _, c := range l {
			if !isBase64Char(c) {
				return t.failAt(it, t.line, "object %q: invalid base64 character %s", typ, hexByte(c))
			}
		}
		t.pos += nl + 1
		t.line++
	}
}

func isBase64Char(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
}

func isKeywordStart(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

func (t *Tokenizer) checkKeyword(kw []byte) error {
	if len(kw) == 0 {
		return Message("line starts with whitespace (expected a keyword)")
	}
	k := kw
	if t.Annotations && k[0] == '@' {
		k = k[1:]
		if len(k) == 0 {
			return Message("empty annotation keyword")
		}
	}
	if bytes.HasPrefix(k, []byte("-----")) {
		return Message("unexpected object line (no item before it)")
	}
	if !isKeywordStart(k[0]) {
		return errors.New("invalid keyword start character " + string(hexByte(k[0])))
	}
	for _, c := range k[1:] {
		if !isKeywordStart(c) && c != '-' {
			return errors.New("invalid keyword character " + string(hexByte(c)))
		}
	}
	return nil
}

func checkObjectType(typ []byte) error {
	if len(typ) == 0 {
		return Message("empty object type")
	}
	for _, c := range typ {
		if !isKeywordStart(c) && c != '-' && c != ' ' {
			return errors.New("invalid character " + string(hexByte(c)) + " in object type")
		}
	}
	return nil
}

func printable(b []byte) string {
	const max = 40
	if len(b) > max {
		b = b[:max]
	}
	q := strconv.QuoteToASCII(string(b))
	return q[1 : len(q)-1]
}

// TimeLayout is the directory time format "YYYY-MM-DD HH:MM:SS" (UTC).
const TimeLayout = "2006-01-02 15:04:05"

// Time prints as a directory time in UTC ("2006-01-02 15:04:05"): a
// cheap way to put a time.Time in a log line or error message.
type Time time.Time

func (t Time) String() string { return time.Time(t).UTC().Format(TimeLayout) }

// ParseTime parses two arguments "YYYY-MM-DD" "HH:MM:SS" as a UTC time.
func ParseTime(date, clock []byte) (time.Time, error) {
	if len(date) != 10 || len(clock) != 8 {
		return time.Time{}, Reason(nil, "bad time %q %q (want YYYY-MM-DD HH:MM:SS)", []byte(printable(date)), []byte(printable(clock)))
	}
	var buf [19]byte
	copy(buf[:], date)
	buf[10] = ' '
	copy(buf[11:], clock)
	tm, err := time.Parse(TimeLayout, string(buf[:]))
	if err != nil {
		return time.Time{}, Reason(err, "bad time %q", buf[:])
	}
	return tm, nil
}

// TimeArgs parses the first two arguments of it as a time.
func TimeArgs(it *Item) (time.Time, error) {
	if len(it.Args) < 2 {
		return time.Time{}, Message("missing date and time arguments")
	}
	return ParseTime(it.Args[0], it.Args[1])
}

// DecodeBase64NoPad decodes base64 with or without trailing '=' padding
// into exactly len(dst) bytes.
func DecodeBase64NoPad(dst, src []byte) error {
	s := bytes.TrimRight(src, "=")
	if base64.RawStdEncoding.DecodedLen(len(s)) != len(dst) {
		return wrongLength("base64", src, len(dst), "bytes")
	}
	n, err := base64.RawStdEncoding.Decode(dst, s)
	if err != nil {
		return Reason(err, "bad base64 %q", []byte(printable(src)))
	}
	if n != len(dst) {
		return wrongLength("base64", src, len(dst), "bytes")
	}
	return nil
}

// DecodeHex decodes exactly len(dst) bytes of hex (either case).
func DecodeHex(dst, src []byte) error {
	if len(src) != 2*len(dst) {
		return wrongLength("hex", src, 2*len(dst), "digits")
	}
	if _, err := hex.Decode(dst, src); err != nil {
		return Reason(nil, "bad hex value %q", []byte(printable(src)))
	}
	return nil
}

// article returns "n" if an object type reads with "an" (an ED25519
// CERT, an RSA PUBLIC KEY, an ID SIGNATURE), "" otherwise (a SIGNATURE).
func article(typ string) []byte {
	if typ != "" && bytes.IndexByte([]byte("AEIOR"), typ[0]) >= 0 {
		return []byte("n")
	}
	return nil
}

// wrongLength is the error of a hex or base64 value src whose length is
// not the want units.
func wrongLength(what string, src []byte, want int, units string) error {
	return Reason(nil, "%s value %q has the wrong length (want %s %s)", []byte(what), []byte(printable(src)),
		strconv.AppendInt(nil, int64(want), 10), []byte(units))
}
