// Package pt runs pluggable transports on the client side, as pt-spec.txt
// (version 1) describes and C tor does: a managed transport proxy is a child
// process configured through TOR_PT_* environment variables that reports
// SOCKS listeners ("methods") on its stdout; an external one is a SOCKS
// listener given in the configuration. Bridges are dialled through a method
// with the bridge line's k=v arguments in the SOCKS authentication fields.
package pt

import (
	"errors"
	"net/netip"
	"strings"

	"tinytor/tor/cstring"
	"tinytor/tor/errfmt"
)

// KV is one key=value argument: of a Bridge line (sent to the transport on
// each connection) or of a LOG or STATUS line from the transport.
type KV struct {
	Key, Value string
}

// ValidName reports whether name is a valid transport name: a C identifier
// (pt-spec 3.1).
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// EncodeArgs encodes per-connection arguments as pt-spec 3.5 says:
// "k=v;k=v", with backslash, '=' and ';' in keys and values escaped with a
// backslash.
func EncodeArgs(args []KV) string {
	var b strings.Builder
	esc := func(s string) {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c == '\\' || c == '=' || c == ';' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[i])
		}
	}
	for i, kv := range args {
		if i > 0 {
			b.WriteByte(';')
		}
		esc(kv.Key)
		b.WriteByte('=')
		esc(kv.Value)
	}
	return b.String()
}

// maxSOCKS5Args is what fits in the RFC 1929 username and password fields.
const maxSOCKS5Args = 2 * 255

// socks5Auth splits encoded arguments across the SOCKS 5 username and
// password as C tor does: up to 255 bytes in the username, the rest in the
// password, or a single NUL byte as the password when all fit in the
// username. No arguments means no authentication.
func socks5Auth(enc string) (user, pass string, err error) {
	switch {
	case enc == "":
		return "", "", nil
	case len(enc) <= 255:
		return enc, "\x00", nil
	case len(enc) <= maxSOCKS5Args:
		return enc[:255], enc[255:], nil
	}
	return "", "", errfmt.Errorf("bridge arguments are %d bytes encoded, more than the %d that SOCKS5 can carry", len(enc), maxSOCKS5Args)
}

// cmethod is a parsed CMETHOD line.
type cmethod struct {
	name  string
	socks int
	addr  netip.AddrPort
}

// parseCMethod parses the arguments of "CMETHOD name socks5 addr:port
// [options]".
func parseCMethod(rest string) (cmethod, error) {
	f := strings.Fields(rest)
	if len(f) < 3 {
		return cmethod{}, errors.New("CMETHOD line with too few arguments")
	}
	m := cmethod{name: f[0]}
	if !ValidName(m.name) {
		return cmethod{}, errfmt.Errorf("transport name %q is not a C identifier", clip(m.name))
	}
	switch f[1] {
	case "socks4":
		m.socks = 4
	case "socks5":
		m.socks = 5
	default:
		return cmethod{}, errfmt.Errorf("transport %s: unknown proxy protocol %q", m.name, clip(f[1]))
	}
	ap, err := netip.ParseAddrPort(f[2])
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return cmethod{}, errfmt.Errorf("transport %s: bad address %q", m.name, clip(f[2]))
	}
	m.addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return m, nil
}

// parseKVs parses the "K=V K=V" arguments of LOG and STATUS lines; a value
// may be a C tor quoted string (control-spec section 2).
func parseKVs(s string) ([]KV, error) {
	var kvs []KV
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return kvs, nil
		}
		eq := strings.IndexAny(s, "= ")
		if eq <= 0 || s[eq] != '=' {
			return nil, errfmt.Errorf("argument %q is not KEY=VALUE", clip(s))
		}
		kv := KV{Key: s[:eq]}
		s = s[eq+1:]
		if strings.HasPrefix(s, `"`) {
			v, n, err := cstring.Unquote(s)
			if err != nil {
				return nil, errfmt.Errorf("value of %s: %w", kv.Key, err)
			}
			if n < len(s) && s[n] != ' ' {
				return nil, errfmt.Errorf("value of %s: garbage after quoted string", kv.Key)
			}
			kv.Value, s = v, s[n:]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			kv.Value, s = s[:end], s[end:]
		}
		kvs = append(kvs, kv)
	}
}

// lookup returns the value of the first kv with key k.
func lookup(kvs []KV, k string) (string, bool) {
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return "", false
}

// clip bounds text from the transport that goes into errors and logs.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
