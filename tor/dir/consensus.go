package dir

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
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
	it, err := t.Scan()
	if err == io.EOF {
		return nil, t.FailLine(0, "empty document")
	}
	if err != nil {
		return nil, err
	}
	if !it.Is("network-status-version") || it.Start != 0 {
		return nil, t.Fail(it, "document must start with network-status-version")
	}
	if len(it.Args) < 2 || string(it.Args[0]) != "3" || string(it.Args[1]) != "microdesc" {
		return nil, t.Fail(it, "want \"3 microdesc\" (a microdesc-flavoured consensus)")
	}
	start := it.Start

	// Header.
	var seen uint32
	var cur *DirSource
	for it, err = t.Scan(); err == nil && !endsSection(it); it, err = t.Scan() {
		if err := p.headerItem(it, &seen, &cur); err != nil {
			return nil, err
		}
	}
	if err == io.EOF {
		return nil, t.FailLine(0, "document ends before the footer")
	}
	if err != nil {
		return nil, err
	}
	for i, h := range consensusHeader[:headerRequired] {
		if seen&(1<<i) == 0 {
			return nil, t.Fail(it, "header lacks %s", []byte(h.kw))
		}
	}
	if !c.ValidAfter.Before(c.FreshUntil) || !c.FreshUntil.Before(c.ValidUntil) {
		return nil, t.Errorf(nil, "times out of order: valid-after %s, fresh-until %s, valid-until %s",
			netdoc.Time(c.ValidAfter), netdoc.Time(c.FreshUntil), netdoc.Time(c.ValidUntil))
	}

	// Router entries.
	c.Relays = make([]Relay, 0, bytes.Count(p.doc, []byte("\nr ")))
	for err == nil && it.Is("r") {
		it, err = p.routerEntry(it)
	}
	if err == io.EOF {
		return nil, t.FailLine(0, "document ends before the footer")
	}
	if err != nil {
		return nil, err
	}

	// Footer.
	if it.Is("directory-footer") {
		for it, err = t.Scan(); err == nil && !it.Is("directory-signature"); it, err = t.Scan() {
			switch {
			case it.Is("bandwidth-weights"):
				if c.BandwidthWeights != nil {
					return nil, t.Fail(it, "appears more than once")
				}
				if c.BandwidthWeights, err = parseKeyValues(it.Args); err != nil {
					return nil, t.Wrap(it, err)
				}
			case endsSection(it), it.Is("network-status-version"):
				return nil, t.Fail(it, "not allowed in the footer")
			}
		}
		if err == io.EOF {
			return nil, t.FailLine(0, "document has no directory-signature")
		}
		if err != nil {
			return nil, err
		}
	}
	// it is the first directory-signature: the signed portion ends with
	// the space after its keyword.
	end := it.Start + len("directory-signature")
	if end >= len(p.doc) || p.doc[end] != ' ' {
		return nil, t.Fail(it, "keyword must be followed by a space")
	}
	signed := p.doc[start : end+1]
	c.digestSHA1 = sha1.Sum(signed)
	c.digestSHA256 = sha256.Sum256(signed)
	for ; err == nil; it, err = t.Scan() {
		if !it.Is("directory-signature") {
			return nil, t.Fail(it, "only directory-signature items may follow the first signature")
		}
		if err := p.signature(it); err != nil {
			return nil, err
		}
	}
	if err != io.EOF {
		return nil, err
	}
	return c, nil
}

// endsSection reports whether it starts a router entry or the footer:
// "r", "directory-footer" or "directory-signature".
func endsSection(it *netdoc.Item) bool {
	switch string(it.Keyword) {
	case "r", "directory-footer", "directory-signature":
		return true
	}
	return false
}

// consensusHeader are the header items, with the arguments each needs at
// least (the times' arguments are checked by netdoc.TimeArgs). The first
// headerRequired are required, the first headerOnce allowed once; bit i
// of the seen set of headerItem is consensusHeader[i].
var consensusHeader = [...]struct {
	kw  string
	min int
}{
	{"vote-status", 1}, {"consensus-method", 1}, {"valid-after", 0}, {"fresh-until", 0},
	{"valid-until", 0}, {"voting-delay", 2},
	{"client-versions", 0}, {"server-versions", 0}, {"known-flags", 0},
	{"recommended-client-protocols", 0}, {"required-client-protocols", 0},
	{"recommended-relay-protocols", 0}, {"required-relay-protocols", 0}, {"params", 0},
	{"shared-rand-current-value", 2}, {"shared-rand-previous-value", 2},
	{"dir-source", 6}, {"contact", 0}, {"vote-digest", 1},
}

// Indexes in consensusHeader.
const (
	hVoteStatus = iota
	hMethod
	hValidAfter
	hFreshUntil
	hValidUntil
	hVotingDelay
	hClientVersions
	hServerVersions
	hKnownFlags
	hRecommendedClientProtos
	hRequiredClientProtos
	hRecommendedRelayProtos
	hRequiredRelayProtos
	hParams
	hSRVCurrent
	hSRVPrevious
	hDirSource
	hContact
	hVoteDigest

	headerRequired = hVotingDelay + 1
	headerOnce     = hSRVPrevious + 1
)

// headerItem parses one header item; seen is the set of once-only items
// read so far and cur the last dir-source.
func (p *consensusParser) headerItem(it *netdoc.Item, seen *uint32, cur **DirSource) error {
	t, c := p.t, p.c
	k := -1
	for i := range consensusHeader {
		if it.Is(consensusHeader[i].kw) {
			k = i
			break
		}
	}
	switch {
	case k < 0:
		if it.Is("network-status-version") {
			return t.Fail(it, "appears more than once")
		}
		return nil // unknown items are ignored
	case k < headerOnce && *seen&(1<<k) != 0:
		return t.Fail(it, "appears more than once")
	case len(it.Args) < consensusHeader[k].min:
		return t.Errorf(it, "needs %d arguments, has %d", consensusHeader[k].min, len(it.Args))
	case k >= hContact && *cur == nil:
		return t.Fail(it, "%s before any dir-source", it.Keyword)
	}
	*seen |= 1 << k
	var err error
	switch k {
	case hVoteStatus:
		if string(it.Args[0]) != "consensus" {
			return t.Fail(it, "status %q is not \"consensus\"", it.Args[0])
		}
	case hMethod:
		n, err := parseUint(it.Args[0], 1<<20)
		if err != nil {
			return t.WrapMsg(it, err, "bad method %q", it.Args[0])
		}
		c.Method = int(n)
	case hValidAfter, hFreshUntil, hValidUntil:
		times := [...]*time.Time{&c.ValidAfter, &c.FreshUntil, &c.ValidUntil}
		*times[k-hValidAfter], err = netdoc.TimeArgs(it)
	case hVotingDelay:
		v, err1 := parseUint(it.Args[0], 1<<31)
		d, err2 := parseUint(it.Args[1], 1<<31)
		if err1 != nil || err2 != nil {
			return t.Fail(it, "bad delays %q %q", it.Args[0], it.Args[1])
		}
		c.VoteDelay, c.DistDelay = time.Duration(v)*time.Second, time.Duration(d)*time.Second
	case hClientVersions:
		if len(it.Args) > 0 {
			c.ClientVersions = splitComma(it.Args[0])
		}
	case hKnownFlags:
		for _, a := range it.Args {
			c.KnownFlags = append(c.KnownFlags, string(a))
		}
	case hRecommendedClientProtos, hRequiredClientProtos:
		s := string(bytes.Join(it.Args, []byte(" ")))
		if _, err = ParseProtocols(s); err == nil {
			if k == hRequiredClientProtos {
				c.RequiredClientProtocols = s
			} else {
				c.RecommendedClientProtocols = s
			}
		}
	case hParams:
		c.Params, err = parseKeyValues(it.Args)
	case hSRVCurrent, hSRVPrevious:
		n, err := parseUint(it.Args[0], 1<<31)
		if err != nil {
			return t.Fail(it, "bad NumReveals %q", it.Args[0])
		}
		sr := &SharedRandom{NumReveals: int(n)}
		if err := netdoc.DecodeBase64NoPad(sr.Value[:], it.Args[1]); err != nil {
			return t.Wrap(it, err)
		}
		if k == hSRVCurrent {
			c.SharedRandCurrent = sr
		} else {
			c.SharedRandPrevious = sr
		}
	case hDirSource:
		ds := DirSource{Nickname: string(it.Args[0]), Address: string(it.Args[2])}
		if err := netdoc.DecodeHex(ds.Identity[:], it.Args[1]); err != nil {
			return t.Wrap(it, err)
		}
		if ds.IP, err = netip.ParseAddr(string(it.Args[3])); err != nil {
			return t.WrapMsg(it, err, "bad IP")
		}
		dp, err1 := parseUint(it.Args[4], 65535)
		op, err2 := parseUint(it.Args[5], 65535)
		if err1 != nil || err2 != nil {
			return t.Fail(it, "bad ports %q %q", it.Args[4], it.Args[5])
		}
		ds.DirPort, ds.ORPort = uint16(dp), uint16(op)
		c.Authorities = append(c.Authorities, ds)
		*cur = &c.Authorities[len(c.Authorities)-1]
	case hContact:
		(*cur).Contact = string(bytes.Join(it.Args, []byte(" ")))
	case hVoteDigest:
		err = netdoc.DecodeHex((*cur).VoteDigest[:], it.Args[0])
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
		eq := bytes.IndexByte(a, '=')
		if eq <= 0 {
			return nil, netdoc.Reason(nil, "entry %q is not Key=Value", a)
		}
		v, err := parseInt32(a[eq+1:])
		if err != nil {
			return nil, netdoc.Reason(nil, "entry %q: value is not a 32-bit integer", a)
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
func (p *consensusParser) routerEntry(first *netdoc.Item) (*netdoc.Item, error) {
	t, c := p.t, p.c
	r := *first // first is the tokenizer's: keep the r line for errors
	if r.HasObject() {
		return nil, t.Fail(&r, "unexpected object %q in a router entry", r.ObjectType)
	}
	if len(r.Args) < 7 {
		return nil, t.Errorf(&r, "needs 7 arguments (nickname identity date time IP ORPort DirPort), has %d", len(r.Args))
	}
	var rel Relay
	nick := r.Args[0]
	if !legalNickname(nick) {
		return nil, t.Fail(&r, "bad nickname %q (want 1 to 19 letters and digits)", nick)
	}
	if err := netdoc.DecodeBase64NoPad(rel.Identity[:], r.Args[1]); err != nil {
		return nil, t.WrapMsg(&r, err, "identity")
	}
	if !validTime(r.Args[2], r.Args[3]) {
		return nil, t.Fail(&r, "bad publication time %q %q", r.Args[2], r.Args[3])
	}
	var err error
	if rel.Addr, err = parseIPv4(r.Args[4]); err != nil {
		return nil, t.Fail(&r, "bad IPv4 address %q", r.Args[4])
	}
	op, err1 := parseUint(r.Args[5], 65535)
	dp, err2 := parseUint(r.Args[6], 65535)
	if err1 != nil || err2 != nil {
		return nil, t.Fail(&r, "bad ports %q %q", r.Args[5], r.Args[6])
	}
	rel.Nickname = string(nick)
	rel.ORPort, rel.DirPort = uint16(op), uint16(dp)
	if p.haveLast && bytes.Compare(p.lastID[:], rel.Identity[:]) >= 0 {
		return nil, t.Fail(&r, "router entries not sorted by identity (or duplicate)")
	}
	p.lastID, p.haveLast = rel.Identity, true
	var seen uint8 // bit i: entryItems[i] seen
	var it *netdoc.Item
	for it, err = t.Scan(); err == nil && !endsSection(it); it, err = t.Scan() {
		k := -1
		for i := range entryItems {
			if it.Is(entryItems[i].kw) {
				k = i
				break
			}
		}
		switch {
		case k < 0:
			switch string(it.Keyword) {
			case "network-status-version", "dir-source", "valid-after", "bandwidth-weights":
				return nil, t.Fail(it, "not allowed in a router entry")
			}
			continue // unknown items are ignored
		case it.HasObject():
			return nil, t.Fail(it, "unexpected object %q in a router entry", it.ObjectType)
		case k < entryOnce && seen&(1<<k) != 0:
			return nil, t.Fail(it, "appears more than once in a router entry")
		case len(it.Args) < entryItems[k].min:
			return nil, t.Fail(it, entryItems[k].few)
		case k == eM && seen&(1<<eM) != 0:
			continue // C tor uses the first m line
		}
		seen |= 1 << k
		switch k {
		case eA:
			// As C tor's find_single_ipv6_orport: the first IPv6 address
			// with one port counts, anything else is ignored.
			if ap, ok := parseORAddr(it.Args[0]); ok && ap.Addr().Is6() && rel.IPv6Port == 0 {
				rel.IPv6, rel.IPv6Port = ap.Addr().As16(), ap.Port()
			}
		case eS:
			for _, f := range it.Args {
				rel.Flags |= flagFromName(f) // unknown flags are ignored
			}
		case ePr:
			line := p.doc[it.Start+len("pr") : it.ArgsEnd]
			ps, ok := p.protos[string(line)]
			if !ok {
				ps = new(Protocols)
				for _, a := range it.Args {
					if err := ps.addEntry(a); err != nil {
						return nil, t.Wrap(it, err)
					}
				}
				p.protos[string(line)] = ps
			}
			rel.Protocols = ps
		case eW:
			for _, a := range it.Args {
				switch {
				case bytes.HasPrefix(a, []byte("Bandwidth=")):
					bw, err := parseUint(a[len("Bandwidth="):], 1<<32-1)
					if err != nil {
						return nil, t.WrapMsg(it, err, "bad %q", a)
					}
					rel.Bandwidth = uint32(bw)
				case string(a) == "Unmeasured=1":
					rel.Unmeasured = true
				}
			}
		case eM:
			if err := netdoc.DecodeBase64NoPad(rel.Microdesc[:], it.Args[0]); err != nil {
				return nil, t.Wrap(it, err)
			}
		case eP:
			// Not in a microdesc consensus, but C tor checks it if present.
			if string(it.Args[0]) != "accept" && string(it.Args[0]) != "reject" {
				return nil, t.Fail(it, entryItems[eP].few)
			}
		}
	}
	if err != nil {
		return it, err
	}
	for _, k := range [...]int{eS, ePr} {
		if seen&(1<<k) == 0 {
			return nil, t.Fail(&r, "router entry for %q has no \"%s\" line", nick, []byte(entryItems[k].kw))
		}
	}
	if seen&(1<<eM) == 0 {
		c.Dropped = append(c.Dropped, t.Fail(&r, "router entry for %q has no \"m\" line: dropped", nick))
		return it, nil
	}
	c.Relays = append(c.Relays, rel)
	return it, nil
}

// entryItems are the items of a router entry that routerEntry reads, with
// the arguments each needs at least and the error if it has fewer. The
// first entryOnce are allowed once per entry.
var entryItems = [...]struct {
	kw, few string
	min     int
}{
	{"s", "", 0}, {"v", "", 0}, {"pr", "", 0}, {"w", "", 0},
	{"p", "unknown exit policy summary type", 2},
	{"m", "missing digest", 1}, {"a", "missing address", 1}, {"id", "want key type and value", 2},
}

// Indexes in entryItems.
const (
	eS = iota
	eV
	ePr
	eW
	eP
	eM
	eA
	eID

	entryOnce = eP + 1
)

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
	var v [6]int // year, month, day, hour, minute, second
	for i, f := range [6][]byte{date[:4], date[5:7], date[8:], clock[:2], clock[3:5], clock[6:]} {
		for _, c := range f {
			if c < '0' || c > '9' {
				return false
			}
			v[i] = v[i]*10 + int(c-'0')
		}
	}
	return v[0] >= 1970 && v[1] >= 1 && v[1] <= 12 && v[2] >= 1 && v[2] <= 31 &&
		v[3] <= 23 && v[4] <= 59 && v[5] <= 60
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
		return t.WrapMsg(it, err, "identity")
	}
	if err := netdoc.DecodeHex(sig.SigningKeyDigest[:], args[1]); err != nil {
		return t.WrapMsg(it, err, "signing-key-digest")
	}
	var err error
	if sig.Signature, err = t.ObjectOf(it, "SIGNATURE"); err != nil {
		return err
	}
	p.c.Signatures = append(p.c.Signatures, sig)
	return nil
}
