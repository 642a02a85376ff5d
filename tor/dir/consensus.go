package dir

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"time"

	"tinytor/tor/dir/netdoc"
)

// Consensus is a parsed microdesc-flavoured network-status consensus
// (dir-spec 3.4.1 and 3.9.2). It does not retain the document text.
type Consensus struct {
	Method     int
	ValidAfter time.Time
	FreshUntil time.Time
	ValidUntil time.Time
	VoteDelay  time.Duration // "voting-delay" VoteSeconds
	DistDelay  time.Duration // "voting-delay" DistSeconds

	ClientVersions []string
	KnownFlags     []string
	// The protocol lines, verbatim (parse with ParseProtocols).
	RecommendedClientProtocols string
	RequiredClientProtocols    string
	// Params holds the "params" line; see Param.
	Params map[string]int32
	// SharedRandCurrent and SharedRandPrevious are nil when absent.
	SharedRandCurrent  *SharedRandom
	SharedRandPrevious *SharedRandom
	// Authorities lists the dir-source entries.
	Authorities []DirSource
	// Relays are sorted by identity.
	Relays []Relay
	// Dropped lists the router entries dropped while the rest of the
	// consensus was kept (an entry without an "m" line), each a
	// *netdoc.Error naming its "r" line.
	Dropped []error
	// BandwidthWeights holds the "bandwidth-weights" line (Wgg, Wmd, ...).
	BandwidthWeights map[string]int32
	Signatures       []Signature

	digestSHA1   [20]byte // SHA-1 of the signed portion
	digestSHA256 [32]byte // SHA-256 of the signed portion
}

// SharedRandom is a shared-rand-current-value or -previous-value line.
type SharedRandom struct {
	NumReveals int
	Value      [32]byte
}

// DirSource is an authority section of the consensus header.
type DirSource struct {
	Nickname   string
	Identity   [20]byte
	Address    string
	IP         netip.Addr
	DirPort    uint16
	ORPort     uint16
	Contact    string
	VoteDigest [20]byte
}

// Signature is one directory-signature of the footer.
type Signature struct {
	// Algorithm is "sha1" or "sha256" (others are kept, but never valid).
	Algorithm        string
	Identity         [20]byte // the authority's v3ident
	SigningKeyDigest [20]byte
	Signature        []byte
}

// Param returns consensus parameter name, or def if absent, clamped to
// [min, max] as C tor does.
func (c *Consensus) Param(name string, def, min, max int32) int32 {
	v, ok := c.Params[name]
	if !ok {
		return def
	}
	if v < min {
		return min
	}
	if v > max {
		return max
	}
	return v
}

// RelayByID returns the relay with the given identity, or nil.
func (c *Consensus) RelayByID(id [20]byte) *Relay {
	i := sort.Search(len(c.Relays), func(i int) bool {
		return bytes.Compare(c.Relays[i].Identity[:], id[:]) >= 0
	})
	if i < len(c.Relays) && c.Relays[i].Identity == id {
		return &c.Relays[i]
	}
	return nil
}

// ReasonablyLiveTime is how long after valid-until a client still uses a
// consensus (dir-spec 5.1, C tor's REASONABLY_LIVE_TIME).
const ReasonablyLiveTime = 24 * time.Hour

// Live reports whether now lies in [valid-after, valid-until], allowing
// skew either way.
func (c *Consensus) Live(now time.Time, skew time.Duration) bool {
	return !now.Before(c.ValidAfter.Add(-skew)) && !now.After(c.ValidUntil.Add(skew))
}

// Usable reports whether the consensus may be used at now: it is valid
// already (allowing skew) and expired less than ReasonablyLiveTime ago.
func (c *Consensus) Usable(now time.Time, skew time.Duration) bool {
	return !now.Before(c.ValidAfter.Add(-skew)) && !now.After(c.ValidUntil.Add(ReasonablyLiveTime))
}

const consensusDoc = "consensus"

// ParseConsensus parses a microdesc-flavoured consensus. Signatures are
// not checked: call Verify.
func ParseConsensus(doc []byte) (*Consensus, error) {
	p := consensusParser{t: netdoc.NewTokenizer(consensusDoc, doc), doc: doc,
		protos: map[string]*Protocols{}}
	c, err := p.parse()
	if err != nil {
		return nil, err
	}
	return c, nil
}

type consensusParser struct {
	t      *netdoc.Tokenizer
	doc    []byte
	c      *Consensus
	protos map[string]*Protocols // interned "pr" lines
	// lastID is the identity of the last router entry (kept or dropped),
	// for the order check; haveLast is false before the first.
	lastID   [20]byte
	haveLast bool
}

func (p *consensusParser) parse() (*Consensus, error) {
	t := p.t
	c := &Consensus{}
	p.c = c
	it, err := t.Next()
	if err == io.EOF {
		return nil, &netdoc.Error{Doc: consensusDoc, Err: errors.New("empty document")}
	}
	if err != nil {
		return nil, err
	}
	if !it.Is("network-status-version") || it.Start != 0 {
		return nil, t.Errorf(&it, "document must start with network-status-version")
	}
	if len(it.Args) < 2 || string(it.Args[0]) != "3" || string(it.Args[1]) != "microdesc" {
		return nil, t.Errorf(&it, "want \"3 microdesc\" (a microdesc-flavoured consensus)")
	}
	start := it.Start

	// Header.
	seen := map[string]bool{}
	var cur *DirSource
	it, err = t.Next()
	for ; err == nil; it, err = t.Next() {
		kw := string(it.Keyword)
		if kw == "r" || kw == "directory-footer" || kw == "directory-signature" {
			break
		}
		if kw != "dir-source" && kw != "contact" && kw != "vote-digest" {
			if seen[kw] && isKnownHeader(kw) {
				return nil, t.Errorf(&it, "appears more than once")
			}
			seen[kw] = true
		}
		if err := p.headerItem(&it, &cur); err != nil {
			return nil, err
		}
	}
	if err == io.EOF {
		return nil, &netdoc.Error{Doc: consensusDoc, Err: errors.New("document ends before the footer")}
	}
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"vote-status", "consensus-method", "valid-after", "fresh-until", "valid-until", "voting-delay"} {
		if !seen[k] {
			return nil, t.Errorf(&it, "header lacks %s", k)
		}
	}
	if !c.ValidAfter.Before(c.FreshUntil) || !c.FreshUntil.Before(c.ValidUntil) {
		return nil, &netdoc.Error{Doc: consensusDoc, Err: fmt.Errorf("times out of order: valid-after %s, fresh-until %s, valid-until %s",
			c.ValidAfter.Format(netdoc.TimeLayout), c.FreshUntil.Format(netdoc.TimeLayout), c.ValidUntil.Format(netdoc.TimeLayout))}
	}

	// Router entries.
	c.Relays = make([]Relay, 0, bytes.Count(p.doc, []byte("\nr ")))
	for err == nil && it.Is("r") {
		it, err = p.routerEntry(it)
	}
	if err == io.EOF {
		return nil, &netdoc.Error{Doc: consensusDoc, Err: errors.New("document ends before the footer")}
	}
	if err != nil {
		return nil, err
	}

	// Footer.
	if it.Is("directory-footer") {
		it, err = t.Next()
		for ; err == nil && !it.Is("directory-signature"); it, err = t.Next() {
			switch {
			case it.Is("bandwidth-weights"):
				if c.BandwidthWeights != nil {
					return nil, t.Errorf(&it, "appears more than once")
				}
				if c.BandwidthWeights, err = parseKeyValues(it.Args); err != nil {
					return nil, t.Wrap(&it, err)
				}
			case it.Is("r"), it.Is("directory-footer"), it.Is("network-status-version"):
				return nil, t.Errorf(&it, "not allowed in the footer")
			}
		}
		if err == io.EOF {
			return nil, &netdoc.Error{Doc: consensusDoc, Err: errors.New("document has no directory-signature")}
		}
		if err != nil {
			return nil, err
		}
	}
	// it is the first directory-signature: the signed portion ends with
	// the space after its keyword.
	end := it.Start + len("directory-signature")
	if end >= len(p.doc) || p.doc[end] != ' ' {
		return nil, t.Errorf(&it, "keyword must be followed by a space")
	}
	signed := p.doc[start : end+1]
	c.digestSHA1 = sha1.Sum(signed)
	c.digestSHA256 = sha256.Sum256(signed)
	for ; err == nil; it, err = t.Next() {
		if !it.Is("directory-signature") {
			return nil, t.Errorf(&it, "only directory-signature items may follow the first signature")
		}
		if err := p.signature(&it); err != nil {
			return nil, err
		}
	}
	if err != io.EOF {
		return nil, err
	}
	return c, nil
}

func isKnownHeader(kw string) bool {
	switch kw {
	case "vote-status", "consensus-method", "valid-after", "fresh-until", "valid-until",
		"voting-delay", "client-versions", "server-versions", "known-flags",
		"recommended-client-protocols", "required-client-protocols",
		"recommended-relay-protocols", "required-relay-protocols", "params",
		"shared-rand-current-value", "shared-rand-previous-value":
		return true
	}
	return false
}

func (p *consensusParser) headerItem(it *netdoc.Item, cur **DirSource) error {
	t, c := p.t, p.c
	var err error
	need := func(n int) error {
		if len(it.Args) < n {
			return t.Errorf(it, "needs %d arguments, has %d", n, len(it.Args))
		}
		return nil
	}
	switch string(it.Keyword) {
	case "vote-status":
		if err := need(1); err != nil {
			return err
		}
		if string(it.Args[0]) != "consensus" {
			return t.Errorf(it, "status %q is not \"consensus\"", it.Args[0])
		}
	case "consensus-method":
		if err := need(1); err != nil {
			return err
		}
		n, err := parseUint(it.Args[0], 1<<20)
		if err != nil {
			return t.Wrap(it, fmt.Errorf("bad method %q: %w", it.Args[0], err))
		}
		c.Method = int(n)
	case "valid-after":
		c.ValidAfter, err = netdoc.TimeArgs(it)
	case "fresh-until":
		c.FreshUntil, err = netdoc.TimeArgs(it)
	case "valid-until":
		c.ValidUntil, err = netdoc.TimeArgs(it)
	case "voting-delay":
		if err := need(2); err != nil {
			return err
		}
		v, err1 := parseUint(it.Args[0], 1<<31)
		d, err2 := parseUint(it.Args[1], 1<<31)
		if err1 != nil || err2 != nil {
			return t.Errorf(it, "bad delays %q %q", it.Args[0], it.Args[1])
		}
		c.VoteDelay, c.DistDelay = time.Duration(v)*time.Second, time.Duration(d)*time.Second
	case "client-versions":
		if len(it.Args) > 0 {
			c.ClientVersions = splitComma(it.Args[0])
		}
	case "known-flags":
		for _, a := range it.Args {
			c.KnownFlags = append(c.KnownFlags, string(a))
		}
	case "recommended-client-protocols", "required-client-protocols":
		s := string(bytes.Join(it.Args, []byte(" ")))
		if _, err := ParseProtocols(s); err != nil {
			return t.Wrap(it, err)
		}
		if it.Is("required-client-protocols") {
			c.RequiredClientProtocols = s
		} else {
			c.RecommendedClientProtocols = s
		}
	case "params":
		c.Params, err = parseKeyValues(it.Args)
	case "shared-rand-current-value", "shared-rand-previous-value":
		if err := need(2); err != nil {
			return err
		}
		n, err := parseUint(it.Args[0], 1<<31)
		if err != nil {
			return t.Errorf(it, "bad NumReveals %q", it.Args[0])
		}
		sr := &SharedRandom{NumReveals: int(n)}
		if err := netdoc.DecodeBase64NoPad(sr.Value[:], it.Args[1]); err != nil {
			return t.Wrap(it, err)
		}
		if it.Is("shared-rand-current-value") {
			c.SharedRandCurrent = sr
		} else {
			c.SharedRandPrevious = sr
		}
	case "dir-source":
		if err := need(6); err != nil {
			return err
		}
		ds := DirSource{Nickname: string(it.Args[0]), Address: string(it.Args[2])}
		if err := netdoc.DecodeHex(ds.Identity[:], it.Args[1]); err != nil {
			return t.Wrap(it, err)
		}
		if ds.IP, err = netip.ParseAddr(string(it.Args[3])); err != nil {
			return t.Wrap(it, fmt.Errorf("bad IP: %w", err))
		}
		dp, err1 := parseUint(it.Args[4], 65535)
		op, err2 := parseUint(it.Args[5], 65535)
		if err1 != nil || err2 != nil {
			return t.Errorf(it, "bad ports %q %q", it.Args[4], it.Args[5])
		}
		ds.DirPort, ds.ORPort = uint16(dp), uint16(op)
		c.Authorities = append(c.Authorities, ds)
		*cur = &c.Authorities[len(c.Authorities)-1]
	case "contact":
		if *cur == nil {
			return t.Errorf(it, "contact before any dir-source")
		}
		(*cur).Contact = string(bytes.Join(it.Args, []byte(" ")))
	case "vote-digest":
		if *cur == nil {
			return t.Errorf(it, "vote-digest before any dir-source")
		}
		if err := need(1); err != nil {
			return err
		}
		if err := netdoc.DecodeHex((*cur).VoteDigest[:], it.Args[0]); err != nil {
			return t.Wrap(it, err)
		}
	case "network-status-version":
		return t.Errorf(it, "appears more than once")
	}
	if err != nil {
		return t.Wrap(it, err)
	}
	return nil
}

func splitComma(b []byte) []string {
	var out []string
	for _, part := range bytes.Split(b, []byte(",")) {
		if len(part) > 0 {
			out = append(out, string(part))
		}
	}
	return out
}

// parseKeyValues parses "Key=Int32" arguments (params, bandwidth-weights).
func parseKeyValues(args [][]byte) (map[string]int32, error) {
	m := make(map[string]int32, len(args))
	for _, a := range args {
		eq := indexByte(a, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("entry %q is not Key=Value", a)
		}
		v, err := parseInt32(a[eq+1:])
		if err != nil {
			return nil, fmt.Errorf("entry %q: value is not a 32-bit integer", a)
		}
		m[string(a[:eq])] = v
	}
	return m, nil
}

// routerEntry parses one router entry starting at the "r" item and returns
// the item following it. It follows C tor's
// routerstatus_parse_entry_from_string (ns_parse.c): what C tor rejects
// rejects the whole consensus, as there (a bad r line, a missing or
// repeated s or pr, a repeated v, w or p, a pr or Bandwidth= that does not
// parse, a bad m digest, an object after a known item); what C tor
// ignores is ignored (unknown items and flags, unknown w entries, a lines
// that are not one IPv6 address and port, m lines after the first). An
// entry with no m line, which C tor keeps without a microdescriptor
// digest (it can never be used), is dropped alone and reported in
// Consensus.Dropped.
func (p *consensusParser) routerEntry(r netdoc.Item) (netdoc.Item, error) {
	t, c := p.t, p.c
	if r.HasObject() {
		return r, t.Errorf(&r, "unexpected object %q in a router entry", r.ObjectType)
	}
	if len(r.Args) < 7 {
		return r, t.Errorf(&r, "needs 7 arguments (nickname identity date time IP ORPort DirPort), has %d", len(r.Args))
	}
	var rel Relay
	nick := r.Args[0]
	if !legalNickname(nick) {
		return r, t.Errorf(&r, "bad nickname %q (want 1 to 19 letters and digits)", nick)
	}
	if err := netdoc.DecodeBase64NoPad(rel.Identity[:], r.Args[1]); err != nil {
		return r, t.Wrap(&r, fmt.Errorf("identity: %w", err))
	}
	if !validTime(r.Args[2], r.Args[3]) {
		return r, t.Errorf(&r, "bad publication time %q %q", r.Args[2], r.Args[3])
	}
	var err error
	if rel.Addr, err = parseIPv4(r.Args[4]); err != nil {
		return r, t.Errorf(&r, "bad IPv4 address %q", r.Args[4])
	}
	op, err1 := parseUint(r.Args[5], 65535)
	dp, err2 := parseUint(r.Args[6], 65535)
	if err1 != nil || err2 != nil {
		return r, t.Errorf(&r, "bad ports %q %q", r.Args[5], r.Args[6])
	}
	rel.Nickname = string(nick)
	rel.ORPort, rel.DirPort = uint16(op), uint16(dp)
	if p.haveLast && bytes.Compare(p.lastID[:], rel.Identity[:]) >= 0 {
		return r, t.Errorf(&r, "router entries not sorted by identity (or duplicate)")
	}
	p.lastID, p.haveLast = rel.Identity, true
	var seen uint8
	const (
		seenS = 1 << iota
		seenV
		seenPr
		seenW
		seenM
		seenP
	)
	once := func(it *netdoc.Item, bit uint8) error {
		if seen&bit != 0 {
			return t.Errorf(it, "appears more than once in a router entry")
		}
		seen |= bit
		return nil
	}
	var it netdoc.Item
	for {
		it, err = t.Next()
		if err != nil {
			break
		}
		kw := it.Keyword
		if len(kw) == 1 && kw[0] == 'r' || string(kw) == "directory-footer" || string(kw) == "directory-signature" {
			break
		}
		switch string(kw) {
		case "a", "s", "v", "pr", "w", "m", "p", "id":
			if it.HasObject() {
				return it, t.Errorf(&it, "unexpected object %q in a router entry", it.ObjectType)
			}
		}
		switch string(kw) {
		case "a":
			if len(it.Args) < 1 {
				return it, t.Errorf(&it, "missing address")
			}
			// As C tor's find_single_ipv6_orport: the first IPv6 address
			// with one port counts, anything else is ignored.
			ap, perr := netip.ParseAddrPort(string(it.Args[0]))
			if perr == nil && ap.Addr().Is6() && !ap.Addr().Is4In6() && ap.Addr().Zone() == "" && rel.IPv6Port == 0 && ap.Port() != 0 {
				rel.IPv6 = ap.Addr().As16()
				rel.IPv6Port = ap.Port()
			}
		case "s":
			if err := once(&it, seenS); err != nil {
				return it, err
			}
			for _, f := range it.Args {
				rel.Flags |= flagFromName(f) // unknown flags are ignored
			}
		case "v":
			if err := once(&it, seenV); err != nil {
				return it, err
			}
		case "pr":
			if err := once(&it, seenPr); err != nil {
				return it, err
			}
			line := p.doc[it.Start+len("pr") : it.ArgsEnd]
			ps, ok := p.protos[string(line)]
			if !ok {
				ps = new(Protocols)
				for _, a := range it.Args {
					if err := ps.addEntry(a); err != nil {
						return it, t.Wrap(&it, err)
					}
				}
				p.protos[string(line)] = ps
			}
			rel.Protocols = ps
		case "w":
			if err := once(&it, seenW); err != nil {
				return it, err
			}
			for _, a := range it.Args {
				switch {
				case bytes.HasPrefix(a, []byte("Bandwidth=")):
					bw, err := parseUint(a[len("Bandwidth="):], 1<<32-1)
					if err != nil {
						return it, t.Errorf(&it, "bad %q: %v", a, err)
					}
					rel.Bandwidth = uint32(bw)
				case string(a) == "Unmeasured=1":
					rel.Unmeasured = true
				}
			}
		case "m":
			if len(it.Args) < 1 {
				return it, t.Errorf(&it, "missing digest")
			}
			if seen&seenM != 0 {
				break // C tor uses the first m line
			}
			seen |= seenM
			if err := netdoc.DecodeBase64NoPad(rel.Microdesc[:], it.Args[0]); err != nil {
				return it, t.Wrap(&it, err)
			}
		case "p":
			// Not in a microdesc consensus, but C tor checks it if present.
			if err := once(&it, seenP); err != nil {
				return it, err
			}
			if len(it.Args) < 2 || string(it.Args[0]) != "accept" && string(it.Args[0]) != "reject" {
				return it, t.Errorf(&it, "unknown exit policy summary type")
			}
		case "id":
			if len(it.Args) < 2 {
				return it, t.Errorf(&it, "want key type and value")
			}
		case "network-status-version", "dir-source", "valid-after", "bandwidth-weights":
			return it, t.Errorf(&it, "not allowed in a router entry")
		}
	}
	if err == io.EOF {
		return it, err
	}
	if err != nil {
		return it, err
	}
	if seen&seenS == 0 {
		return it, t.Errorf(&r, "router entry for %q has no \"s\" line", nick)
	}
	if seen&seenPr == 0 {
		return it, t.Errorf(&r, "router entry for %q has no \"pr\" line", nick)
	}
	if seen&seenM == 0 {
		c.Dropped = append(c.Dropped, t.Errorf(&r, "router entry for %q has no \"m\" line: dropped", nick))
		return it, nil
	}
	c.Relays = append(c.Relays, rel)
	return it, nil
}

// legalNickname reports whether b is a relay nickname: 1 to 19 ASCII
// letters and digits (C tor's is_legal_nickname).
func legalNickname(b []byte) bool {
	if len(b) == 0 || len(b) > 19 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validTime reports whether date and clock form a valid "YYYY-MM-DD
// HH:MM:SS" time, as C tor's parse_iso_time checks it, without
// allocating.
func validTime(date, clock []byte) bool {
	if len(date) != 10 || len(clock) != 8 || date[4] != '-' || date[7] != '-' || clock[2] != ':' || clock[5] != ':' {
		return false
	}
	num := func(b []byte) int {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, mo, d := num(date[:4]), num(date[5:7]), num(date[8:])
	h, mi, sec := num(clock[:2]), num(clock[3:5]), num(clock[6:])
	return y >= 1970 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 &&
		h >= 0 && h <= 23 && mi >= 0 && mi <= 59 && sec >= 0 && sec <= 60
}

func (p *consensusParser) signature(it *netdoc.Item) error {
	t := p.t
	args := it.Args
	sig := Signature{Algorithm: "sha1"}
	switch len(args) {
	case 2:
	case 3:
		sig.Algorithm = string(args[0])
		args = args[1:]
	default:
		return t.Errorf(it, "want [algorithm] identity signing-key-digest, got %d arguments", len(args))
	}
	if err := netdoc.DecodeHex(sig.Identity[:], args[0]); err != nil {
		return t.Wrap(it, fmt.Errorf("identity: %w", err))
	}
	if err := netdoc.DecodeHex(sig.SigningKeyDigest[:], args[1]); err != nil {
		return t.Wrap(it, fmt.Errorf("signing-key-digest: %w", err))
	}
	if string(it.ObjectType) != "SIGNATURE" {
		return t.Errorf(it, "want a SIGNATURE object, got %q", it.ObjectType)
	}
	var err error
	if sig.Signature, err = it.Object(); err != nil {
		return t.Wrap(it, err)
	}
	p.c.Signatures = append(p.c.Signatures, sig)
	return nil
}
