// Package policy parses and applies C tor's address policies, the syntax
// of the torrc's SocksPolicy and MetricsPortPolicy (and of exit policies):
//
//	accept|reject|accept6|reject6 ADDR[/MASK][:PORTS]
//
// in comma-separated lists over one or more lines. The first rule that
// matches an address decides; what an address no rule matches gets is
// stated by each use (see Unmatched).
package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one policy entry: accept or reject the addresses in Prefix on
// ports PortMin to PortMax.
type Rule struct {
	Accept bool
	// Prefix is the address range. The zero Prefix stands for "*", every
	// address of both families; "*4" is 0.0.0.0/0 and "*6" is ::/0.
	Prefix netip.Prefix
	// PortMin and PortMax bound the ports, 1 and 65535 for "*" or when the
	// entry names no port.
	PortMin, PortMax uint16
}

// Policy is an ordered list of rules; the first matching rule decides.
type Policy []Rule

// Unmatched is what a policy decides for an address no rule matches. C
// tor's manual states it per option.
type Unmatched bool

const (
	// AcceptUnmatched: an address no rule matches is accepted, as for
	// SocksPolicy (C tor adds no final rule, and an address policy accepts
	// what it does not match).
	AcceptUnmatched Unmatched = true
	// RejectUnmatched: an address no rule matches is rejected, as for
	// MetricsPortPolicy (C tor appends "reject *:*" to it).
	RejectUnmatched Unmatched = false
)

// privateNets are the ranges C tor's "private" keyword stands for (C tor
// policies.c private_nets, the list policy_expand_private expands it to),
// in C tor's order. C tor's exit policies also reject the relay's own
// addresses (ExitPolicyRejectPrivate); that is not part of the keyword and
// has no meaning for a client, so it is left out.
var privateNets = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("::/8"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fec0::/10"),
	netip.MustParsePrefix("ff00::/8"),
	netip.MustParsePrefix("::/127"),
}

// Private returns the ranges the "private" keyword expands to.
func Private() []netip.Prefix { return append([]netip.Prefix(nil), privateNets...) }

// Loopback returns the policy tinytor applies to a listener when no policy
// is configured at all: loopback clients only ("accept 127.0.0.0/8,
// accept [::1], reject *").
func Loopback() Policy {
	return Policy{
		{Accept: true, Prefix: netip.MustParsePrefix("127.0.0.0/8"), PortMin: 1, PortMax: 65535},
		{Accept: true, Prefix: netip.MustParsePrefix("::1/128"), PortMin: 1, PortMax: 65535},
		{PortMin: 1, PortMax: 65535},
	}
}

// Contains reports whether addr is in the rule's address range. An
// IPv4-mapped IPv6 address counts as the IPv4 address.
func (r Rule) Contains(addr netip.Addr) bool {
	return !r.Prefix.IsValid() || r.Prefix.Contains(addr.Unmap())
}

// Matches reports whether the rule applies to addr and port.
func (r Rule) Matches(addr netip.Addr, port uint16) bool {
	return port >= r.PortMin && port <= r.PortMax && r.Contains(addr)
}

// AllPorts reports whether the rule covers every port (1-65535).
func (r Rule) AllPorts() bool { return r.PortMin <= 1 && r.PortMax == 65535 }

// Match returns the first rule that applies to addr and port, and false
// if none does.
func (p Policy) Match(addr netip.Addr, port uint16) (Rule, bool) {
	for _, r := range p {
		if r.Matches(addr, port) {
			return r, true
		}
	}
	return Rule{}, false
}

// Allows reports whether a client at addr may connect: the first rule
// whose address range holds addr decides, and unmatched when none does.
// Ports are ignored, as C tor ignores them in SocksPolicy and
// MetricsPortPolicy (it drops them when loading those options).
func (p Policy) Allows(addr netip.Addr, unmatched Unmatched) bool {
	for _, r := range p {
		if r.Contains(addr) {
			return r.Accept
		}
	}
	return bool(unmatched)
}

// CoversAll reports whether some rule matches every address of both
// families, ports aside ("accept *", "reject *", or "*4" and "*6" rules),
// so that what the policy does with unmatched addresses never comes up.
func (p Policy) CoversAll() bool {
	var v4, v6 bool
	for _, r := range p {
		switch {
		case !r.Prefix.IsValid():
			return true
		case r.Prefix.Bits() == 0 && r.Prefix.Addr().Is4():
			v4 = true
		case r.Prefix.Bits() == 0:
			v6 = true
		}
		if v4 && v6 {
			return true
		}
	}
	return false
}

// HasPorts reports whether some rule names ports other than "*".
func (p Policy) HasPorts() bool {
	for _, r := range p {
		if !r.AllPorts() {
			return true
		}
	}
	return false
}

// String formats the rule in torrc syntax: "accept 10.0.0.0/8:1-1023",
// "reject *", "accept [fd00::]/8", "reject 192.168.1.66".
func (r Rule) String() string {
	var sb strings.Builder
	if r.Accept {
		sb.WriteString("accept ")
	} else {
		sb.WriteString("reject ")
	}
	a, bits := r.Prefix.Addr(), r.Prefix.Bits()
	switch {
	case !r.Prefix.IsValid():
		sb.WriteString("*")
	case bits == 0 && a.Is4():
		sb.WriteString("*4")
	case bits == 0:
		sb.WriteString("*6")
	case a.Is4():
		sb.WriteString(a.String())
	default:
		sb.WriteString("[" + a.String() + "]")
	}
	if r.Prefix.IsValid() && bits > 0 && bits < a.BitLen() {
		sb.WriteString("/" + strconv.Itoa(bits))
	}
	switch {
	case r.AllPorts():
	case r.PortMin == r.PortMax:
		sb.WriteString(":" + strconv.Itoa(int(r.PortMin)))
	default:
		sb.WriteString(":" + strconv.Itoa(int(r.PortMin)) + "-" + strconv.Itoa(int(r.PortMax)))
	}
	return sb.String()
}

// String formats the policy as one comma-separated torrc value; Parse
// reads it back to the same rules.
func (p Policy) String() string {
	parts := make([]string, len(p))
	for i, r := range p {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}

// Error is a malformed policy entry: where it is, what it says and why it
// was refused.
type Error struct {
	Line  int    // 1-based line of the text; 0 when the text is one line
	Entry int    // 1-based entry on its line
	Text  string // the entry as written
	Err   error  // why it was refused
}

// Error returns e.g. `entry 2 "accept 10.0.0.0/33": mask /33 is longer
// than the 32 bits of an IPv4 address`.
func (e *Error) Error() string {
	where := ""
	if e.Line > 0 {
		where = fmt.Sprintf("line %d, ", e.Line)
	}
	return fmt.Sprintf("%sentry %d %q: %v", where, e.Entry, e.Text, e.Err)
}

// Unwrap returns the reason.
func (e *Error) Unwrap() error { return e.Err }

const syntax = `want "accept|reject ADDR[/MASK][:PORTS]"`

// Parse parses policy entries in C tor's syntax: one entry
//
//	accept|reject|accept6|reject6 ADDR[/MASK][:PORTS]
//
// or several separated by commas, on one line or several (as several
// torrc lines of one option). ADDR is "*" (every address), "*4", "*6", an
// IPv4 address, an IPv6 address in brackets (C tor also takes one without
// brackets when a mask follows), or "private" (C tor's private ranges, one
// rule each); MASK is a bit count or, for IPv4, a dotted netmask; PORTS is
// "*", a port or a range "N-M". accept6/reject6 entries take IPv6
// addresses only, "*" meaning "*6"; "accept6 private" expands to the IPv4
// ranges too, as in C tor. Blank entries are skipped, as C tor does. The
// verbs are matched without regard to case.
//
// Unlike C tor, which logs a warning and skips an accept6/reject6 entry
// with an IPv4 address, Parse refuses it: a policy guards access and
// should not lose rules quietly.
func Parse(text string) (Policy, error) {
	lines := strings.Split(text, "\n")
	var p Policy
	for ln, line := range lines {
		for i, ent := range strings.Split(line, ",") {
			ent = strings.TrimSpace(ent)
			if ent == "" {
				continue
			}
			rules, err := parseEntry(ent)
			if err != nil {
				e := &Error{Entry: i + 1, Text: ent, Err: err}
				if len(lines) > 1 {
					e.Line = ln + 1
				}
				return nil, e
			}
			p = append(p, rules...)
		}
	}
	return p, nil
}

func parseEntry(ent string) ([]Rule, error) {
	f := strings.Fields(ent)
	switch len(f) {
	case 1:
		return nil, fmt.Errorf("no address: %s", syntax)
	case 2:
	default:
		return nil, fmt.Errorf("unexpected %q after the address: %s", strings.Join(f[2:], " "), syntax)
	}
	var r Rule
	only6 := false
	switch strings.ToLower(f[0]) {
	case "accept":
		r.Accept = true
	case "reject":
	case "accept6":
		r.Accept, only6 = true, true
	case "reject6":
		only6 = true
	default:
		return nil, fmt.Errorf("unknown action %q (want accept, reject, accept6 or reject6)", f[0])
	}
	verb := strings.ToLower(f[0])
	addr, mask, ports, hasMask, err := split(f[1])
	if err != nil {
		return nil, err
	}
	if r.PortMin, r.PortMax, err = parsePorts(ports); err != nil {
		return nil, err
	}
	switch addr {
	case "*", "*4", "*6", "private":
		if hasMask {
			return nil, fmt.Errorf("a mask on %q, which is not an address", addr)
		}
	}
	switch addr {
	case "*":
		if only6 {
			r.Prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return []Rule{r}, nil
	case "*4":
		if only6 {
			return nil, fmt.Errorf("%s with \"*4\": %s takes IPv6 addresses only (use %s)", verb, verb, strings.TrimSuffix(verb, "6"))
		}
		r.Prefix = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		return []Rule{r}, nil
	case "*6":
		r.Prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		return []Rule{r}, nil
	case "private":
		rules := make([]Rule, len(privateNets))
		for i, pfx := range privateNets {
			rules[i] = r
			rules[i].Prefix = pfx
		}
		return rules, nil
	}
	a, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	if only6 && a.Is4() {
		return nil, fmt.Errorf("%s with the IPv4 address %s: %s takes IPv6 addresses only (use %s)", verb, a, verb, strings.TrimSuffix(verb, "6"))
	}
	bits := a.BitLen()
	if hasMask {
		if bits, err = parseMask(mask, a); err != nil {
			return nil, err
		}
	}
	r.Prefix = netip.PrefixFrom(a, bits).Masked()
	return []Rule{r}, nil
}

// split cuts ADDR[/MASK][:PORTS] the way C tor's tor_addr_parse_mask_ports
// does: an IPv6 address is in brackets (or, unbracketed, followed by a
// mask), the mask follows the first '/', the ports the first ':' after the
// brackets or the mask. Brackets are removed from the address.
func split(s string) (addr, mask, ports string, hasMask bool, err error) {
	var rest string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", "", false, fmt.Errorf("no ']' after the IPv6 address in %q", s)
		}
		addr, rest = s[1:end], s[end+1:]
		if rest != "" && rest[0] != '/' && rest[0] != ':' {
			return "", "", "", false, fmt.Errorf("unexpected %q after ']' (want /MASK or :PORTS)", rest)
		}
	} else {
		if a, err := netip.ParseAddr(s); err == nil && a.Is6() {
			return "", "", "", false, fmt.Errorf("IPv6 address in %q must be written in brackets", s)
		}
		cut := strings.IndexByte(s, '/') // "2001:db8::/32": colons before a mask are the address's
		if cut < 0 {
			cut = strings.IndexByte(s, ':')
		}
		if cut < 0 {
			cut = len(s)
		}
		addr, rest = s[:cut], s[cut:]
	}
	if addr == "" {
		return "", "", "", false, fmt.Errorf("no address in %q", s)
	}
	if m, ok := strings.CutPrefix(rest, "/"); ok {
		mask, ports, _ = strings.Cut(m, ":")
		return addr, mask, ports, true, nil
	}
	return addr, "", strings.TrimPrefix(rest, ":"), false, nil
}

// parseAddr parses an IPv4 or IPv6 address (brackets already removed).
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("malformed address %q (want *, *4, *6, private, an IPv4 address or a bracketed IPv6 address)", s)
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("address %q has a zone, which a policy cannot match", s)
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("IPv4-mapped address %q: write it as the IPv4 address %s", s, a.Unmap())
	}
	return a, nil
}

// parseMask parses a mask length, or for IPv4 a dotted netmask such as
// 255.255.0.0 (which must be contiguous), as C tor does.
func parseMask(mask string, a netip.Addr) (int, error) {
	if mask != "" && strings.Trim(mask, "0123456789") == "" {
		n, err := strconv.Atoi(mask)
		if err != nil || n > a.BitLen() {
			return 0, fmt.Errorf("mask /%s is longer than the %d bits of the address %s", mask, a.BitLen(), a)
		}
		return n, nil
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || !m.Is4() {
		return 0, fmt.Errorf("malformed mask %q (want a bit count or, for IPv4, a netmask like 255.255.0.0)", mask)
	}
	if !a.Is4() {
		return 0, fmt.Errorf("netmask %s on the IPv6 address %s (IPv6 masks are bit counts)", mask, a)
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for n < 32 && v&(1<<(31-n)) != 0 {
		n++
	}
	if n < 32 && v<<n != 0 {
		return 0, fmt.Errorf("netmask %s is not contiguous", mask)
	}
	return n, nil
}

// parsePorts parses "", "*", "N" or "N-M" as C tor's parse_port_range: a
// range may start at 0 (taken as 1); a single port may not be 0.
func parsePorts(s string) (lo, hi uint16, err error) {
	if s == "" || s == "*" {
		return 1, 65535, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePort(a, s); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = parsePort(b, s); err != nil {
			return 0, 0, err
		}
		if hi == 0 {
			return 0, 0, fmt.Errorf("port range %q ends at 0", s)
		}
		if lo > hi {
			return 0, 0, fmt.Errorf("port range %q is reversed", s)
		}
	} else if lo == 0 {
		return 0, 0, errors.New("port 0 is not a port")
	}
	return max(lo, 1), hi, nil
}

func parsePort(s, all string) (uint16, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("malformed port %q in %q (want *, a port or a range N-M)", s, all)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %s in %q is above 65535", s, all)
	}
	return uint16(n), nil
}
