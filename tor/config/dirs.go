package config

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// DirAuthority is a directory authority, from a DirAuthority line or the
// built-in list:
//
//	[nickname] [flags] ipv4:dirport fingerprint
//
// with flags orport=N, v3ident=HEX, ipv6=[addr]:port, bridge, weight=W,
// and the obsolete no-v2 (ignored).
type DirAuthority struct {
	Nickname    string
	Addr        netip.AddrPort // IPv4 address and directory port
	ORPort      uint16         // 0 if not given
	IPv6        netip.AddrPort // zero if none
	Fingerprint [20]byte       // RSA identity digest
	V3Ident     [20]byte       // v3 authority identity; zero for a bridge authority
	Bridge      bool           // a bridge authority
	Weight      float64        // default 1
}

// IsV3 reports whether the authority votes on the v3 consensus (it has a
// v3ident).
func (a DirAuthority) IsV3() bool { return a.V3Ident != [20]byte{} }

// ParseDirAuthority parses the value of a DirAuthority line as C tor's
// parse_dir_authority_line does. Unrecognized flags produce warnings, as in
// C tor.
func ParseDirAuthority(v string) (a DirAuthority, warnings []string, err error) {
	items := fields(v)
	if len(items) == 0 {
		return a, nil, errors.New("no arguments on DirAuthority line")
	}
	a.Weight = 1
	if isNickname(items[0]) {
		a.Nickname = items[0]
		items = items[1:]
	}
	for len(items) > 0 && !(items[0][0] >= '0' && items[0][0] <= '9') {
		flag := items[0]
		items = items[1:]
		key, val, _ := strings.Cut(flag, "=")
		switch strings.ToLower(key) {
		case "hs", "no-hs":
			warnings = append(warnings, "The DirAuthority options 'hs' and 'no-hs' are obsolete; you don't need them any more.")
		case "bridge":
			a.Bridge = true
		case "no-v2":
		case "orport":
			if a.ORPort, err = parsePort(val); err != nil {
				err = badValue("invalid orport %q", val)
			}
		case "weight":
			a.Weight, err = parseWeight(val)
		case "v3ident":
			if a.V3Ident, err = parseFingerprint(val); err != nil {
				err = badValue("bad v3 identity digest %q", val)
			}
		case "ipv6":
			if a.IPv6.IsValid() {
				warnings = append(warnings, "Redundant ipv6 addr/port on DirAuthority line")
			} else if a.IPv6, err = parseIPv6AddrPort(val); err != nil {
				err = badValue("bad ipv6 addr/port %q", val)
			}
		case "upload", "download", "vote":
			err = badValue("DirAuthority flag %q is for directory authorities themselves and is not supported by tinytor", flag)
		default:
			warnings = append(warnings, "Unrecognized flag '"+flag+"' on DirAuthority line")
		}
		if err != nil {
			return a, warnings, err
		}
	}
	if len(items) < 2 {
		return a, warnings, errors.New("too few arguments to DirAuthority line (want [nickname] [flags] address:dirport fingerprint)")
	}
	host, port, err := splitHostPort(items[0])
	if err != nil {
		return a, warnings, badValue("error parsing DirAuthority address %q", items[0])
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() {
		return a, warnings, badValue("error parsing DirAuthority address %q (invalid IPv4 address)", host)
	}
	if port == "" {
		return a, warnings, badValue("missing port in DirAuthority address %q", items[0])
	}
	dp, err := parsePort(port)
	if err != nil {
		return a, warnings, wrapErr("error parsing DirAuthority address %q", items[0], err)
	}
	a.Addr = netip.AddrPortFrom(ip, dp)
	fp := strings.Join(items[1:], "")
	if len(fp) != 40 {
		return a, warnings, badValue("key digest %q for DirAuthority is wrong length "+strconv.Itoa(len(fp)), fp)
	}
	if a.Fingerprint, err = parseFingerprint(fp); err != nil {
		return a, warnings, errors.New("unable to decode DirAuthority key digest")
	}
	return a, warnings, nil
}

// FallbackDir is a fallback directory mirror: a relay the client may ask
// for its first consensus. From a FallbackDir line or the built-in list:
//
//	address[:dirport] orport=N id=HEX [ipv6=[addr]:port] [weight=W]
type FallbackDir struct {
	Addr    netip.Addr
	DirPort uint16 // 0 if not given (current lists omit it)
	ORPort  uint16
	ID      [20]byte       // RSA identity digest
	IPv6    netip.AddrPort // zero if none
	Weight  float64        // default 1
}

// ParseFallbackDir parses the value of a FallbackDir line as C tor's
// parse_dir_fallback_line does: orport= and id= are required; other
// key=value items are ignored with a warning.
func ParseFallbackDir(v string) (f FallbackDir, warnings []string, err error) {
	f.Weight = 1
	var positional []string
	haveID := false
	for _, item := range fields(v) {
		key, val, hasEq := strings.Cut(item, "=")
		if !hasEq {
			positional = append(positional, item)
			continue
		}
		switch {
		case key == "orport":
			f.ORPort, err = parsePort(val)
		case key == "id":
			f.ID, err = parseFingerprint(val)
			haveID = true
		case strings.EqualFold(key, "ipv6"):
			if f.IPv6.IsValid() {
				warnings = append(warnings, "Redundant ipv6 addr/port on FallbackDir line")
				continue
			}
			if f.IPv6, err = parseIPv6AddrPort(val); err != nil {
				return f, warnings, badValue("bad ipv6 addr/port %q on FallbackDir line", val)
			}
		case key == "weight":
			if f.Weight, err = parseWeight(val); err != nil {
				return f, warnings, err
			}
		default:
			warnings = append(warnings, "Ignoring unknown FallbackDir item "+strconv.Quote(item))
		}
		if err != nil {
			return f, warnings, badValue("bad FallbackDir option %q", item)
		}
	}
	if len(positional) != 1 {
		return f, warnings, errors.New("couldn't parse FallbackDir line: want exactly one address[:dirport]")
	}
	if !haveID || f.ID == [20]byte{} {
		return f, warnings, errors.New("missing identity (id=) on FallbackDir line")
	}
	if f.ORPort == 0 {
		return f, warnings, errors.New("missing orport on FallbackDir line")
	}
	host, port, err := splitHostPort(positional[0])
	if err == nil {
		f.Addr, err = parseAddr(host)
	}
	if err == nil && port != "" {
		f.DirPort, err = parsePort(port)
	}
	if err != nil || strings.EqualFold(host, "localhost") {
		return f, warnings, badValue("couldn't parse address:port %q on FallbackDir line", positional[0])
	}
	return f, warnings, nil
}

// defaultAuthorities parses the built-in authority list.
func defaultAuthorities() []DirAuthority {
	out := make([]DirAuthority, 0, len(defaultAuthorityLines))
	for _, l := range defaultAuthorityLines {
		a, _, err := ParseDirAuthority(l)
		if err != nil {
			panic("config: bad built-in DirAuthority line " + l + ": " + err.Error())
		}
		out = append(out, a)
	}
	return out
}

// defaultFallbacks parses the built-in fallback list.
func defaultFallbacks() []FallbackDir {
	out := make([]FallbackDir, 0, len(defaultFallbackLines))
	for _, l := range defaultFallbackLines {
		f, _, err := ParseFallbackDir(l)
		if err != nil {
			panic("config: bad built-in FallbackDir line " + l + ": " + err.Error())
		}
		out = append(out, f)
	}
	return out
}
