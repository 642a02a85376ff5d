package dir

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
)

// Microdesc is a client's compact view of a microdescriptor (dir-spec
// 3.3).
type Microdesc struct {
	// Digest is SHA-256 of the microdescriptor's text, as named in the
	// consensus "m" line.
	Digest [32]byte
	// NtorOnionKey is the curve25519 key for ntor; valid if HasNtorKey.
	NtorOnionKey [32]byte
	// Ed25519ID is the relay's ed25519 identity; valid if HasEd25519.
	Ed25519ID [32]byte
	// Family is the relay's declared family, shared between identical
	// "family" lines of one parse; nil if none.
	Family *Family
	// Policy and Policy6 are the IPv4 and IPv6 exit-policy summaries,
	// shared between identical lines; nil means reject all.
	Policy  *PortPolicy
	Policy6 *PortPolicy
	// IPv6 is the address from an "a" line (old microdescriptors only).
	IPv6       netip.AddrPort
	HasNtorKey bool
	HasEd25519 bool
}

// Family is a parsed "family" line (plus "family-ids", if present).
type Family struct {
	// IDs are the $hexid entries.
	IDs [][20]byte
	// Nicknames are the plain nickname entries (legacy).
	Nicknames []string
	// Keys are the ed25519 family keys of a "family-ids" line.
	Keys [][32]byte
}

// ContainsID reports whether id is among the family's $hexid entries.
func (f *Family) ContainsID(id [20]byte) bool {
	if f == nil {
		return false
	}
	for _, x := range f.IDs {
		if x == id {
			return true
		}
	}
	return false
}

const microdescDoc = "microdescriptor"

// MicrodescError is one microdescriptor that was skipped, and why. C tor
// skips such an entry and keeps the rest of the document
// (microdescs_parse_from_string); so does this package.
type MicrodescError struct {
	// Offset and Line locate the entry's first line (an annotation, its
	// onion-key or ntor-onion-key line, or the stray line that made it)
	// in the document: a byte offset and a 1-based line number.
	Offset, Line int
	// Digest is SHA-256 of the entry's text from its onion-key (or
	// ntor-onion-key) line to the next entry, as C tor computes it for
	// the digests it marks as unparseable; of the whole entry if it has
	// neither line.
	Digest [32]byte
	// Err says why: a *netdoc.Error naming the faulty line (numbered in
	// the whole document) and keyword.
	Err error
}

func (e *MicrodescError) Error() string {
	return fmt.Sprintf("microdescriptor %s at line %d (offset %d): %v", DigestString(e.Digest), e.Line, e.Offset, e.Err)
}

func (e *MicrodescError) Unwrap() error { return e.Err }

// SkippedMicrodescsError is the error ParseMicrodescs returns, alongside
// the microdescriptors it kept, when it skipped some.
type SkippedMicrodescsError struct {
	// Skipped are the skipped entries, in document order.
	Skipped []*MicrodescError
	// Kept is how many microdescriptors were kept.
	Kept int
}

func (e *SkippedMicrodescsError) Error() string {
	return fmt.Sprintf("skipped %d of %d microdescriptors (first: %v)", len(e.Skipped), len(e.Skipped)+e.Kept, e.Skipped[0])
}

// Unwrap returns the per-entry errors.
func (e *SkippedMicrodescsError) Unwrap() []error {
	out := make([]error, len(e.Skipped))
	for i, s := range e.Skipped {
		out[i] = s
	}
	return out
}

// ParseMicrodescs parses a concatenation of microdescriptors, as served at
// /tor/micro/d/... or stored in C tor's cached-microdescs file. Each
// microdescriptor starts at its "onion-key" line (or, lacking one, at its
// "ntor-onion-key" line), preceded by any annotations ("@last-listed"),
// and its digest covers its text from that line up to the next
// microdescriptor or annotation.
//
// A malformed microdescriptor is skipped, as C tor skips it, and the
// others are kept: the error is then a *SkippedMicrodescsError listing the
// skipped ones, and the returned microdescriptors are valid all the same.
// The error is a *netdoc.Error if the document holds no microdescriptor.
//
// What skips an entry (C tor's microdesc_parse.c and parsecommon.c): an
// item the tokenizer rejects; a missing ntor-onion-key (a second one
// starts the next microdescriptor); a repeated onion-key, family,
// family-ids, p, p6 or @last-listed; an
// onion-key with arguments, without an RSA PUBLIC KEY object, or whose key
// does not parse, is not 1024 bits or has an exponent other than 65537; an
// ntor-onion-key or ed25519 id that is not a base64 32-byte key; two
// ed25519 ids; an id with fewer than two or an a with no arguments; an
// object after any known item but onion-key; a @last-listed that is not a
// time. What only drops a field: a p or p6 that does not parse (no policy,
// that is reject all), an a line that is not one IPv6 address and port
// (ignored), a family member $hexid or ed25519 key that does not decode
// (ignored). Unknown items and annotations are ignored.
func ParseMicrodescs(doc []byte) ([]*Microdesc, error) {
	mds, _, err := parseMicrodescs(doc)
	return mds, err
}

// span is the [start, end) byte range of one microdescriptor's text.
type span struct{ start, end int }

// mdEntry is one entry of a microdescriptor document, as split by
// splitMicrodescs.
type mdEntry struct {
	start int // offset of its first line
	body  int // offset of its onion-key or ntor-onion-key line, -1 if none
	end   int // offset of the next entry, or len(doc)
	line  int // line number of its first line
}

// splitMicrodescs cuts doc into entries as C tor's
// find_start_of_next_microdesc does: an entry starts at an annotation
// line or at an "onion-key" line, unless it continues an entry that so far
// has only annotations. An "ntor-onion-key" line also starts one if the
// current entry has one already (a microdescriptor without onion-key, as
// relays publish since TAP keys were retired). Lines before any of these
// make an entry of their own, which has no body.
func splitMicrodescs(doc []byte) []mdEntry {
	var (
		out      []mdEntry
		cur      = -1 // index in out
		stray    bool // cur has lines that are neither annotations nor body
		haveNtor bool // cur's body has an ntor-onion-key line
		line     = 1
	)
	for pos := 0; pos < len(doc); line++ {
		end := bytes.IndexByte(doc[pos:], '\n')
		if end < 0 {
			end = len(doc)
		} else {
			end += pos
		}
		l := doc[pos:end]
		kw := l
		if i := bytes.IndexAny(l, " \t"); i >= 0 {
			kw = l[:i]
		}
		headerOnly := cur >= 0 && out[cur].body < 0 && !stray // only annotations so far
		// Whether the line starts an entry, starts its body, is an
		// ntor-onion-key line, or is another item.
		var begin, body, ntor, other bool
		switch {
		case len(l) == 0:
			// Blank lines belong to the entry before them.
		case l[0] == '@':
			begin = !headerOnly
		case string(kw) == "onion-key":
			begin, body = !headerOnly, true
		case string(kw) == "ntor-onion-key":
			begin = !headerOnly && (cur < 0 || haveNtor || out[cur].body < 0)
			body, ntor = begin || headerOnly, true
		default:
			begin, other = cur < 0, true
		}
		if begin {
			if cur >= 0 {
				out[cur].end = pos
			}
			out = append(out, mdEntry{start: pos, body: -1, line: line})
			cur, stray, haveNtor = len(out)-1, false, false
		}
		if body {
			out[cur].body = pos
		}
		haveNtor = haveNtor || ntor
		stray = stray || other && out[cur].body < 0
		pos = end + 1
	}
	if cur >= 0 {
		out[cur].end = len(doc)
	}
	return out
}

// microdescParser holds what the entries of one document share. One
// tokenizer reads the whole document; after an entry fails, a new one
// starts at the next entry (whose start is known from the split).
type microdescParser struct {
	doc      []byte
	policies map[string]*PortPolicy // interned p and p6 lines (nil: unparseable)
	families map[string]*Family     // interned family and family-ids lines
	t        *netdoc.Tokenizer
	base     int   // offset in doc of t's input
	lineBase int   // lines of doc before t's input
	seen     uint8 // the once-only items of the entry being parsed
}

func parseMicrodescs(doc []byte) ([]*Microdesc, []span, error) {
	entries := splitMicrodescs(doc)
	if len(entries) == 0 {
		return nil, nil, &netdoc.Error{Doc: microdescDoc, Err: netdoc.Message("no microdescriptor in document")}
	}
	p := microdescParser{doc: doc, policies: map[string]*PortPolicy{}, families: map[string]*Family{}}
	out := make([]*Microdesc, 0, len(entries))
	spans := make([]span, 0, len(entries))
	var skipped []*MicrodescError
	for _, e := range entries {
		if p.t == nil {
			p.t = netdoc.NewTokenizer(microdescDoc, doc[e.start:])
			p.t.Annotations = true
			p.base, p.lineBase = e.start, e.line-1
		}
		md, err := p.entry(e)
		if err != nil {
			err = p.fix(err)
		}
		body := e.body
		if body < 0 {
			body = e.start
		}
		digest := sha256.Sum256(doc[body:e.end])
		if err != nil {
			skipped = append(skipped, &MicrodescError{Offset: e.start, Line: e.line, Digest: digest, Err: err})
			p.t = nil // resynchronise at the next entry
			continue
		}
		md.Digest = digest
		out = append(out, md)
		spans = append(spans, span{body, e.end})
	}
	if len(skipped) > 0 {
		if len(out) == 0 {
			out, spans = nil, nil
		}
		return out, spans, &SkippedMicrodescsError{Skipped: skipped, Kept: len(out)}
	}
	return out, spans, nil
}

// Bits of the items a microdescriptor may hold at most once.
const (
	mdOnionKey uint8 = 1 << iota
	mdNtorKey
	mdFamily
	mdFamilyIDs
	mdP
	mdP6
	mdLastListed
)

// entry parses entry e, reading items with p.t up to e.end. Its errors
// are *netdoc.Error with lines numbered in p.t's input (fix renumbers
// them in the whole document).
//
// No item read here extends past e.end: e.end is the start of a line
// that begins with '@' or "onion-key" or "ntor-onion-key", which the
// tokenizer never takes into an object (they are not base64).
func (p *microdescParser) entry(e mdEntry) (*Microdesc, error) {
	t := p.t
	md := &Microdesc{}
	p.seen = 0
	for {
		// Stop at the next entry; blank lines before it are this one's.
		if rest := p.doc[min(p.base+t.Pos(), e.end):e.end]; len(bytes.TrimLeft(rest, "\n")) == 0 {
			break
		}
		it, err := t.Scan()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		kw := keywordString(it.Keyword)
		if kw == "" { // an annotation
			if it.Is("@last-listed") {
				if err := p.once(it, mdLastListed); err != nil {
					return nil, err
				}
				if _, err := netdoc.TimeArgs(it); err != nil || len(it.Args) != 2 {
					return nil, t.Fail(it, "bad last-listed time %q", bytes.Join(it.Args, []byte(" ")))
				}
			}
			continue
		}
		if e.body < 0 || p.base+it.Start < e.body {
			return nil, t.Fail(it, "item outside a microdescriptor (malformed or truncated: expected onion-key or ntor-onion-key first)")
		}
		if kw != "?" && kw != "onion-key" && it.HasObject() {
			return nil, t.Fail(it, "unexpected object %q", it.ObjectType)
		}
		if err := p.item(it, kw, md); err != nil {
			return nil, err
		}
	}
	if e.body < 0 {
		return nil, t.FailLine(e.line-p.lineBase, "item contains only annotations")
	}
	if p.seen&mdNtorKey == 0 {
		return nil, t.FailLine(e.line-p.lineBase, "missing ntor-onion-key")
	}
	return md, nil
}

// fix renumbers the line of a tokenizer's error in the whole document.
func (p *microdescParser) fix(err error) error {
	var ne *netdoc.Error
	if errors.As(err, &ne) && ne.Line > 0 {
		ne.Line += p.lineBase
	}
	return err
}

// once records an item allowed at most once in a microdescriptor, and
// fails (with a tokenizer-relative line) if it was seen already.
func (p *microdescParser) once(it *netdoc.Item, bit uint8) error {
	if p.seen&bit != 0 {
		return p.t.Fail(it, "appears more than once in a microdescriptor")
	}
	p.seen |= bit
	return nil
}

// item parses one item of a microdescriptor's body into md.
func (p *microdescParser) item(it *netdoc.Item, kw string, md *Microdesc) error {
	t := p.t
	switch kw {
	case "onion-key":
		if err := p.once(it, mdOnionKey); err != nil {
			return err
		}
		if len(it.Args) > 0 {
			return t.Fail(it, "takes no arguments")
		}
		// The TAP key is obsolete (ntor is used), but C tor still
		// rejects a microdescriptor whose key is not a valid one.
		der, err := t.ObjectOf(it, rsaKeyType)
		if err != nil {
			return err
		}
		if _, err := parseOnionKey(der); err != nil {
			return t.Wrap(it, err)
		}
	case "ntor-onion-key":
		if err := p.once(it, mdNtorKey); err != nil {
			return err
		}
		if len(it.Args) < 1 {
			return t.Fail(it, "missing key")
		}
		if err := netdoc.DecodeBase64NoPad(md.NtorOnionKey[:], it.Args[0]); err != nil {
			return t.Wrap(it, err)
		}
		md.HasNtorKey = true
	case "id":
		if len(it.Args) < 2 {
			return t.Fail(it, "want key type and value")
		}
		if string(it.Args[0]) == "ed25519" {
			if md.HasEd25519 {
				return t.Fail(it, "extra ed25519 key in microdescriptor")
			}
			if err := netdoc.DecodeBase64NoPad(md.Ed25519ID[:], it.Args[1]); err != nil {
				return t.Wrap(it, err)
			}
			md.HasEd25519 = true
		}
	case "a":
		if len(it.Args) < 1 {
			return t.Fail(it, "missing address")
		}
		// As C tor's find_single_ipv6_orport: the first IPv6 address and
		// port counts; anything else is ignored.
		if md.IPv6.IsValid() {
			break
		}
		if ap, ok := parseORAddr(it.Args[0]); ok && ap.Addr().Is6() {
			md.IPv6 = ap
		}

	case "p", "p6":
		bit := mdP
		if kw == "p6" {
			bit = mdP6
		}
		if err := p.once(it, bit); err != nil {
			return err
		}
		line := string(p.doc[p.base+it.Start+len(kw) : p.base+it.ArgsEnd])
		pol, ok := p.policies[line]
		if !ok {
			// C tor keeps a microdescriptor whose policy summary it
			// cannot parse, with no policy (reject all).
			pol, _ = ParsePortPolicy(it.Args)
			p.policies[line] = pol
		}
		if kw == "p" {
			md.Policy = pol
		} else {
			md.Policy6 = pol
		}
	case "family", "family-ids":
		bit := mdFamily
		if kw == "family-ids" {
			bit = mdFamilyIDs
		}
		if err := p.once(it, bit); err != nil {
			return err
		}
		// Both lines are interned together, so key the cache by both.
		line := kw + string(p.doc[p.base+it.Start+len(kw):p.base+it.ArgsEnd])
		f, ok := p.families[line]
		if !ok {
			f = &Family{}
			f.add(kw, it.Args)
			p.families[line] = f
		}
		if md.Family == nil {
			md.Family = f
		} else {
			// Rare: both lines present. Merge into a private copy.
			merged := &Family{}
			for _, g := range [2]*Family{md.Family, f} {
				merged.IDs = append(merged.IDs, g.IDs...)
				merged.Nicknames = append(merged.Nicknames, g.Nicknames...)
				merged.Keys = append(merged.Keys, g.Keys...)
			}
			md.Family = merged
		}
	}
	return nil
}

// microdescKeywords are the keywords ParseMicrodescs handles; keywordString
// returns them without allocating.
var microdescKeywords = [...]string{"onion-key", "ntor-onion-key", "family", "family-ids", "p", "p6", "id", "a"}

// keywordString returns kw as a string: "" for an annotation, a shared
// constant for known keywords, "?" for anything else (ignored).
func keywordString(kw []byte) string {
	if len(kw) > 0 && kw[0] == '@' {
		return ""
	}
	for _, k := range microdescKeywords {
		if string(kw) == k {
			return k
		}
	}
	return "?"
}

// add adds the members of a family or family-ids line. A member that is
// not a nickname, a $hexid or an ed25519 key is ignored, as C tor's
// nodefamily_parse (with NF_WARN_MALFORMED) drops it.
func (f *Family) add(kw string, args [][]byte) {
	for _, a := range args {
		if kw == "family-ids" {
			if !bytes.HasPrefix(a, []byte("ed25519:")) {
				continue // unknown key type: ignore
			}
			var k [32]byte
			if netdoc.DecodeBase64NoPad(k[:], a[len("ed25519:"):]) != nil {
				continue
			}
			f.Keys = append(f.Keys, k)
			continue
		}
		if len(a) > 0 && a[0] == '$' {
			hex := a[1:]
			if i := bytes.IndexAny(hex, "=~"); i >= 0 {
				hex = hex[:i]
			}
			var id [20]byte
			if netdoc.DecodeHex(id[:], hex) != nil {
				continue // not a valid $hexid: ignored, as C tor does
			}
			f.IDs = append(f.IDs, id)
			continue
		}
		f.Nicknames = append(f.Nicknames, string(a))
	}
}

// DigestString returns the digest base64-encoded without padding, as in
// consensus "m" lines and /tor/micro/d/ URLs.
func DigestString(d [32]byte) string {
	return base64.RawStdEncoding.EncodeToString(d[:])
}

// MicrodescBatch is the result of ParseRequestedMicrodescs.
type MicrodescBatch struct {
	// Found are the requested microdescriptors present in the response.
	Found []*Microdesc
	// Missing are requested digests absent from the response, including
	// those whose microdescriptor was skipped as malformed.
	Missing [][32]byte
	// Unrequested are digests of microdescriptors in the response that
	// were not requested; they are dropped.
	Unrequested [][32]byte
	// Skipped are the malformed microdescriptors of the response; they
	// are dropped, the others kept (see ParseMicrodescs).
	Skipped []*MicrodescError
}

// ErrUnrequestedMicrodesc is returned (wrapped) when a response contains
// microdescriptors whose digest was not requested.
var ErrUnrequestedMicrodesc = errors.New("response contains microdescriptors that were not requested")

// ParseRequestedMicrodescs parses a response to a request for the given
// digests and keeps only microdescriptors whose computed digest was
// requested; the others are dropped one by one. Malformed ones are
// skipped and listed in the batch's Skipped; missing ones are only listed.
// A response with unrequested ones returns the batch (whose Found are
// good) and an error wrapping ErrUnrequestedMicrodesc. Any other error
// means the response holds no microdescriptor at all, and the batch is
// nil.
func ParseRequestedMicrodescs(doc []byte, requested [][32]byte) (*MicrodescBatch, error) {
	mds, err := ParseMicrodescs(doc)
	b := &MicrodescBatch{}
	if err != nil {
		var sk *SkippedMicrodescsError
		if !errors.As(err, &sk) {
			return nil, err
		}
		b.Skipped = sk.Skipped
	}
	want := make(map[[32]byte]bool, len(requested))
	for _, d := range requested {
		want[d] = false
	}
	for _, md := range mds {
		got, ok := want[md.Digest]
		switch {
		case !ok:
			b.Unrequested = append(b.Unrequested, md.Digest)
		case !got:
			want[md.Digest] = true
			b.Found = append(b.Found, md)
		}
	}
	for _, d := range requested {
		if !want[d] {
			b.Missing = append(b.Missing, d)
			want[d] = true
		}
	}
	if len(b.Unrequested) > 0 {
		return b, errfmt.Errorf("%d of %d microdescriptors, first %s: %w", len(b.Unrequested), len(mds),
			DigestString(b.Unrequested[0]), ErrUnrequestedMicrodesc)
	}
	return b, nil
}
