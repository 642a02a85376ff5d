package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Listener is where a SocksPort, ControlPort or MetricsPort listens: a TCP
// address or a Unix socket.
type Listener struct {
	Addr netip.AddrPort // TCP address; the port is 0 when Auto is set
	Auto bool           // "auto": let the system pick a free port
	Unix string         // Unix socket path, set instead of Addr
}

// String returns the listener in torrc syntax.
func (l Listener) String() string {
	switch {
	case l.Unix != "":
		return "unix:" + l.Unix
	case l.Auto:
		return l.Addr.Addr().String() + ":auto"
	}
	return l.Addr.String()
}

var localhost = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// parseListener parses the address word of a *Port line, C tor style:
// "PORT" (on 127.0.0.1), "ADDR:PORT", "auto", "ADDR:auto", "unix:PATH"
// (PATH may be a quoted C string). It returns the rest of the line (the
// flags). off is true for "0", which disables the listener.
func parseListener(v string) (l Listener, rest string, off bool, err error) {
	v = strings.TrimLeft(v, " \t")
	var word string
	if strings.HasPrefix(v, "unix:") {
		p := v[len("unix:"):]
		if strings.HasPrefix(p, `"`) {
			path, n, err := unquote(p)
			if err != nil {
				return l, "", false, fmt.Errorf("bad unix socket path: %w", err)
			}
			l.Unix, rest = path, p[n:]
			if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
				return l, "", false, fmt.Errorf("excess data after unix socket path %q", l.Unix)
			}
		} else {
			i := strings.IndexAny(p, " \t")
			if i < 0 {
				i = len(p)
			}
			l.Unix, rest = p[:i], p[i:]
		}
		if l.Unix == "" {
			return l, "", false, errors.New("empty unix socket path")
		}
		return l, rest, false, nil
	}
	word, rest = v, ""
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		word, rest = v[:i], v[i:]
	}
	if word == "" {
		return l, "", false, errors.New("no address")
	}
	if strings.EqualFold(word, "auto") {
		return Listener{Addr: netip.AddrPortFrom(localhost, 0), Auto: true}, rest, false, nil
	}
	if isAllDigits(word) {
		n, err := strconv.ParseUint(word, 10, 16)
		if err != nil {
			return l, "", false, fmt.Errorf("invalid port %q: must be between 1 and 65535", word)
		}
		if n == 0 {
			return l, rest, true, nil
		}
		return Listener{Addr: netip.AddrPortFrom(localhost, uint16(n))}, rest, false, nil
	}
	if h, ok := cutSuffixFold(word, ":auto"); ok {
		a, err := parseAddr(h)
		if err != nil {
			return l, "", false, err
		}
		return Listener{Addr: netip.AddrPortFrom(a, 0), Auto: true}, rest, false, nil
	}
	h, p, err := splitHostPort(word)
	if err != nil {
		return l, "", false, err
	}
	a, err := parseAddr(h)
	if err != nil {
		return l, "", false, err
	}
	if p == "" {
		return l, "", false, fmt.Errorf("address %q has no port", word)
	}
	port, err := parsePort(p)
	if err != nil {
		return l, "", false, err
	}
	return Listener{Addr: netip.AddrPortFrom(a, port)}, rest, false, nil
}

func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// Isolation is a set of stream isolation rules of a SocksPort: two streams
// share a circuit only if they agree on every rule in the set.
type Isolation uint8

// The isolation rules of C tor's SocksPort flags.
const (
	IsolateClientAddr     Isolation = 1 << iota // same client address
	IsolateSOCKSAuth                            // same SOCKS username and password
	IsolateClientProtocol                       // same SOCKS version (4, 4a, 5)
	IsolateDestPort                             // same destination port
	IsolateDestAddr                             // same destination address
)

// DefaultIsolation is C tor's ISO_DEFAULT: IsolateClientAddr and
// IsolateSOCKSAuth (session groups are always isolated).
const DefaultIsolation = IsolateClientAddr | IsolateSOCKSAuth

// ClientPort is one line of a client listener (SocksPort, DNSPort): its
// address and C tor's port flags (port_parse_config).
type ClientPort struct {
	Listener
	Isolation    Isolation
	SessionGroup int // SessionGroup=N, or -1 when not given

	IPv4Traffic               bool // default on; NoIPv4Traffic refuses IPv4 destinations
	IPv6Traffic               bool // default on; NoIPv6Traffic refuses IPv6 destinations
	PreferIPv6                bool // prefer IPv6 when a host name has both
	DNSRequest                bool // default on; NoDNSRequest refuses host names
	OnionTraffic              bool // default on; NoOnionTraffic refuses .onion
	ExtendedErrors            bool // SOCKS5 extended error codes (prop304)
	PreferSOCKSNoAuth         bool // offer "no auth" first (on with NoIsolateSOCKSAuth)
	KeepAliveIsolateSOCKSAuth bool
	GroupWritable             bool // Unix socket only
	WorldWritable             bool // Unix socket only
	RelaxDirModeCheck         bool // Unix socket only
}

// SocksPort is one SocksPort line.
type SocksPort = ClientPort

// DNSPort is one DNSPort line: UDP and TCP on one address. The isolation
// flags and SessionGroup apply; the SOCKS-only flags are accepted and
// have no effect, as in C tor.
type DNSPort = ClientPort

// parseSocksPort parses a SocksPort value following C tor's
// port_parse_config. off is true for "SocksPort 0".
func parseSocksPort(b *builder, v string) (p SocksPort, off bool, err error) {
	return parseClientPort(b, "Socks", v)
}

// TransPort is one TransPort line. The isolation flags and SessionGroup
// apply; the flags about host names (IPv4Traffic, OnionTraffic, ...) are
// not TransPort's, as in C tor.
type TransPort = ClientPort

// HTTPTunnelPort is one HTTPTunnelPort line, with SocksPort's flags.
type HTTPTunnelPort = ClientPort

// parseDNSPort parses a DNSPort value as C tor: like a SocksPort, but
// with no Unix socket and DNSRequest required.
func parseDNSPort(b *builder, v string) (p DNSPort, off bool, err error) {
	return parseTCPClientPort(b, "DNS", v)
}

// parseTransPort parses a TransPort value as C tor: no Unix socket, and
// no flags about host names.
func parseTransPort(b *builder, v string) (p TransPort, off bool, err error) {
	return parseTCPClientPort(b, "Trans", v)
}

// parseHTTPTunnelPort parses an HTTPTunnelPort value as C tor: a
// SocksPort without Unix sockets.
func parseHTTPTunnelPort(b *builder, v string) (p HTTPTunnelPort, off bool, err error) {
	return parseTCPClientPort(b, "HTTPTunnel", v)
}

// parseTCPClientPort parses a client listener of a kind that C tor does
// not open on Unix sockets (conn_listener_type_supports_af_unix).
func parseTCPClientPort(b *builder, kind, v string) (p ClientPort, off bool, err error) {
	p, off, err = parseClientPort(b, kind, v)
	if err == nil && p.Unix != "" {
		return p, false, fmt.Errorf("%sPort does not support unix sockets", kind)
	}
	return p, off, err
}

// hostFlags are the flags C tor takes only on ports whose clients name
// hosts (CL_PORT_TAKES_HOSTNAMES: not TransPort).
var hostFlags = map[string]bool{"ipv4traffic": true, "ipv6traffic": true, "preferipv6": true,
	"dnsrequest": true, "oniontraffic": true, "oniontrafficonly": true}

// parseClientPort parses the value of a client listener line of kind
// "Socks", "DNS", "Trans" or "HTTPTunnel" (C tor's portname) following C
// tor's port_parse_config. off is true for "0".
func parseClientPort(b *builder, kind, v string) (p ClientPort, off bool, err error) {
	l, rest, off, err := parseListener(v)
	if err != nil {
		return p, false, err
	}
	p = ClientPort{Listener: l, Isolation: DefaultIsolation, SessionGroup: -1,
		IPv4Traffic: true, IPv6Traffic: true, DNSRequest: true, OnionTraffic: true}
	unixOnly := false
	for _, flag := range fields(rest) {
		if g, ok := cutPrefixFold(flag, "SessionGroup="); ok {
			n, err := strconv.ParseUint(g, 10, 31)
			if err != nil {
				return p, false, fmt.Errorf("invalid %sPort option %q", kind, flag)
			}
			if p.SessionGroup >= 0 {
				return p, false, fmt.Errorf("multiple SessionGroup options on %sPort", kind)
			}
			p.SessionGroup = int(n)
			continue
		}
		name, no := cutPrefixFold(flag, "No")
		if !no {
			name = flag
		}
		set := !no
		if kind == "Trans" && hostFlags[strings.ToLower(name)] {
			b.warnf("Unrecognized %sPort option '%s'", kind, flag)
			continue
		}
		switch strings.ToLower(name) {
		case "groupwritable":
			p.GroupWritable, unixOnly = set, true
		case "worldwritable":
			p.WorldWritable, unixOnly = set, true
		case "relaxdirmodecheck":
			p.RelaxDirModeCheck, unixOnly = set, true
		case "ipv4traffic":
			p.IPv4Traffic = set
		case "ipv6traffic":
			p.IPv6Traffic = set
		case "preferipv6":
			p.PreferIPv6 = set
		case "dnsrequest":
			p.DNSRequest = set
		case "oniontraffic":
			p.OnionTraffic = set
		case "oniontrafficonly":
			if no {
				return p, false, fmt.Errorf("unsupported %sPort option 'NoOnionTrafficOnly'; use DNSRequest, IPv4Traffic and/or IPv6Traffic instead", kind)
			}
			p.IPv4Traffic, p.IPv6Traffic, p.DNSRequest = false, false, false
		case "extendederrors":
			p.ExtendedErrors = set
		case "prefersocksnoauth":
			p.PreferSOCKSNoAuth = set
		case "keepaliveisolatesocksauth":
			p.KeepAliveIsolateSOCKSAuth = set
		case "cacheipv4dns", "cacheipv6dns", "cachedns", "useipv4cache", "useipv6cache", "usednscache", "preferipv6automap":
			b.warnf("%sPort option %q is accepted but has no effect in tinytor", kind, flag)
		default:
			var iso Isolation
			switch strings.TrimSuffix(strings.ToLower(name), "s") { // C tor drops plurals
			case "isolatedestport":
				iso = IsolateDestPort
			case "isolatedestaddr":
				iso = IsolateDestAddr
			case "isolatesocksauth":
				iso = IsolateSOCKSAuth
			case "isolateclientprotocol":
				iso = IsolateClientProtocol
			case "isolateclientaddr":
				iso = IsolateClientAddr
			default:
				b.warnf("Unrecognized %sPort option '%s'", kind, flag)
				continue
			}
			if set {
				p.Isolation |= iso
			} else {
				p.Isolation &^= iso
			}
		}
	}
	dns := kind == "DNS"
	if dns && !p.DNSRequest {
		return p, false, fmt.Errorf("%sPort entry with DNS disabled; that won't work", kind)
	}
	if !dns && !p.IPv4Traffic && !p.IPv6Traffic && !p.OnionTraffic {
		return p, false, fmt.Errorf("%sPort entry with all of IPv4 and IPv6 and .onion disabled; that won't work", kind)
	}
	if !dns && p.DNSRequest && !p.IPv4Traffic && !p.IPv6Traffic {
		return p, false, fmt.Errorf("%sPort entry with DNSRequest enabled, but IPv4 and IPv6 disabled; DNS-based sites won't work", kind)
	}
	if unixOnly && p.Unix == "" {
		return p, false, fmt.Errorf("%sPort entry with GroupWritable, WorldWritable, or RelaxDirModeCheck, but it is not a unix socket", kind)
	}
	if p.Isolation&IsolateSOCKSAuth == 0 && p.KeepAliveIsolateSOCKSAuth {
		return p, false, fmt.Errorf("%sPort entry with both NoIsolateSOCKSAuth and KeepAliveIsolateSOCKSAuth set", kind)
	}
	if p.Unix != "" {
		p.Isolation &^= IsolateClientAddr // meaningless on a Unix socket
	}
	if p.Isolation&IsolateSOCKSAuth == 0 {
		p.PreferSOCKSNoAuth = true
	}
	return p, off, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// ControlPort is one ControlPort line (or ControlSocket, as a Unix Listener).
type ControlPort struct {
	Listener
	GroupWritable     bool // Unix socket only
	WorldWritable     bool // Unix socket only
	RelaxDirModeCheck bool // Unix socket only
}

func parseControlPort(b *builder, v string) (p ControlPort, off bool, err error) {
	l, rest, off, err := parseListener(v)
	if err != nil {
		return p, false, err
	}
	p.Listener = l
	unixOnly := false
	for _, flag := range fields(rest) {
		name, no := cutPrefixFold(flag, "No")
		if !no {
			name = flag
		}
		switch strings.ToLower(name) {
		case "groupwritable":
			p.GroupWritable, unixOnly = !no, true
		case "worldwritable":
			p.WorldWritable, unixOnly = !no, true
		case "relaxdirmodecheck":
			p.RelaxDirModeCheck, unixOnly = !no, true
		default:
			b.warnf("Unrecognized ControlPort option '%s'", flag)
		}
	}
	if unixOnly && p.Unix == "" {
		return p, false, errors.New("ControlPort entry with GroupWritable, WorldWritable, or RelaxDirModeCheck, but it is not a unix socket")
	}
	return p, off, nil
}

// MetricsPort is one MetricsPort line: "[address:]port [format]".
type MetricsPort struct {
	Listener
	Format string // only "prometheus"
}

func parseMetricsPort(v string) (p MetricsPort, off bool, err error) {
	l, rest, off, err := parseListener(v)
	if err != nil {
		return p, false, err
	}
	if l.Unix != "" {
		return p, false, errors.New("MetricsPort does not support unix sockets")
	}
	p = MetricsPort{Listener: l, Format: "prometheus"}
	switch f := fields(rest); len(f) {
	case 0:
	case 1:
		if !strings.EqualFold(f[0], "prometheus") {
			return p, false, fmt.Errorf("unknown MetricsPort format %q (only \"prometheus\" is supported)", f[0])
		}
	default:
		return p, false, fmt.Errorf("too many arguments %q", rest)
	}
	return p, off, nil
}
