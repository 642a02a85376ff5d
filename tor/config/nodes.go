package config

import (
	"net/netip"
	"strconv"
	"strings"

	"tinytor/tor/cstring"
)

// NodeKind says what a NodeSpec matches on.
type NodeKind int

// The kinds of node specifications.
const (
	NodeFingerprint NodeKind = iota // "$HEX" (optionally "$HEX~name" or "$HEX=name")
	NodeNickname                    // a relay nickname
	NodeAddress                     // an address or range "a.b.c.d/n"
)

// NodeSpec is one entry of a node list (EntryNodes, ExitNodes,
// ExcludeNodes, ExcludeExitNodes).
type NodeSpec struct {
	Kind        NodeKind
	Fingerprint [20]byte     // NodeFingerprint
	Nickname    string       // NodeNickname; for NodeFingerprint the optional ~name/=name
	Prefix      netip.Prefix // NodeAddress
}

// NodeList is a comma-separated list of node specifications.
type NodeList []NodeSpec

// isNickname reports whether s is a legal relay nickname: 1 to 19
// characters of [A-Za-z0-9].
func isNickname(s string) bool {
	if len(s) < 1 || len(s) > 19 {
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

// parseNodeList parses a C tor routerset: comma-separated fingerprints
// ("$HEX", with an optional "~nickname" or "=nickname"), nicknames, and
// addresses or address ranges. Country codes ("{xx}") need a GeoIP
// database, which tinytor does not carry, and are rejected.
func parseNodeList(v string) (NodeList, error) {
	var out NodeList
	for _, ent := range strings.Split(v, ",") {
		ent = strings.TrimSpace(ent)
		if ent == "" {
			continue
		}
		n, err := parseNodeSpec(ent)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func parseNodeSpec(ent string) (n NodeSpec, err error) {
	switch {
	case strings.HasPrefix(ent, "{"):
		return n, badValue("country code %q is not supported: tinytor has no GeoIP database; list fingerprints or address ranges instead", ent)
	case strings.HasPrefix(ent, "$") || len(ent) == 40 && isHex(ent):
		h := strings.TrimPrefix(ent, "$")
		if i := strings.IndexAny(h, "~="); i >= 0 {
			h, n.Nickname = h[:i], h[i+1:]
			if !isNickname(n.Nickname) {
				return n, badValue("bad nickname in %q", ent)
			}
		}
		n.Kind = NodeFingerprint
		if n.Fingerprint, err = parseFingerprint(h); err != nil {
			return n, wrapErr("bad node %q", ent, err)
		}
		return n, nil
	case isNickname(ent) && !isAllDigits(ent):
		n.Kind, n.Nickname = NodeNickname, ent
		return n, nil
	}
	a, mask, hasMask := strings.Cut(ent, "/")
	ip, err := parseAddr(a)
	if err != nil || strings.EqualFold(a, "localhost") {
		return n, badValue("bad node %q: not a fingerprint, nickname or address range", ent)
	}
	bits := ip.BitLen()
	if hasMask {
		if bits, err = strconv.Atoi(mask); err != nil || bits < 0 || bits > ip.BitLen() {
			return n, badValue("bad node %q: bad mask "+strconv.Quote(mask), ent)
		}
	}
	n.Kind = NodeAddress
	n.Prefix, _ = ip.Prefix(bits)
	return n, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if cstring.HexDigit(s[i]) < 0 {
			return false
		}
	}
	return true
}

func isAllDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
