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
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
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
		fmt.Fprintf(&b, ": %q", e.Keyword)
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
		return nil, errors.New("missing object")
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(it.objectBody)))
	n, err := base64.StdEncoding.Decode(out, it.objectBody)
	if err != nil {
		return nil, fmt.Errorf("object %q: bad base64: %w", it.ObjectType, err)
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
}

// NewTokenizer returns a tokenizer over doc; name is used in errors.
func NewTokenizer(name string, doc []byte) *Tokenizer {
	return &Tokenizer{doc: doc, line: 1, Name: name}
}

// Errorf returns an *Error for the given item.
func (t *Tokenizer) Errorf(it *Item, format string, args ...any) error {
	e := &Error{Doc: t.Name, Err: fmt.Errorf(format, args...)}
	if it != nil {
		e.Line = it.Line
		e.Keyword = string(it.Keyword)
	}
	return e
}

// Wrap returns an *Error for the given item wrapping err.
func (t *Tokenizer) Wrap(it *Item, err error) error {
	e := &Error{Doc: t.Name, Err: err}
	if it != nil {
		e.Line = it.Line
		e.Keyword = string(it.Keyword)
	}
	return e
}

// Pos returns the byte offset of the next item.
func (t *Tokenizer) Pos() int { return t.pos }

// Next returns the next item, or io.EOF at the end of the document.
// Blank lines are skipped.
func (t *Tokenizer) Next() (Item, error) {
	doc := t.doc
	for t.pos < len(doc) && doc[t.pos] == '\n' {
		t.pos++
		t.line++
	}
	if t.pos >= len(doc) {
		return Item{}, io.EOF
	}
	start := t.pos
	nl := bytes.IndexByte(doc[start:], '\n')
	if nl < 0 {
		return Item{}, &Error{Doc: t.Name, Line: t.line, Err: errors.New("last line does not end with a newline")}
	}
	lineEnd := start + nl
	line := doc[start:lineEnd]
	it := Item{Line: t.line, Start: start, ArgsEnd: lineEnd}
	t.args = t.args[:0]
	i := 0
	for i < len(line) && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	kw := line[:i]
	it.Keyword = kw
	if err := t.checkKeyword(kw); err != nil {
		return Item{}, &Error{Doc: t.Name, Line: t.line, Keyword: printable(kw), Err: err}
	}
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			c := line[j]
			if c < 0x21 || c > 0x7e {
				return Item{}, &Error{Doc: t.Name, Line: t.line, Keyword: string(kw),
					Err: fmt.Errorf("non-printable character 0x%02x in arguments", c)}
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
		if err := t.readObject(&it); err != nil {
			return Item{}, err
		}
	}
	return it, nil
}

func (t *Tokenizer) readObject(it *Item) error {
	doc := t.doc
	begLine := t.line
	nl := bytes.IndexByte(doc[t.pos:], '\n')
	if nl < 0 {
		return &Error{Doc: t.Name, Line: begLine, Keyword: string(it.Keyword), Err: errors.New("object BEGIN line does not end with a newline")}
	}
	beg := doc[t.pos : t.pos+nl]
	if !bytes.HasSuffix(beg, []byte("-----")) || len(beg) < len("-----BEGIN X-----") {
		return &Error{Doc: t.Name, Line: begLine, Keyword: string(it.Keyword), Err: fmt.Errorf("malformed object BEGIN line %q", printable(beg))}
	}
	typ := beg[len("-----BEGIN ") : len(beg)-5]
	if err := checkObjectType(typ); err != nil {
		return &Error{Doc: t.Name, Line: begLine, Keyword: string(it.Keyword), Err: err}
	}
	t.pos += nl + 1
	t.line++
	bodyStart := t.pos
	for {
		if t.pos >= len(doc) {
			return &Error{Doc: t.Name, Line: begLine, Keyword: string(it.Keyword), Err: fmt.Errorf("object %q has no END line", typ)}
		}
		nl := bytes.IndexByte(doc[t.pos:], '\n')
		if nl < 0 {
			return &Error{Doc: t.Name, Line: t.line, Keyword: string(it.Keyword), Err: fmt.Errorf("object %q: line does not end with a newline", typ)}
		}
		l := doc[t.pos : t.pos+nl]
		if bytes.HasPrefix(l, []byte("-----END ")) {
			if !bytes.HasSuffix(l, []byte("-----")) || len(l) < len("-----END -----") ||
				!bytes.Equal(l[len("-----END "):len(l)-5], typ) {
				return &Error{Doc: t.Name, Line: t.line, Keyword: string(it.Keyword),
					Err: fmt.Errorf("object END line %q does not match BEGIN %q", printable(l), typ)}
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
				return &Error{Doc: t.Name, Line: t.line, Keyword: string(it.Keyword),
					Err: fmt.Errorf("object %q: invalid base64 character 0x%02x", typ, c)}
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
		return errors.New("line starts with whitespace (expected a keyword)")
	}
	k := kw
	if t.Annotations && k[0] == '@' {
		k = k[1:]
		if len(k) == 0 {
			return errors.New("empty annotation keyword")
		}
	}
	if bytes.HasPrefix(k, []byte("-----")) {
		return errors.New("unexpected object line (no item before it)")
	}
	if !isKeywordStart(k[0]) {
		return fmt.Errorf("invalid keyword start character 0x%02x", k[0])
	}
	for _, c := range k[1:] {
		if !isKeywordStart(c) && c != '-' {
			return fmt.Errorf("invalid keyword character 0x%02x", c)
		}
	}
	return nil
}

func checkObjectType(typ []byte) error {
	if len(typ) == 0 {
		return errors.New("empty object type")
	}
	for _, c := range typ {
		if !isKeywordStart(c) && c != '-' && c != ' ' {
			return fmt.Errorf("invalid character 0x%02x in object type", c)
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

// ParseTime parses two arguments "YYYY-MM-DD" "HH:MM:SS" as a UTC time.
func ParseTime(date, clock []byte) (time.Time, error) {
	if len(date) != 10 || len(clock) != 8 {
		return time.Time{}, fmt.Errorf("bad time %q %q (want YYYY-MM-DD HH:MM:SS)", printable(date), printable(clock))
	}
	var buf [19]byte
	copy(buf[:], date)
	buf[10] = ' '
	copy(buf[11:], clock)
	tm, err := time.Parse(TimeLayout, string(buf[:]))
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time %q: %w", string(buf[:]), err)
	}
	return tm, nil
}

// TimeArgs parses the first two arguments of it as a time.
func TimeArgs(it *Item) (time.Time, error) {
	if len(it.Args) < 2 {
		return time.Time{}, errors.New("missing date and time arguments")
	}
	return ParseTime(it.Args[0], it.Args[1])
}

// DecodeBase64NoPad decodes base64 with or without trailing '=' padding
// into exactly len(dst) bytes.
func DecodeBase64NoPad(dst, src []byte) error {
	s := bytes.TrimRight(src, "=")
	if base64.RawStdEncoding.DecodedLen(len(s)) != len(dst) {
		return fmt.Errorf("base64 value %q has the wrong length (want %d bytes)", printable(src), len(dst))
	}
	n, err := base64.RawStdEncoding.Decode(dst, s)
	if err != nil {
		return fmt.Errorf("bad base64 %q: %w", printable(src), err)
	}
	if n != len(dst) {
		return fmt.Errorf("base64 value %q has the wrong length (want %d bytes)", printable(src), len(dst))
	}
	return nil
}

// DecodeHex decodes exactly len(dst) bytes of hex (either case).
func DecodeHex(dst, src []byte) error {
	if len(src) != 2*len(dst) {
		return fmt.Errorf("hex value %q has the wrong length (want %d digits)", printable(src), 2*len(dst))
	}
	for i := range dst {
		hi, ok1 := unhex(src[2*i])
		lo, ok2 := unhex(src[2*i+1])
		if !ok1 || !ok2 {
			return fmt.Errorf("bad hex value %q", printable(src))
		}
		dst[i] = hi<<4 | lo
	}
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
