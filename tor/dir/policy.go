package dir

import (
	"strconv"

	"tinytor/tor/dir/netdoc"
)

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// PortPolicy is an exit-policy summary ("p" or "p6" line, dir-spec
// 3.8.2): the listed ports are accepted (Accept) or rejected (!Accept),
// all others the opposite. A nil *PortPolicy rejects everything.
type PortPolicy struct {
	Accept bool
	Ranges []PortRange // sorted, non-overlapping
}

// Allows reports whether the policy accepts connections to port.
func (p *PortPolicy) Allows(port uint16) bool {
	if p == nil {
		return false
	}
	in := false
	lo, hi := 0, len(p.Ranges)
	for lo < hi {
		m := (lo + hi) / 2
		r := p.Ranges[m]
		switch {
		case port < r.Lo:
			hi = m
		case port > r.Hi:
			lo = m + 1
		default:
			in = true
			lo = hi
		}
	}
	return in == p.Accept
}

// AllowsAny reports whether the policy accepts at least one port.
func (p *PortPolicy) AllowsAny() bool {
	if p == nil {
		return false
	}
	if p.Accept {
		return len(p.Ranges) > 0
	}
	return !(len(p.Ranges) == 1 && p.Ranges[0] == PortRange{1, 65535})
}

// String formats the policy as in a "p" line.
func (p *PortPolicy) String() string {
	if p == nil {
		return "reject 1-65535"
	}
	b := []byte("reject ")
	if p.Accept {
		b = []byte("accept ")
	}
	for i, r := range p.Ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(r.Lo), 10)
		if r.Lo != r.Hi {
			b = strconv.AppendUint(append(b, '-'), uint64(r.Hi), 10)
		}
	}
	return string(b)
}

// ParsePortPolicy parses the arguments of a "p" line: "accept" or
// "reject" and a PortList like "80,443,1000-2000".
func ParsePortPolicy(args [][]byte) (*PortPolicy, error) {
	if len(args) < 2 {
		return nil, netdoc.Message("want accept|reject and a port list")
	}
	p := &PortPolicy{}
	switch string(args[0]) {
	case "accept":
		p.Accept = true
	case "reject":
	default:
		return nil, netdoc.Reason(nil, "%q is neither accept nor reject", args[0])
	}
	list := args[1]
	for len(list) > 0 {
		item, l, h, ok, rest := nextRange(list, 65535)
		switch {
		case rest != nil && len(rest) == 0:
			return nil, netdoc.Message("port list ends with a comma")
		case !ok || l == 0:
			return nil, netdoc.Reason(nil, "bad port range %q", item)
		}
		if n := len(p.Ranges); n > 0 && uint16(l) <= p.Ranges[n-1].Hi {
			return nil, netdoc.Reason(nil, "port range %q not in ascending order", item)
		}
		p.Ranges = append(p.Ranges, PortRange{uint16(l), uint16(h)})
		list = rest
	}
	return p, nil
}
