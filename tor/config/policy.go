package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PolicyRule is one entry of an address policy (SocksPolicy,
// MetricsPortPolicy): "accept|reject ADDR[/MASK][:PORT]" as in C tor.
type PolicyRule struct {
	Accept bool
	// Prefix is the address range; the zero Prefix stands for "*", any
	// address of either family ("*4" is 0.0.0.0/0, "*6" is ::/0).
	Prefix           netip.Prefix
	PortMin, PortMax uint16 // 1..65535 for "*"
}

// Matches reports whether the rule applies to addr and port.
func (r PolicyRule) Matches(addr netip.Addr, port uint16) bool {
	if port < r.PortMin || port > r.PortMax {
		return false
	}
	return !r.Prefix.IsValid() || r.Prefix.Contains(addr.Unmap())
}

// Policy is an ordered list of rules; the first matching rule decides.
type Policy []PolicyRule

// Allows applies the policy to addr:port. An address no rule matches is
// accepted, as for C tor's SocksPolicy.
func (p Policy) Allows(addr netip.Addr, port uint16) bool {
	for _, r := range p {
		if r.Matches(addr, port) {
			return r.Accept
		}
	}
	return true
}

// parsePolicy parses one policy line; it may hold several comma-separated
// entries.
func parsePolicy(v string) (Policy, error) {
	var out Policy
	for _, ent := range strings.Split(v, ",") {
		ent = strings.TrimSpace(ent)
		if ent == "" {
			continue
		}
		r, err := parsePolicyRule(ent)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errEmpty
	}
	return out, nil
}

func parsePolicyRule(ent string) (PolicyRule, error) {
	var r PolicyRule
	verb, spec, ok := strings.Cut(ent, " ")
	spec = strings.TrimSpace(spec)
	if !ok || spec == "" {
		return r, fmt.Errorf("malformed policy entry %q: want \"accept|reject ADDR[/MASK][:PORT]\"", ent)
	}
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
		return r, fmt.Errorf("malformed policy entry %q: must start with accept or reject", ent)
	}
	// Split ADDR[/MASK] from :PORT. IPv6 addresses are in brackets.
	addr, ports := spec, ""
	if strings.HasPrefix(spec, "[") {
		end := strings.IndexByte(spec, ']')
		if end < 0 {
			return r, fmt.Errorf("malformed policy entry %q: missing ']'", ent)
		}
		rest := spec[end+1:]
		addr = spec[1:end]
		if strings.HasPrefix(rest, "/") { // [v6]/mask:port
			m, p, _ := strings.Cut(rest[1:], ":")
			addr += "/" + m
			ports = p
		} else if strings.HasPrefix(rest, ":") {
			ports = rest[1:]
		} else if rest != "" {
			return r, fmt.Errorf("malformed policy entry %q", ent)
		}
	} else if i := strings.LastIndexByte(spec, ':'); i >= 0 {
		addr, ports = spec[:i], spec[i+1:]
	}
	switch addr {
	case "*":
		if only6 {
			r.Prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
	case "*4":
		if only6 {
			return r, fmt.Errorf("malformed policy entry %q: %s with an IPv4 address", ent, verb)
		}
		r.Prefix = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case "*6":
		r.Prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	default:
		a, mask, hasMask := strings.Cut(addr, "/")
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.Zone() != "" {
			return r, fmt.Errorf("malformed policy entry %q: bad address %q", ent, a)
		}
		ip = ip.Unmap()
		if only6 && !ip.Is6() {
			return r, fmt.Errorf("malformed policy entry %q: %s with an IPv4 address", ent, verb)
		}
		bits := ip.BitLen()
		if hasMask {
			n, err := parseMask(mask, ip.BitLen())
			if err != nil {
				return r, fmt.Errorf("malformed policy entry %q: bad mask %q", ent, mask)
			}
			bits = n
		}
		r.Prefix, _ = ip.Prefix(bits)
	}
	r.PortMin, r.PortMax = 1, 65535
	if ports != "" && ports != "*" {
		lo, hi, isRange := strings.Cut(ports, "-")
		a, err := parsePort(lo)
		if err != nil {
			return r, fmt.Errorf("malformed policy entry %q: %w", ent, err)
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return r, fmt.Errorf("malformed policy entry %q: %w", ent, err)
			}
			if b < a {
				return r, fmt.Errorf("malformed policy entry %q: port range %s is reversed", ent, ports)
			}
		}
		r.PortMin, r.PortMax = a, b
	}
	return r, nil
}

// parseMask parses a mask length, or for IPv4 a dotted netmask such as
// 255.255.0.0 (which must be contiguous), as C tor does.
func parseMask(mask string, maxBits int) (int, error) {
	if n, err := strconv.Atoi(mask); err == nil && n >= 0 && n <= maxBits {
		return n, nil
	}
	m, err := netip.ParseAddr(mask)
	if maxBits != 32 || err != nil || !m.Is4() {
		return 0, fmt.Errorf("bad mask %q", mask)
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for n < 32 && v&(1<<(31-n)) != 0 {
		n++
	}
	if n < 32 && v<<n != 0 {
		return 0, fmt.Errorf("netmask %q is not contiguous", mask)
	}
	return n, nil
}
