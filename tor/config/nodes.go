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

func parseNodeSpec(ent string) (NodeSpec, error) {
	switch {
	case strings.HasPrefix(ent, "{"):
		return NodeSpec{}, badValue("country code %q is not supported: tinytor has no GeoIP database; list fingerprints or address ranges instead", ent)
	case strings.HasPrefix(ent, "$") || len(ent) == 40 && isHex(ent):
		h := strings.TrimPrefix(ent, "$")
		var name string
		if i := strings.IndexAny(h, "~="); i >= 0 {
			h, name = h[:i], h[i+1:]
			if !isNickname(name) {
				return NodeSpec{}, badValue("bad nickname in %q", ent)
			}
		}
		fp, err := parseFingerprint(h)
		if err != nil {
			return NodeSpec{}, wrapErr("bad node %q", ent, err)
		}
		return NodeSpec{Kind: NodeFingerprint, Fingerprint: fp, Nickname: name}, nil
	case isNickname(ent) && !isAllDigits(ent):
		return NodeSpec{Kind: NodeNickname, Nickname: ent}, nil
	}
	a, mask, hasMask := strings.Cut(ent, "/")
	ip, err := parseAddr(a)
	if err != nil || strings.EqualFold(a, "localhost") {
		return NodeSpec{}, badValue("bad node %q: not a fingerprint, nickname or address range", ent)
	}
	bits := ip.BitLen()
	if hasMask {
		n, err := strconv.Atoi(mask)
		if err != nil || n < 0 || n > ip.BitLen() {
			return NodeSpec{}, badValue("bad node %q: bad mask "+strconv.Quote(mask), ent)
		}
		bits = n
	}
	p, _ := ip.Prefix(bits)
	return NodeSpec{Kind: NodeAddress, Prefix: p}, nil
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
