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

// ParseMicrodescs parses a concatenation of microdescriptors, as served at
// /tor/micro/d/... or stored in C tor's cached-microdescs file (whose
// "@last-listed" annotation lines are skipped). Each microdescriptor
// starts at its "onion-key" item (or, lacking one, at "ntor-onion-key")
// and its digest covers its text up to the next microdescriptor or
// annotation.
func ParseMicrodescs(doc []byte) ([]*Microdesc, error) {
	mds, _, err := parseMicrodescs(doc)
	return mds, err
}

// span is the [start, end) byte range of one microdescriptor's text.
type span struct{ start, end int }

func parseMicrodescs(doc []byte) ([]*Microdesc, []span, error) {
	t := netdoc.NewTokenizer(microdescDoc, doc)
	t.Annotations = true
	policies := map[string]*PortPolicy{}
	families := map[string]*Family{}
	var (
		out      []*Microdesc
		spans    []span
		cur      *Microdesc
		curStart int
		seen     uint8 // bits of onceItems seen in cur
	)
	finish := func(end int) {
		if cur != nil {
			cur.Digest = sha256.Sum256(doc[curStart:end])
			out = append(out, cur)
			spans = append(spans, span{curStart, end})
			cur = nil
		}
	}
	for {
		it, err := t.Next()
		if err == io.EOF {
			finish(len(doc))
			break
		}
		if err != nil {
			return nil, nil, err
		}
		kw := keywordString(it.Keyword)
		if kw == "" {
			finish(it.Start)
			continue
		}
		if kw == "onion-key" || kw == "ntor-onion-key" && (cur == nil || seen&onceBit("ntor-onion-key") != 0) {
			finish(it.Start)
			cur, curStart = &Microdesc{}, it.Start
			seen = 0
		}
		if cur == nil {
			return nil, nil, t.Errorf(&it, "item outside a microdescriptor (expected onion-key first)")
		}
		if bit := onceBit(kw); bit != 0 {
			if seen&bit != 0 {
				return nil, nil, t.Errorf(&it, "appears more than once in a microdescriptor")
			}
			seen |= bit
		}
		switch kw {
		case "onion-key":
			// The TAP key is obsolete; only check it is an RSA key object.
			if string(it.ObjectType) != "RSA PUBLIC KEY" {
				return nil, nil, t.Errorf(&it, "want an RSA PUBLIC KEY object")
			}
		case "ntor-onion-key":
			if len(it.Args) < 1 {
				return nil, nil, t.Errorf(&it, "missing key")
			}
			if err := netdoc.DecodeBase64NoPad(cur.NtorOnionKey[:], it.Args[0]); err != nil {
				return nil, nil, t.Wrap(&it, err)
			}
			cur.HasNtorKey = true
		case "id":
			if len(it.Args) < 2 {
				return nil, nil, t.Errorf(&it, "want key type and value")
			}
			if string(it.Args[0]) == "ed25519" {
				if cur.HasEd25519 {
					return nil, nil, t.Errorf(&it, "more than one ed25519 id")
				}
				if err := netdoc.DecodeBase64NoPad(cur.Ed25519ID[:], it.Args[1]); err != nil {
					return nil, nil, t.Wrap(&it, err)
				}
				cur.HasEd25519 = true
			}
		case "a":
			if len(it.Args) < 1 {
				return nil, nil, t.Errorf(&it, "missing address")
			}
			ap, err := netip.ParseAddrPort(string(it.Args[0]))
			if err != nil {
				return nil, nil, t.Wrap(&it, fmt.Errorf("bad address: %w", err))
			}
			if ap.Addr().Is6() && !cur.IPv6.IsValid() {
				cur.IPv6 = ap
			}
		case "p", "p6":
			line := string(doc[it.Start+len(kw) : it.ArgsEnd])
			pol, ok := policies[line]
			if !ok {
				if pol, err = ParsePortPolicy(it.Args); err != nil {
					return nil, nil, t.Wrap(&it, err)
				}
				policies[line] = pol
			}
			if kw == "p" {
				cur.Policy = pol
			} else {
				cur.Policy6 = pol
			}
		case "family", "family-ids":
			// Both lines are interned together, so key the cache by both.
			line := kw + string(doc[it.Start+len(kw):it.ArgsEnd])
			f, ok := families[line]
			if !ok {
				f = &Family{}
				if err := f.add(kw, it.Args); err != nil {
					return nil, nil, t.Wrap(&it, err)
				}
				families[line] = f
			}
			if cur.Family == nil {
				cur.Family = f
			} else {
				// Rare: both lines present. Merge into a private copy.
				merged := &Family{IDs: cur.Family.IDs, Nicknames: cur.Family.Nicknames, Keys: cur.Family.Keys}
				merged.IDs = append(merged.IDs[:len(merged.IDs):len(merged.IDs)], f.IDs...)
				merged.Nicknames = append(merged.Nicknames[:len(merged.Nicknames):len(merged.Nicknames)], f.Nicknames...)
				merged.Keys = append(merged.Keys[:len(merged.Keys):len(merged.Keys)], f.Keys...)
				cur.Family = merged
			}
		}
	}
	if len(out) == 0 {
		return nil, nil, &netdoc.Error{Doc: microdescDoc, Err: errors.New("no microdescriptor in document")}
	}
	return out, spans, nil
}

// onceItems are the microdescriptor items allowed at most once.
var onceItems = [...]string{"onion-key", "ntor-onion-key", "family", "family-ids", "p", "p6"}

func onceBit(kw string) uint8 {
	for i, k := range onceItems {
		if kw == k {
			return 1 << i
		}
	}
	return 0
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

func (f *Family) add(kw string, args [][]byte) error {
	for _, a := range args {
		if kw == "family-ids" {
			if !bytes.HasPrefix(a, []byte("ed25519:")) {
				continue // unknown key type: ignore
			}
			var k [32]byte
			if err := netdoc.DecodeBase64NoPad(k[:], a[len("ed25519:"):]); err != nil {
				return err
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
	return nil
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
	// Missing are requested digests absent from the response.
	Missing [][32]byte
	// Unrequested are digests of microdescriptors in the response that
	// were not requested; they are dropped.
	Unrequested [][32]byte
}

// ErrUnrequestedMicrodesc is returned (wrapped) when a response contains
// microdescriptors whose digest was not requested.
var ErrUnrequestedMicrodesc = errors.New("response contains microdescriptors that were not requested")

// ParseRequestedMicrodescs parses a response to a request for the given
// digests and keeps only microdescriptors whose computed digest was
// requested. A response with unrequested ones returns the batch and an
// error wrapping ErrUnrequestedMicrodesc; missing ones are only listed.
func ParseRequestedMicrodescs(doc []byte, requested [][32]byte) (*MicrodescBatch, error) {
	mds, err := ParseMicrodescs(doc)
	if err != nil {
		return nil, err
	}
	want := make(map[[32]byte]bool, len(requested))
	for _, d := range requested {
		want[d] = false
	}
	b := &MicrodescBatch{}
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
		return b, fmt.Errorf("%d of %d microdescriptors, first %s: %w", len(b.Unrequested), len(mds),
			DigestString(b.Unrequested[0]), ErrUnrequestedMicrodesc)
	}
	return b, nil
}
