package dir

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"tinytor/tor/dir/netdoc"
)

// Flags is a set of relay status flags from a consensus "s" line. Flags
// this package does not know are dropped.
type Flags uint16

// The known relay flags (dir-spec 3.4.1).
const (
	FlagAuthority Flags = 1 << iota
	FlagBadExit
	FlagExit
	FlagFast
	FlagGuard
	FlagHSDir
	FlagMiddleOnly
	FlagNoEdConsensus
	FlagRunning
	FlagStable
	FlagStaleDesc
	FlagSybil
	FlagV2Dir
	FlagValid
)

var flagNames = [...]string{"Authority", "BadExit", "Exit", "Fast", "Guard", "HSDir",
	"MiddleOnly", "NoEdConsensus", "Running", "Stable", "StaleDesc", "Sybil", "V2Dir", "Valid"}

// flagFromName returns the flag called name, or 0 for unknown flags.
func flagFromName(name []byte) Flags {
	for i, n := range flagNames {
		if string(name) == n {
			return 1 << i
		}
	}
	return 0
}

// Has reports whether all flags in x are set in f.
func (f Flags) Has(x Flags) bool { return f&x == x }

// String lists the flags as in an "s" line.
func (f Flags) String() string {
	var parts []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, " ")
}

// Relay is a client's compact view of one consensus router entry.
type Relay struct {
	// Identity is the relay's RSA identity digest (its fingerprint).
	Identity [20]byte
	// Microdesc is the SHA-256 digest of the relay's microdescriptor.
	Microdesc [32]byte
	Nickname  string
	// Protocols are the relay's supported subprotocols ("pr" line), shared
	// between relays with identical lines. Nil if the line is absent.
	Protocols *Protocols
	// Bandwidth is the consensus weight ("w Bandwidth=").
	Bandwidth uint32
	// IPv4 address and ports from the "r" line.
	Addr    [4]byte
	ORPort  uint16
	DirPort uint16
	// IPv6 and IPv6Port are the first IPv6 "a" line; IPv6Port is 0 if none.
	IPv6       [16]byte
	IPv6Port   uint16
	Flags      Flags
	Unmeasured bool // "w ... Unmeasured=1"
}

// ORAddrPort returns the relay's IPv4 ORPort address.
func (r *Relay) ORAddrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(r.Addr), r.ORPort)
}

// IPv6AddrPort returns the relay's IPv6 ORPort address, if it has one.
func (r *Relay) IPv6AddrPort() (netip.AddrPort, bool) {
	if r.IPv6Port == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(netip.AddrFrom16(r.IPv6), r.IPv6Port), true
}

// Proto is a Tor subprotocol name (tor-spec section 9), as an index.
type Proto uint8

// The subprotocols a client may care about.
const (
	ProtoConflux Proto = iota
	ProtoCons
	ProtoDesc
	ProtoDirCache
	ProtoFlowCtrl
	ProtoHSDir
	ProtoHSIntro
	ProtoHSRend
	ProtoLink
	ProtoLinkAuth
	ProtoMicrodesc
	ProtoPadding
	ProtoRelay
	numProtos
)

var protoNames = [numProtos]string{"Conflux", "Cons", "Desc", "DirCache", "FlowCtrl", "HSDir",
	"HSIntro", "HSRend", "Link", "LinkAuth", "Microdesc", "Padding", "Relay"}

// String returns the protocol's name.
func (p Proto) String() string {
	if p < numProtos {
		return protoNames[p]
	}
	return fmt.Sprintf("Proto(%d)", uint8(p))
}

// MaxProtoVersion is the highest subprotocol version representable
// (C tor's MAX_PROTOCOL_VERSION).
const MaxProtoVersion = 63

// Protocols is a set of supported versions for each known subprotocol.
// Versions of subprotocols not listed in Proto are dropped.
type Protocols [numProtos]uint64

// Supports reports whether version v of protocol p is in the set.
func (ps *Protocols) Supports(p Proto, v int) bool {
	if ps == nil || p >= numProtos || v < 0 || v > MaxProtoVersion {
		return false
	}
	return ps[p]&(1<<uint(v)) != 0
}

// ParseProtocols parses a protocol list like "Link=1-5 LinkAuth=1,3
// Relay=1-4" (dir-spec 2.1.1 "proto").
func ParseProtocols(s string) (Protocols, error) {
	var ps Protocols
	for _, ent := range strings.Fields(s) {
		if err := ps.addEntry([]byte(ent)); err != nil {
			return ps, err
		}
	}
	return ps, nil
}

func (ps *Protocols) addEntry(ent []byte) error {
	eq := bytes.IndexByte(ent, '=')
	if eq <= 0 {
		return netdoc.Reason(nil, "protocol entry %q lacks Name=versions", ent)
	}
	name, vers := ent[:eq], ent[eq+1:]
	idx := -1
	for i, n := range protoNames {
		if string(name) == n {
			idx = i
			break
		}
	}
	var set uint64
	for len(vers) > 0 {
		r, l, h, ok, rest := nextRange(vers, MaxProtoVersion)
		switch {
		case rest != nil && len(rest) == 0:
			return netdoc.Reason(nil, "protocol entry %q: trailing comma", ent)
		case !ok:
			return netdoc.Reason(nil, "protocol entry %q: bad version range %q (versions are 0-63)", ent, r)
		}
		for v := l; v <= h; v++ {
			set |= 1 << uint(v)
		}
		vers = rest
	}
	if idx >= 0 {
		ps[idx] |= set
	}
	return nil
}

var (
	errNotNumber = errors.New("not a decimal number")
	errBadIPv4   = errors.New("bad IPv4 address")
)

// parseUint parses a decimal number no larger than max.
func parseUint(b []byte, max uint64) (uint64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, errNotNumber
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errNotNumber
		}
		d := uint64(c - '0')
		if n > (max-d)/10 {
			return 0, netdoc.Reason(nil, "number %q out of range (max %s)", b, strconv.AppendUint(nil, max, 10))
		}
		n = n*10 + d
	}
	return n, nil
}

// nextRange splits the first element off list, a comma-separated list of
// numbers and ranges ("80", "1000-2000"), and returns it, its bounds, ok
// if it is a number or an ascending range of numbers no larger than max,
// and the rest of the list after the comma: nil after the last element,
// empty (not nil) if the list ends with a comma.
func nextRange(list []byte, max uint64) (elem []byte, lo, hi uint64, ok bool, rest []byte) {
	elem = list
	if i := bytes.IndexByte(list, ','); i >= 0 {
		elem, rest = list[:i], list[i+1:]
	}
	l, h := elem, elem
	if i := bytes.IndexByte(elem, '-'); i >= 0 {
		l, h = elem[:i], elem[i+1:]
	}
	lo, err1 := parseUint(l, max)
	hi, err2 := parseUint(h, max)
	return elem, lo, hi, err1 == nil && err2 == nil && lo <= hi, rest
}

// parseInt32 parses a signed 32-bit decimal number.
func parseInt32(b []byte) (int32, error) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	max := uint64(1<<31 - 1)
	if neg {
		max++
	}
	n, err := parseUint(b, max)
	if err != nil {
		return 0, err
	}
	if neg {
		return int32(-int64(n)), nil
	}
	return int32(n), nil
}

// parseIPv4 parses a dotted-quad IPv4 address (no leading zeros).
func parseIPv4(b []byte) ([4]byte, error) {
	a, err := netip.ParseAddr(string(b))
	if err != nil || !a.Is4() {
		return [4]byte{}, errBadIPv4
	}
	return a.As4(), nil
}

// hexID returns b in upper-case hex, as fingerprints are written.
func hexID(b []byte) []byte {
	out := hex.AppendEncode(make([]byte, 0, 2*len(b)), b)
	for i, c := range out {
		if c >= 'a' {
			out[i] = c - 'a' + 'A'
		}
	}
	return out
}

// parseORAddr parses an "or-address" or "a" line's address and port as
// C tor accepts one: IPv4, or bracketed IPv6 that is not IPv4-mapped and
// has no zone, with a non-zero port.
func parseORAddr(b []byte) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(string(b))
	a := ap.Addr()
	return ap, err == nil && ap.Port() != 0 && a.Zone() == "" && !a.Is4In6()
}
