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
var privateNets = prefixes("0.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8", "192.168.0.0/16", "10.0.0.0/8", "172.16.0.0/12",
	"::/8", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "::/127")

// prefixes parses the CIDR prefixes s, which must be valid.
func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// Loopback returns the policy tinytor applies to a listener when no policy
// is configured at all: loopback clients only ("accept 127.0.0.0/8,
// accept [::1], reject *").
func Loopback() Policy {
	all := Rule{PortMin: 1, PortMax: 65535}
	p := Policy{all, all, all}
	p[0].Accept, p[0].Prefix = true, netip.MustParsePrefix("127.0.0.0/8")
	p[1].Accept, p[1].Prefix = true, netip.MustParsePrefix("::1/128")
	return p
}

// Contains reports whether addr is in the rule's address range. An
// IPv4-mapped IPv6 address counts as the IPv4 address.
func (r Rule) Contains(addr netip.Addr) bool {
	return !r.Prefix.IsValid() || r.Prefix.Contains(addr.Unmap())
}

// AllPorts reports whether the rule covers every port (1-65535).
func (r Rule) AllPorts() bool { return r.PortMin <= 1 && r.PortMax == 65535 }

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
func (r Rule) String() string { return string(r.appendTo(nil)) }

func (r Rule) appendTo(b []byte) []byte {
	if r.Accept {
		b = append(b, "accept "...)
	} else {
		b = append(b, "reject "...)
	}
	a, bits := r.Prefix.Addr(), r.Prefix.Bits()
	switch {
	case !r.Prefix.IsValid():
		b = append(b, '*')
	case bits == 0 && a.Is4():
		b = append(b, "*4"...)
	case bits == 0:
		b = append(b, "*6"...)
	case a.Is4():
		b = a.AppendTo(b)
	default:
		b = append(a.AppendTo(append(b, '[')), ']')
	}
	if bits > 0 && bits < a.BitLen() {
		b = strconv.AppendInt(append(b, '/'), int64(bits), 10)
	}
	if !r.AllPorts() {
		b = strconv.AppendUint(append(b, ':'), uint64(r.PortMin), 10)
		if r.PortMax != r.PortMin {
			b = strconv.AppendUint(append(b, '-'), uint64(r.PortMax), 10)
		}
	}
	return b
}

// String formats the policy as one comma-separated torrc value; Parse
// reads it back to the same rules.
func (p Policy) String() string {
	var b []byte
	for i, r := range p {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = r.appendTo(b)
	}
	return string(b)
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
		where = "line " + strconv.Itoa(e.Line) + ", "
	}
	return where + "entry " + strconv.Itoa(e.Entry) + " " + strconv.Quote(e.Text) + ": " + e.Err.Error()
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
		return nil, errors.New("no address: " + syntax)
	case 2:
	default:
		return nil, errorf("unexpected %q after the address: "+syntax, strings.Join(f[2:], " "))
	}
	r := Rule{}
	verb := strings.ToLower(f[0])
	switch verb {
	case "accept", "accept6":
		r.Accept = true
	case "reject", "reject6":
	default:
		return nil, errorf("unknown action %q (want accept, reject, accept6 or reject6)", f[0])
	}
	only6 := strings.HasSuffix(verb, "6")
	addr, mask, ports, hasMask, err := split(f[1])
	if err != nil {
		return nil, err
	}
	if r.PortMin, r.PortMax, err = parsePorts(ports); err != nil {
		return nil, err
	}
	special := addr == "*" || addr == "*4" || addr == "*6" || addr == "private"
	if special && hasMask {
		return nil, errorf("a mask on %q, which is not an address", addr)
	}
	var a netip.Addr // none: every address of both families
	bits := 0
	switch {
	case addr == "private":
		rules := make([]Rule, len(privateNets))
		for i, pfx := range privateNets {
			rules[i] = r
			rules[i].Prefix = pfx
		}
		return rules, nil
	case addr == "*4" && only6:
		return nil, errOnly6(verb, `"*4"`)
	case addr == "*4":
		a = netip.IPv4Unspecified()
	case addr == "*6" || addr == "*" && only6:
		a = netip.IPv6Unspecified()
	case special: // "*"
	default:
		if a, err = parseAddr(addr); err != nil {
			return nil, err
		}
		if only6 && a.Is4() {
			return nil, errOnly6(verb, "the IPv4 address "+a.String())
		}
		bits = a.BitLen()
		if hasMask {
			if bits, err = parseMask(mask, a); err != nil {
				return nil, err
			}
		}
	}
	if a.IsValid() {
		r.Prefix = netip.PrefixFrom(a, bits).Masked()
	}
	return []Rule{r}, nil
}

// errOnly6 is the error about an accept6 or reject6 entry (verb) with an
// IPv4 address (what).
func errOnly6(verb, what string) error {
	return errorf(verb + " with " + what + ": " + verb + " takes IPv6 addresses only (use " + strings.TrimSuffix(verb, "6") + ")")
}

// errorf returns the error text msg with each %q replaced by the next of
// values, quoted as by strconv.Quote (fmt.Errorf's %q without its code at
// every call).
func errorf(msg string, values ...string) error {
	var b []byte
	for _, v := range values {
		before, after, _ := strings.Cut(msg, "%q")
		b = strconv.AppendQuote(append(b, before...), v)
		msg = after
	}
	return errors.New(string(append(b, msg...)))
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
			return "", "", "", false, errorf("no ']' after the IPv6 address in %q", s)
		}
		addr, rest = s[1:end], s[end+1:]
		if rest != "" && rest[0] != '/' && rest[0] != ':' {
			return "", "", "", false, errorf("unexpected %q after ']' (want /MASK or :PORTS)", rest)
		}
	} else {
		if a, err := netip.ParseAddr(s); err == nil && a.Is6() {
			return "", "", "", false, errorf("IPv6 address in %q must be written in brackets", s)
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
		return "", "", "", false, errorf("no address in %q", s)
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
		return a, errorf("malformed address %q (want *, *4, *6, private, an IPv4 address or a bracketed IPv6 address)", s)
	case a.Zone() != "":
		return a, errorf("address %q has a zone, which a policy cannot match", s)
	case a.Is4In6():
		return a, errorf("IPv4-mapped address %q: write it as the IPv4 address "+a.Unmap().String(), s)
	}
	return a, nil
}

// parseMask parses a mask length, or for IPv4 a dotted netmask such as
// 255.255.0.0 (which must be contiguous), as C tor does.
func parseMask(mask string, a netip.Addr) (int, error) {
	if mask != "" && strings.Trim(mask, "0123456789") == "" {
		n, err := strconv.Atoi(mask)
		if err != nil || n > a.BitLen() {
			return 0, errorf("mask /" + mask + " is longer than the " + strconv.Itoa(a.BitLen()) + " bits of the address " + a.String())
		}
		return n, nil
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || !m.Is4() {
		return 0, errorf("malformed mask %q (want a bit count or, for IPv4, a netmask like 255.255.0.0)", mask)
	}
	if !a.Is4() {
		return 0, errorf("netmask " + mask + " on the IPv6 address " + a.String() + " (IPv6 masks are bit counts)")
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for n < 32 && v&(1<<(31-n)) != 0 {
		n++
	}
	if n < 32 && v<<n != 0 {
		return 0, errorf("netmask " + mask + " is not contiguous")
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
			return 0, 0, errorf("port range %q ends at 0", s)
		}
		if lo > hi {
			return 0, 0, errorf("port range %q is reversed", s)
		}
	} else if lo == 0 {
		return 0, 0, errors.New("port 0 is not a port")
	}
	return max(lo, 1), hi, nil
}

func parsePort(s, all string) (uint16, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, errorf("malformed port %q in %q (want *, a port or a range N-M)", s, all)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, errorf("port "+s+" in %q is above 65535", all)
	}
	return uint16(n), nil
}
