package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
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
	var s strings.Builder
	if b.Transport != "" {
		s.WriteString(b.Transport)
		s.WriteByte(' ')
	}
	s.WriteString(b.Addr.String())
	if b.HasFingerprint {
		s.WriteByte(' ')
		s.WriteString(strings.ToUpper(hex.EncodeToString(b.Fingerprint[:])))
	}
	for _, a := range b.Args {
		s.WriteByte(' ')
		s.WriteString(a.Key + "=" + a.Value)
	}
	return s.String()
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
func ParseBridge(v string) (Bridge, error) {
	var b Bridge
	items := fields(v)
	if len(items) == 0 {
		return b, errors.New("empty Bridge line: want [transport] IP:ORPort [fingerprint] [k=v ...]")
	}
	if first := items[0]; !strings.Contains(first, ":") && strings.Trim(first, "0123456789.") != "" {
		if !validTransportName(first) {
			return b, fmt.Errorf("transport name %q is not valid: want letters, digits and underscores", first)
		}
		b.Transport, items = first, items[1:]
		if len(items) == 0 {
			return b, fmt.Errorf("transport %s has no IP:ORPort", b.Transport)
		}
	}
	ap, err := parseAddrPort(items[0])
	if err != nil {
		return b, fmt.Errorf("bridge address: %w", err)
	}
	if ap.Port() == 0 {
		return b, fmt.Errorf("bridge address %s has port 0", items[0])
	}
	b.Addr, items = ap, items[1:]
	var fp strings.Builder
	for len(items) > 0 && !strings.Contains(items[0], "=") {
		fp.WriteString(items[0])
		items = items[1:]
	}
	if fp.Len() > 0 {
		s := strings.TrimPrefix(fp.String(), "$")
		if len(s) != 40 {
			return b, fmt.Errorf("fingerprint %q has %d hex digits, want 40", fp.String(), len(s))
		}
		if _, err := hex.Decode(b.Fingerprint[:], []byte(s)); err != nil {
			return b, fmt.Errorf("fingerprint %q is not hex", fp.String())
		}
		b.HasFingerprint = true
	}
	for _, it := range items {
		k, val, _ := strings.Cut(it, "=")
		if k == "" {
			return b, fmt.Errorf("argument %q has no key", it)
		}
		b.Args = append(b.Args, KV{k, val})
	}
	if len(b.Args) > 0 && b.Transport == "" {
		return b, fmt.Errorf("arguments %q given for a bridge without a transport", strings.Join(items, " "))
	}
	return b, nil
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
func ParseTransportPlugin(v string) (TransportPlugin, error) {
	var p TransportPlugin
	items := fields(v)
	if len(items) < 3 {
		return p, errors.New("want name[,name...] exec PATH [ARGS...], or name socks4|socks5 IP:PORT")
	}
	for _, n := range strings.Split(items[0], ",") {
		if !validTransportName(n) { // C tor's "*" is refused too: transports answer it with CMETHOD-ERROR
			return p, fmt.Errorf("transport name %q is not valid: want letters, digits and underscores", n)
		}
		p.Names = append(p.Names, n)
	}
	switch strings.ToLower(items[1]) {
	case "exec":
		p.Exec = items[2:]
	case "socks4", "socks5":
		if len(items) != 3 {
			return p, fmt.Errorf("an external transport takes one IP:PORT, got %q", strings.Join(items[2:], " "))
		}
		if len(p.Names) != 1 {
			return p, errors.New("an external transport (socks4/socks5) provides exactly one named transport")
		}
		ap, err := parseAddrPort(items[2])
		if err != nil {
			return p, fmt.Errorf("transport proxy address: %w", err)
		}
		p.Proxy, p.ProxyType = ap, strings.ToLower(items[1])
	default:
		return p, fmt.Errorf("unknown transport method %q: want exec, socks4 or socks5", items[1])
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

// proxyOpt parses Socks4Proxy, Socks5Proxy or HTTPSProxy: "IP[:PORT]",
// defaulting the port as C tor does (1080 for SOCKS, 443 for HTTPS).
func proxyOpt(name string, defPort uint16, field func(*Config) *netip.AddrPort) option {
	return option{name: name, apply: func(b *builder, v string) error {
		s := v
		if h, p, err := splitHostPort(v); err == nil && p == "" {
			s = fmt.Sprintf("%s:%d", h, defPort)
			if strings.Contains(h, ":") {
				s = fmt.Sprintf("[%s]:%d", strings.Trim(h, "[]"), defPort)
			}
		}
		ap, err := parseAddrPort(s)
		if err != nil {
			return fmt.Errorf("%w (tinytor resolves no names: give the proxy's IP address)", err)
		}
		*field(b.c) = ap
		return nil
	}}
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
		return errAt(b.where["Socks5ProxyUsername"], "Socks5ProxyUsername", errors.New("Socks5ProxyUsername and Socks5ProxyPassword must be set together"))
	}
	if len(c.Socks5ProxyUsername) > 255 || len(c.Socks5ProxyPassword) > 255 {
		return errAt(b.where["Socks5ProxyUsername"], "Socks5ProxyUsername", errors.New("the SOCKS5 username and password are at most 255 bytes each"))
	}
	if c.HTTPSProxyAuthenticator != "" && !strings.Contains(c.HTTPSProxyAuthenticator, ":") {
		return errAt(b.where["HTTPSProxyAuthenticator"], "HTTPSProxyAuthenticator", errors.New("want user:password"))
	}
	if c.UseBridges && len(c.Bridges) == 0 {
		return errAt(b.where["UseBridges"], "UseBridges", errors.New("if you set UseBridges, you must specify at least one bridge"))
	}
	if !c.UseBridges && len(c.Bridges) > 0 {
		b.l = c.Bridges[0].Where
		b.warnf("Bridge lines are set but UseBridges is 0: the bridges are not used.")
	}
	for _, br := range c.Bridges {
		if br.Transport == "" {
			continue
		}
		found := false
		for _, p := range c.TransportPlugins {
			if p.Provides(br.Transport) {
				found = true
				break
			}
		}
		if !found {
			return errAt(br.Where, "Bridge", fmt.Errorf("the bridge %s uses the transport %q, but no ClientTransportPlugin line provides it", br.Addr, br.Transport))
		}
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
