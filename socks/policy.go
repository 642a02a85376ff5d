package socks

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one SocksPolicy entry: accept or reject clients whose address is
// in Prefix and whose source port is in [PortMin, PortMax].
type Rule struct {
	Accept  bool
	Prefix  netip.Prefix // for "*" rules: 0.0.0.0/0 and/or ::/0, see Any
	Any     bool         // "*": matches every address of both families
	PortMin uint16
	PortMax uint16
}

// Policy is an ordered list of rules over client addresses, as C tor's
// SocksPolicy: the first matching rule decides. Unlike C tor, a client that
// no rule matches is rejected, so "accept 192.168.1.0/24" alone is enough to
// keep the rest of the world out.
type Policy []Rule

// privateNets are the ranges C tor's "private" policy keyword stands for.
var privateNets = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("::/8"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fec0::/10"),
}

// DefaultPolicy accepts loopback clients only.
func DefaultPolicy() Policy {
	return Policy{
		{Accept: true, Prefix: netip.MustParsePrefix("127.0.0.0/8"), PortMax: 65535},
		{Accept: true, Prefix: netip.MustParsePrefix("::1/128"), PortMax: 65535},
		{Accept: false, Any: true, PortMax: 65535},
	}
}

// Allows reports whether a client at addr may use the listener.
func (p Policy) Allows(addr netip.AddrPort) bool {
	a := addr.Addr().Unmap()
	for _, r := range p {
		if r.matches(a, addr.Port()) {
			return r.Accept
		}
	}
	return false
}

func (r Rule) matches(a netip.Addr, port uint16) bool {
	if port < r.PortMin || port > r.PortMax {
		return false
	}
	return r.Any || r.Prefix.Contains(a)
}

// String formats the rule in torrc syntax.
func (r Rule) String() string {
	var sb strings.Builder
	if r.Accept {
		sb.WriteString("accept ")
	} else {
		sb.WriteString("reject ")
	}
	switch {
	case r.Any:
		sb.WriteString("*")
	case r.Prefix.Addr().Is6():
		if r.Prefix.Bits() == 0 {
			sb.WriteString("*6")
		} else {
			sb.WriteString("[" + r.Prefix.Addr().String() + "]/" + strconv.Itoa(r.Prefix.Bits()))
		}
	default:
		if r.Prefix.Bits() == 0 {
			sb.WriteString("*4")
		} else {
			sb.WriteString(r.Prefix.String())
		}
	}
	switch {
	case r.PortMin == 0 && r.PortMax == 65535:
	case r.PortMin == r.PortMax:
		sb.WriteString(":" + strconv.Itoa(int(r.PortMin)))
	default:
		sb.WriteString(":" + strconv.Itoa(int(r.PortMin)) + "-" + strconv.Itoa(int(r.PortMax)))
	}
	return sb.String()
}

// String formats the policy as a comma-separated torrc value.
func (p Policy) String() string {
	parts := make([]string, len(p))
	for i, r := range p {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}

// ParsePolicy parses SocksPolicy entries in C tor syntax. Entries are
// separated by commas (as on one torrc line); ParsePolicy may be called on
// each SocksPolicy line and the results appended. An entry is
//
//	accept|reject|accept6|reject6 ADDR[/MASK][:PORT[-PORT]]
//
// where ADDR is "*" (any address), "*4", "*6", an IPv4 address, an IPv6
// address in brackets, or "private" (C tor's private and local ranges,
// expanded to one rule each); MASK is a bit count or, for IPv4, a dotted
// netmask.
// accept6/reject6 entries must name IPv6 addresses (or "*", meaning "*6").
func ParsePolicy(s string) (Policy, error) {
	var p Policy
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			if strings.TrimSpace(s) == "" {
				return nil, nil
			}
			return nil, fmt.Errorf("policy entry %d: empty entry", i+1)
		}
		rules, err := parseRule(entry)
		if err != nil {
			return nil, fmt.Errorf("policy entry %d %q: %w", i+1, entry, err)
		}
		p = append(p, rules...)
	}
	return p, nil
}

func parseRule(entry string) ([]Rule, error) {
	verb, rest, ok := strings.Cut(entry, " ")
	rest = strings.TrimSpace(rest)
	if !ok || rest == "" {
		return nil, errors.New("want \"accept|reject ADDR[/MASK][:PORTS]\"")
	}
	var r Rule
	only6 := false
	switch strings.ToLower(verb) {
	case "accept":
		r.Accept = true
	case "reject":
	case "accept6":
		r.Accept, only6 = true, true
	case "reject6":
		only6 = true
	default:
		return nil, fmt.Errorf("unknown action %q (want accept, reject, accept6 or reject6)", verb)
	}
	if strings.ContainsAny(rest, " \t") {
		return nil, fmt.Errorf("unexpected space in %q", rest)
	}
	addr, ports := rest, ""
	// The port part follows the last ':' outside brackets.
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return nil, errors.New("missing ']' after IPv6 address")
		}
		after := rest[end+1:]
		if slash := strings.IndexByte(after, '/'); slash == 0 {
			// [addr]/bits[:ports]
			if c := strings.IndexByte(after, ':'); c >= 0 {
				addr, ports = rest[:end+1+c], after[c+1:]
			}
		} else if strings.HasPrefix(after, ":") {
			addr, ports = rest[:end+1], after[1:]
		} else if after != "" {
			return nil, fmt.Errorf("unexpected %q after ']'", after)
		}
	} else if strings.Count(rest, ":") > 1 {
		return nil, fmt.Errorf("IPv6 address in %q must be written in brackets", rest)
	} else if c := strings.IndexByte(rest, ':'); c >= 0 {
		addr, ports = rest[:c], rest[c+1:]
	}
	if err := r.parsePorts(ports); err != nil {
		return nil, err
	}
	if addr == "private" {
		var rules []Rule
		for _, pfx := range privateNets {
			if only6 && pfx.Addr().Is4() {
				continue
			}
			r.Prefix = pfx
			rules = append(rules, r)
		}
		return rules, nil
	}
	if err := r.parseAddr(addr, only6); err != nil {
		return nil, err
	}
	return []Rule{r}, nil
}

func (r *Rule) parseAddr(s string, only6 bool) error {
	switch s {
	case "*":
		if only6 {
			r.Prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		} else {
			r.Any = true
		}
		return nil
	case "*4":
		if only6 {
			return errors.New("\"*4\" in an accept6/reject6 entry")
		}
		r.Prefix = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		return nil
	case "*6":
		r.Prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		return nil
	}
	host, mask, hasMask := strings.Cut(s, "/")
	v6 := strings.HasPrefix(host, "[")
	if v6 {
		if !strings.HasSuffix(host, "]") {
			return fmt.Errorf("malformed IPv6 address %q", host)
		}
		host = host[1 : len(host)-1]
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("malformed address %q", host)
	}
	if a.Is6() != v6 || a.Is4In6() {
		if v6 || a.Is4In6() {
			return fmt.Errorf("IPv4 address %q in brackets or in IPv6 form", host)
		}
		return fmt.Errorf("IPv6 address %q must be written in brackets", host)
	}
	if only6 && a.Is4() {
		return fmt.Errorf("IPv4 address %q in an accept6/reject6 entry", host)
	}
	bits := a.BitLen()
	if hasMask {
		if n, err := strconv.Atoi(mask); err == nil && mask[0] != '+' && mask[0] != '-' {
			if n < 0 || n > a.BitLen() {
				return fmt.Errorf("mask /%d out of range for %q", n, host)
			}
			bits = n
		} else if m, err := netip.ParseAddr(mask); err == nil && m.Is4() && a.Is4() {
			if bits, err = maskBits(m); err != nil {
				return err
			}
		} else {
			return fmt.Errorf("malformed mask %q", mask)
		}
	}
	r.Prefix = netip.PrefixFrom(a, bits).Masked()
	return nil
}

// maskBits converts a dotted IPv4 netmask to a prefix length.
func maskBits(m netip.Addr) (int, error) {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("netmask %v is not contiguous", m)
	}
	return n, nil
}

func (r *Rule) parsePorts(s string) error {
	if s == "" || s == "*" {
		r.PortMin, r.PortMax = 0, 65535
		return nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	min, err := parsePort(lo)
	if err != nil {
		return err
	}
	max := min
	if isRange {
		if max, err = parsePort(hi); err != nil {
			return err
		}
	}
	if min > max {
		return fmt.Errorf("port range %d-%d is empty", min, max)
	}
	r.PortMin, r.PortMax = min, max
	return nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || s[0] == '+' {
		return 0, fmt.Errorf("malformed port %q", s)
	}
	return uint16(n), nil
}
