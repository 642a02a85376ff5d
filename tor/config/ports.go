package config

import (
	"errors"
	"net/netip"
	"reflect"
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
	if p, ok := strings.CutPrefix(v, "unix:"); ok {
		if strings.HasPrefix(p, `"`) {
			path, n, err := unquote(p)
			if err != nil {
				return l, "", false, wrapErr("bad unix socket path", "", err)
			}
			l.Unix, rest = path, p[n:]
			if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
				return l, "", false, badValue("excess data after unix socket path %q", l.Unix)
			}
		} else {
			l.Unix, rest = cutWord(p)
		}
		if l.Unix == "" {
			return l, "", false, errors.New("empty unix socket path")
		}
		return l, rest, false, nil
	}
	word, rest := cutWord(v)
	if word == "" {
		return l, "", false, errors.New("no address")
	}
	if strings.EqualFold(word, "auto") {
		return Listener{Addr: netip.AddrPortFrom(localhost, 0), Auto: true}, rest, false, nil
	}
	if isAllDigits(word) {
		n, err := strconv.ParseUint(word, 10, 16)
		if err != nil {
			return l, "", false, errBadPort(word)
		}
		return Listener{Addr: netip.AddrPortFrom(localhost, uint16(n))}, rest, n == 0, nil
	}
	if h, ok := cutSuffixFold(word, ":auto"); ok {
		a, err := parseAddr(h)
		return Listener{Addr: netip.AddrPortFrom(a, 0), Auto: true}, rest, false, err
	}
	l.Addr, err = parseAddrPort(word)
	return l, rest, false, err
}

// cutWord splits s at its first space or tab.
func cutWord(s string) (word, rest string) {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
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

// TransPort is one TransPort line. The isolation flags and SessionGroup
// apply; the flags about host names (IPv4Traffic, OnionTraffic, ...) are
// not TransPort's, as in C tor.
type TransPort = ClientPort

// HTTPTunnelPort is one HTTPTunnelPort line, with SocksPort's flags.
type HTTPTunnelPort = ClientPort

// portFlags are the boolean flags of port lines ("Flag" or "NoFlag", in
// any case), named as the ClientPort field each sets. The first
// nUnixFlags are for Unix sockets only, and the only ones a ControlPort
// takes. The nHostFlags after them, and OnionTrafficOnly, concern host
// names, which a TransPort does not see (C tor's CL_PORT_TAKES_HOSTNAMES).
var portFlags = []string{"GroupWritable", "WorldWritable", "RelaxDirModeCheck",
	"IPv4Traffic", "IPv6Traffic", "PreferIPv6", "DNSRequest", "OnionTraffic",
	"ExtendedErrors", "PreferSOCKSNoAuth", "KeepAliveIsolateSOCKSAuth"}

const nUnixFlags, nHostFlags = 3, 5

// noEffectFlags are C tor's client port flags about its DNS cache, which
// tinytor accepts and ignores.
var noEffectFlags = []string{"CacheIPv4DNS", "CacheIPv6DNS", "CacheDNS", "UseIPv4Cache", "UseIPv6Cache", "UseDNSCache", "PreferIPv6Automap"}

// isolationFlags are the IsolateX flags of client ports.
var isolationFlags = []struct {
	name string
	iso  Isolation
}{
	{"IsolateDestPort", IsolateDestPort}, {"IsolateDestAddr", IsolateDestAddr}, {"IsolateSOCKSAuth", IsolateSOCKSAuth},
	{"IsolateClientProtocol", IsolateClientProtocol}, {"IsolateClientAddr", IsolateClientAddr},
}

// indexFold returns the index of name in list, ignoring case, or -1.
func indexFold(list []string, name string) int {
	for i, s := range list {
		if strings.EqualFold(s, name) {
			return i
		}
	}
	return -1
}

// setFlag sets the boolean field name of the struct *p points to.
func setFlag(p any, name string, on bool) {
	fieldByName(reflect.ValueOf(p).Elem(), name).SetBool(on)
}

// parseClientPort parses the value of a client listener line of kind
// "Socks", "DNS", "Trans" or "HTTPTunnel" (C tor's portname) following C
// tor's port_parse_config. off is true for "0". C tor opens only
// SocksPorts on Unix sockets (conn_listener_type_supports_af_unix).
func parseClientPort(b *builder, kind, v string) (p ClientPort, off bool, err error) {
	l, rest, off, err := parseListener(v)
	if err != nil {
		return p, false, err
	}
	name := kind + "Port"
	if kind != "Socks" && l.Unix != "" {
		return p, false, errors.New(name + " does not support unix sockets")
	}
	p = ClientPort{Listener: l, Isolation: DefaultIsolation, SessionGroup: -1,
		IPv4Traffic: true, IPv6Traffic: true, DNSRequest: true, OnionTraffic: true}
	unixOnly := false
flags:
	for _, flag := range fields(rest) {
		if g, ok := cutPrefixFold(flag, "SessionGroup="); ok {
			n, err := strconv.ParseUint(g, 10, 31)
			if err != nil {
				return p, false, badValue("invalid "+name+" option %q", flag)
			}
			if p.SessionGroup >= 0 {
				return p, false, errors.New("multiple SessionGroup options on " + name)
			}
			p.SessionGroup = int(n)
			continue
		}
		f, no := cutPrefixFold(flag, "No")
		if !no {
			f = flag
		}
		i := indexFold(portFlags, f)
		onionOnly := strings.EqualFold(f, "OnionTrafficOnly")
		switch {
		case kind == "Trans" && (i >= nUnixFlags && i < nUnixFlags+nHostFlags || onionOnly):
		case i >= 0:
			setFlag(&p, portFlags[i], !no)
			unixOnly = unixOnly || i < nUnixFlags
			continue
		case onionOnly && no:
			return p, false, errors.New("unsupported " + name + " option 'NoOnionTrafficOnly'; use DNSRequest, IPv4Traffic and/or IPv6Traffic instead")
		case onionOnly:
			p.IPv4Traffic, p.IPv6Traffic, p.DNSRequest = false, false, false
			continue
		}
		if indexFold(noEffectFlags, f) >= 0 {
			b.warn(name + " option " + strconv.Quote(flag) + " is accepted but has no effect in tinytor")
			continue
		}
		for _, iso := range isolationFlags {
			if strings.EqualFold(iso.name, strings.TrimSuffix(strings.ToLower(f), "s")) { // C tor drops plurals
				if no {
					p.Isolation &^= iso.iso
				} else {
					p.Isolation |= iso.iso
				}
				continue flags
			}
		}
		b.warn("Unrecognized " + name + " option '" + flag + "'")
	}
	dns := kind == "DNS"
	var msg string
	switch {
	case dns && !p.DNSRequest:
		msg = "entry with DNS disabled; that won't work"
	case !dns && !p.IPv4Traffic && !p.IPv6Traffic && !p.OnionTraffic:
		msg = "entry with all of IPv4 and IPv6 and .onion disabled; that won't work"
	case !dns && p.DNSRequest && !p.IPv4Traffic && !p.IPv6Traffic:
		msg = "entry with DNSRequest enabled, but IPv4 and IPv6 disabled; DNS-based sites won't work"
	case unixOnly && p.Unix == "":
		msg = "entry with GroupWritable, WorldWritable, or RelaxDirModeCheck, but it is not a unix socket"
	case p.Isolation&IsolateSOCKSAuth == 0 && p.KeepAliveIsolateSOCKSAuth:
		msg = "entry with both NoIsolateSOCKSAuth and KeepAliveIsolateSOCKSAuth set"
	}
	if msg != "" {
		return p, false, errors.New(name + " " + msg)
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
		f, no := cutPrefixFold(flag, "No")
		if !no {
			f = flag
		}
		if i := indexFold(portFlags[:nUnixFlags], f); i >= 0 {
			setFlag(&p, portFlags[i], !no)
			unixOnly = true
			continue
		}
		b.warn("Unrecognized ControlPort option '" + flag + "'")
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
			return p, false, badValue(`unknown MetricsPort format %q (only "prometheus" is supported)`, f[0])
		}
	default:
		return p, false, badValue("too many arguments %q", rest)
	}
	return p, off, nil
}
