package metrics

import (
	"fmt"
	"net/netip"
	"strings"
)

// Policy decides which clients may scrape the metrics port, like C tor's
// MetricsPortPolicy: "accept" / "reject" rules, first match wins, and a
// client matching no rule is rejected. The zero Policy (no rules) accepts
// loopback clients only.
type Policy struct {
	rules []policyRule
}

type policyRule struct {
	accept bool
	any    bool // "*": every address
	fam    int  // 4 or 6 for "*4"/"*6", else 0
	prefix netip.Prefix
}

// ParsePolicy parses MetricsPortPolicy values. Each value holds one or more
// comma-separated rules "accept|reject ADDR", where ADDR is "*", "*4", "*6",
// an IPv4 address or prefix (10.0.0.0/8) or a bracketed IPv6 address or
// prefix ([fd00::]/8). Ports are not accepted: the policy is about clients.
func ParsePolicy(values ...string) (*Policy, error) {
	p := &Policy{}
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			r, err := parseRule(item)
			if err != nil {
				return nil, fmt.Errorf("MetricsPortPolicy %q: %w", item, err)
			}
			p.rules = append(p.rules, r)
		}
	}
	return p, nil
}

func parseRule(s string) (policyRule, error) {
	verb, addr, ok := strings.Cut(s, " ")
	if !ok {
		return policyRule{}, fmt.Errorf("want \"accept ADDR\" or \"reject ADDR\"")
	}
	var r policyRule
	switch strings.ToLower(verb) {
	case "accept":
		r.accept = true
	case "reject":
	default:
		return r, fmt.Errorf("unknown action %q (want accept or reject)", verb)
	}
	addr = strings.TrimSpace(addr)
	switch addr {
	case "*":
		r.any = true
		return r, nil
	case "*4":
		r.fam = 4
		return r, nil
	case "*6":
		r.fam = 6
		return r, nil
	}
	host, bits, hasBits := strings.Cut(addr, "/")
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return r, fmt.Errorf("unterminated [ in address %q", addr)
		}
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") && strings.Count(host, ":") == 1 {
		return r, fmt.Errorf("ports are not supported in %q", addr)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return r, fmt.Errorf("bad address %q: %w", host, err)
	}
	ip = ip.Unmap()
	if hasBits {
		r.prefix, err = netip.ParsePrefix(ip.String() + "/" + bits)
		if err != nil {
			return r, fmt.Errorf("bad prefix %q: %w", addr, err)
		}
		r.prefix = r.prefix.Masked()
	} else {
		r.prefix = netip.PrefixFrom(ip, ip.BitLen())
	}
	return r, nil
}

// Allow reports whether a client at ip may connect.
func (p *Policy) Allow(ip netip.Addr) bool {
	ip = ip.Unmap()
	if p == nil || len(p.rules) == 0 {
		return ip.IsLoopback()
	}
	for _, r := range p.rules {
		switch {
		case r.any,
			r.fam == 4 && ip.Is4(),
			r.fam == 6 && ip.Is6(),
			r.fam == 0 && r.prefix.IsValid() && r.prefix.Contains(ip):
			return r.accept
		}
	}
	return false
}
