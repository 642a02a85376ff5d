package config

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"tinytor/tor/errfmt"
)

// Bridge is one Bridge line: "[transport] IP:ORPort [fingerprint] [k=v ...]".
type Bridge struct {
	// Transport names the pluggable transport that reaches the bridge
	// ("obfs4"); "" is a plain bridge, dialed directly.
	Transport string
	// Addr is the bridge's address (for a transport: the address the
	// transport connects to).
	Addr netip.AddrPort
	// Fingerprint is the bridge's RSA identity digest when HasFingerprint.
	Fingerprint    [20]byte
	HasFingerprint bool
	// Args are the k=v arguments for the transport, in order.
	Args []KV
	// Where is the line the bridge came from, for errors.
	Where Line
}

// KV is one key=value argument of a Bridge line.
type KV struct{ Key, Value string }

// String formats b as a Bridge line value.
func (b Bridge) String() string {
	var s []byte
	if b.Transport != "" {
		s = append(s, b.Transport...)
		s = append(s, ' ')
	}
	s = b.Addr.AppendTo(s)
	if b.HasFingerprint {
		s = append(s, ' ')
		s = appendHexUpper(s, b.Fingerprint[:])
	}
	for _, a := range b.Args {
		s = append(s, ' ')
		s = append(s, a.Key...)
		s = append(s, '=')
		s = append(s, a.Value...)
	}
	return string(s)
}

// appendHexUpper appends data in upper-case hex, as C tor prints
// fingerprints.
func appendHexUpper(s, data []byte) []byte {
	const digits = "0123456789ABCDEF"
	for _, c := range data {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return s
}

// validTransportName reports whether s is a pluggable-transport name
// (pt-spec: C identifier rules).
func validTransportName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ParseBridge parses the value of a Bridge line as C tor's
// parse_bridge_line: an optional transport name, IP:ORPort, an optional
// fingerprint (40 hex digits, which may be split by spaces), and, for a
// transport, k=v arguments.
func ParseBridge(v string) (b Bridge, err error) {
	items := fields(v)
	if len(items) == 0 {
		return b, errors.New("empty Bridge line: want [transport] IP:ORPort [fingerprint] [k=v ...]")
	}
	if first := items[0]; !strings.Contains(first, ":") && strings.Trim(first, "0123456789.") != "" {
		if !validTransportName(first) {
			return b, errTransportName(first)
		}
		b.Transport, items = first, items[1:]
		if len(items) == 0 {
			return b, errors.New("transport " + b.Transport + " has no IP:ORPort")
		}
	}
	ap, err := parseAddrPort(items[0]) // the port is not 0
	if err != nil {
		return b, wrapErr("bridge address", "", err)
	}
	b.Addr, items = ap, items[1:]
	var fp string
	for len(items) > 0 && !strings.Contains(items[0], "=") {
		fp += items[0]
		items = items[1:]
	}
	if fp != "" {
		s := strings.TrimPrefix(fp, "$")
		if len(s) != 40 {
			return b, errors.New("fingerprint " + strconv.Quote(fp) + " has " + strconv.Itoa(len(s)) + " hex digits, want 40")
		}
		if _, err := hex.Decode(b.Fingerprint[:], []byte(s)); err != nil {
			return b, badValue("fingerprint %q is not hex", fp)
		}
		b.HasFingerprint = true
	}
	for _, it := range items {
		k, val, _ := strings.Cut(it, "=")
		if k == "" {
			return b, badValue("argument %q has no key", it)
		}
		b.Args = append(b.Args, KV{k, val})
	}
	if len(b.Args) > 0 && b.Transport == "" {
		return b, badValue("arguments %q given for a bridge without a transport", strings.Join(items, " "))
	}
	return b, nil
}

func errTransportName(name string) error {
	return badValue("transport name %q is not valid: want letters, digits and underscores", name)
}

// TransportPlugin is one ClientTransportPlugin line: either
// "name[,name...] exec PATH [ARGS...]" (a managed transport that tinytor
// launches) or "name socks4|socks5 IP:PORT" (an external one).
type TransportPlugin struct {
	// Names are the transports the line provides.
	Names []string
	// Exec is the program and its arguments for a managed transport.
	Exec []string
	// Proxy and ProxyType ("socks4", "socks5") give an external one.
	Proxy     netip.AddrPort
	ProxyType string
	// Where is the line, for errors.
	Where Line
}

// Provides reports whether p provides the named transport.
func (p TransportPlugin) Provides(name string) bool {
	for _, n := range p.Names {
		if n == name { // case-sensitive, as C tor's transport_get_by_name
			return true
		}
	}
	return false
}

// ParseTransportPlugin parses a ClientTransportPlugin value.
func ParseTransportPlugin(v string) (p TransportPlugin, err error) {
	items := fields(v)
	if len(items) < 3 {
		return p, errors.New("want name[,name...] exec PATH [ARGS...], or name socks4|socks5 IP:PORT")
	}
	for _, n := range strings.Split(items[0], ",") {
		if !validTransportName(n) { // C tor's "*" is refused too: transports answer it with CMETHOD-ERROR
			return p, errTransportName(n)
		}
		p.Names = append(p.Names, n)
	}
	switch strings.ToLower(items[1]) {
	case "exec":
		p.Exec = items[2:]
	case "socks4", "socks5":
		if len(items) != 3 {
			return p, badValue("an external transport takes one IP:PORT, got %q", strings.Join(items[2:], " "))
		}
		if len(p.Names) != 1 {
			return p, errors.New("an external transport (socks4/socks5) provides exactly one named transport")
		}
		ap, err := parseAddrPort(items[2])
		if err != nil {
			return p, wrapErr("transport proxy address", "", err)
		}
		p.Proxy, p.ProxyType = ap, strings.ToLower(items[1])
	default:
		return p, badValue("unknown transport method %q: want exec, socks4 or socks5", items[1])
	}
	return p, nil
}

// UpstreamProxy is the proxy every outgoing connection goes through
// (Socks4Proxy, Socks5Proxy or HTTPSProxy).
type UpstreamProxy struct {
	// Type is "socks4", "socks5" or "https"; "" means none.
	Type string
	Addr netip.AddrPort
	// User and Password authenticate (Socks5ProxyUsername/Password,
	// HTTPSProxyAuthenticator user:pass).
	User, Password string
}

// proxyValue is Socks4Proxy, Socks5Proxy or HTTPSProxy: "IP[:PORT]",
// the port defaulting as C tor does (1080 for SOCKS, 443 for HTTPS).
func proxyValue(b *builder, v string) (any, error) {
	s := v
	if h, p, err := splitHostPort(v); err == nil && p == "" {
		if strings.Contains(h, ":") {
			h = "[" + strings.Trim(h, "[]") + "]"
		}
		s = h + ":1080"
		if b.opt.name == "HTTPSProxy" {
			s = h + ":443"
		}
	}
	ap, err := parseAddrPort(s)
	if err != nil {
		return nil, errfmt.Errorf("%w (tinytor resolves no names: give the proxy's IP address)", err)
	}
	return ap, nil
}

// checkBridges validates UseBridges, Bridge, ClientTransportPlugin and the
// upstream proxy options together (C tor's options_validate rules, with
// errors where C tor only warns and runs on unusable).
func (b *builder) checkBridges() error {
	c := b.c
	n := 0
	for _, p := range []netip.AddrPort{c.Socks4Proxy, c.Socks5Proxy, c.HTTPSProxy} {
		if p.IsValid() {
			n++
		}
	}
	if n > 1 {
		return errAt(b.where["Socks5Proxy"], "", errors.New("you have configured more than one proxy type (Socks4Proxy|Socks5Proxy|HTTPSProxy)"))
	}
	if (c.Socks5ProxyUsername == "") != (c.Socks5ProxyPassword == "") {
		return b.errorAt("Socks5ProxyUsername", "Socks5ProxyUsername and Socks5ProxyPassword must be set together")
	}
	if len(c.Socks5ProxyUsername) > 255 || len(c.Socks5ProxyPassword) > 255 {
		return b.errorAt("Socks5ProxyUsername", "the SOCKS5 username and password are at most 255 bytes each")
	}
	if c.HTTPSProxyAuthenticator != "" && !strings.Contains(c.HTTPSProxyAuthenticator, ":") {
		return b.errorAt("HTTPSProxyAuthenticator", "want user:password")
	}
	if c.UseBridges && len(c.Bridges) == 0 {
		return b.errorAt("UseBridges", "if you set UseBridges, you must specify at least one bridge")
	}
	if !c.UseBridges && len(c.Bridges) > 0 {
		b.l = c.Bridges[0].Where
		b.warn("Bridge lines are set but UseBridges is 0: the bridges are not used.")
	}
bridges:
	for _, br := range c.Bridges {
		if br.Transport == "" {
			continue
		}
		for _, p := range c.TransportPlugins {
			if p.Provides(br.Transport) {
				continue bridges
			}
		}
		return errAt(br.Where, "Bridge", errors.New("the bridge "+br.Addr.String()+" uses the transport "+strconv.Quote(br.Transport)+
			", but no ClientTransportPlugin line provides it"))
	}
	return nil
}

// Proxy returns the upstream proxy in force, if any.
func (c *Config) Proxy() UpstreamProxy {
	switch {
	case c.Socks4Proxy.IsValid():
		return UpstreamProxy{Type: "socks4", Addr: c.Socks4Proxy}
	case c.Socks5Proxy.IsValid():
		return UpstreamProxy{Type: "socks5", Addr: c.Socks5Proxy, User: c.Socks5ProxyUsername, Password: c.Socks5ProxyPassword}
	case c.HTTPSProxy.IsValid():
		u, p, _ := strings.Cut(c.HTTPSProxyAuthenticator, ":")
		return UpstreamProxy{Type: "https", Addr: c.HTTPSProxy, User: u, Password: p}
	}
	return UpstreamProxy{}
}
