package config

import (
	"encoding/hex"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"tinytor/tor/addrmap"
)

// parseBool parses a C tor boolean: exactly "0" or "1".
func parseBool(v string) (bool, error) {
	switch v {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, badValue("invalid boolean %q: must be 0 or 1", v)
}

// parseUint parses a decimal integer in [lo, hi].
func parseUint(v string, lo, hi uint64) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badValue("invalid number %q: must be an integer between "+
			strconv.FormatUint(lo, 10)+" and "+strconv.FormatUint(hi, 10), v)
	}
	return n, nil
}

type unit struct {
	name string
	mult uint64
}

// timeUnits are C tor's interval units (time_units in unitparse.c); a bare
// number is in seconds.
var timeUnits = []unit{
	{"", 1}, {"second", 1}, {"seconds", 1},
	{"minute", 60}, {"minutes", 60},
	{"hour", 3600}, {"hours", 3600},
	{"day", 86400}, {"days", 86400},
	{"week", 7 * 86400}, {"weeks", 7 * 86400},
	{"month", 2629728}, {"months", 2629728},
}

// memoryUnits are C tor's memory units (memory_units in unitparse.c); a bare
// number is in bytes. K, M, G, T are powers of 1024; the "bit" units are
// one eighth of the byte ones.
var memoryUnits = []unit{
	{"", 1}, {"b", 1}, {"byte", 1}, {"bytes", 1},
	{"kb", 1 << 10}, {"kbyte", 1 << 10}, {"kbytes", 1 << 10}, {"kilobyte", 1 << 10}, {"kilobytes", 1 << 10},
	{"kilobits", 1 << 7}, {"kilobit", 1 << 7}, {"kbits", 1 << 7}, {"kbit", 1 << 7},
	{"m", 1 << 20}, {"mb", 1 << 20}, {"mbyte", 1 << 20}, {"mbytes", 1 << 20}, {"megabyte", 1 << 20}, {"megabytes", 1 << 20},
	{"megabits", 1 << 17}, {"megabit", 1 << 17}, {"mbits", 1 << 17}, {"mbit", 1 << 17},
	{"gb", 1 << 30}, {"gbyte", 1 << 30}, {"gbytes", 1 << 30}, {"gigabyte", 1 << 30}, {"gigabytes", 1 << 30},
	{"gigabits", 1 << 27}, {"gigabit", 1 << 27}, {"gbits", 1 << 27}, {"gbit", 1 << 27},
	{"tb", 1 << 40}, {"tbyte", 1 << 40}, {"tbytes", 1 << 40}, {"terabyte", 1 << 40}, {"terabytes", 1 << 40},
	{"terabits", 1 << 37}, {"terabit", 1 << 37}, {"tbits", 1 << 37}, {"tbit", 1 << 37},
}

// parseUnits parses "NUMBER [UNIT]" as C tor's config_parse_units: the
// number may be fractional, the unit is case-insensitive.
func parseUnits(v string, units []unit) (uint64, error) {
	i := 0
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
		i++
	}
	num, rest := v[:i], strings.TrimLeft(v[i:], " \t")
	if num == "" {
		return 0, badValue("unable to parse %q as a number", v)
	}
	for _, u := range units {
		if !strings.EqualFold(u.name, rest) {
			continue
		}
		if n, err := strconv.ParseUint(num, 10, 64); err == nil {
			if u.mult != 0 && n > math.MaxInt64/u.mult {
				return 0, badValue("overflow while parsing %q", v)
			}
			return n * u.mult, nil
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, badValue("unable to parse %q as a number", v)
		}
		f *= float64(u.mult)
		if f >= math.MaxInt64 {
			return 0, badValue("overflow while parsing %q", v)
		}
		return uint64(f), nil
	}
	return 0, badValue("unknown unit in %q", v)
}

// parseInterval parses a C tor time interval ("30", "10 minutes", "2 hours").
func parseInterval(v string) (time.Duration, error) {
	n, err := parseUnits(v, timeUnits)
	if err != nil {
		return 0, wrapErr("interval %q is malformed", v, err)
	}
	if n > math.MaxInt32 {
		return 0, badValue("interval %q is out of bounds", v)
	}
	return time.Duration(n) * time.Second, nil
}

// parseMemory parses a C tor memory size ("64 MB", "1 GB", "512 KB").
func parseMemory(v string) (uint64, error) {
	n, err := parseUnits(v, memoryUnits)
	if err != nil {
		return 0, wrapErr("memory size %q is malformed", v, err)
	}
	return n, nil
}

// parseFingerprint decodes a 40-digit hex RSA identity digest.
func parseFingerprint(s string) ([20]byte, error) {
	var fp [20]byte
	if len(s) != 40 {
		return fp, badValue("fingerprint %q is not 40 hex digits", s)
	}
	if _, err := hex.Decode(fp[:], []byte(s)); err != nil {
		return fp, badValue("fingerprint %q is not 40 hex digits", s)
	}
	return fp, nil
}

// parsePort parses a TCP port number, 1..65535.
func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, errBadPort(s)
	}
	return uint16(n), nil
}

func errBadPort(s string) error {
	return badValue("invalid port %q: must be between 1 and 65535", s)
}

// parseAddr parses an IP literal; IPv6 may be in brackets. "localhost" is
// accepted as 127.0.0.1. tinytor does not resolve other host names in its
// configuration.
func parseAddr(s string) (netip.Addr, error) {
	if strings.EqualFold(s, "localhost") {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, badValue("invalid address %q: must be an IPv4 or IPv6 literal", s)
	}
	return a.Unmap(), nil
}

// splitHostPort splits "host:port", "[v6]:port" or a bare host; port is ""
// when absent.
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", badValue("invalid address %q: missing ']'", s)
		}
		host, rest := s[:end+1], s[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if rest[0] != ':' {
			return "", "", badValue("invalid address %q", s)
		}
		return host, rest[1:], nil
	}
	if strings.Count(s, ":") > 1 { // bare IPv6 without port
		return s, "", nil
	}
	host, port, _ = strings.Cut(s, ":")
	if strings.Contains(s, ":") && port == "" {
		return "", "", badValue("invalid address %q: empty port", s)
	}
	return host, port, nil
}

// parseAddrPort parses "addr:port" with a required port.
func parseAddrPort(s string) (netip.AddrPort, error) {
	h, p, err := splitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	a, err := parseAddr(h)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if p == "" {
		return netip.AddrPort{}, badValue("address %q has no port", s)
	}
	port, err := parsePort(p)
	return netip.AddrPortFrom(a, port), err
}

// parseIPv6AddrPort parses the "[v6]:port" of an ipv6= flag.
func parseIPv6AddrPort(s string) (netip.AddrPort, error) {
	ap, err := parseAddrPort(s)
	if err != nil {
		return ap, err
	}
	if !ap.Addr().Is6() {
		return netip.AddrPort{}, badValue("%q is not an IPv6 address and port", s)
	}
	return ap, nil
}

// fields splits on runs of spaces and tabs.
func fields(s string) []string { return strings.FieldsFunc(s, isFieldSpace) }

func isFieldSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// parseWeight parses a weight= value (a non-negative number).
func parseWeight(s string) (float64, error) {
	w, err := strconv.ParseFloat(s, 64)
	if err != nil || w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
		return 0, badValue("invalid weight %q", s)
	}
	return w, nil
}

// parseVirtualNetwork parses VirtualAddrNetworkIPv4/IPv6: "addr/bits",
// IPv6 possibly in brackets, of the right family and no smaller than C
// tor allows (parse_virtual_addr_network).
func parseVirtualNetwork(v string, ipv6 bool) (netip.Prefix, error) {
	a, bits, ok := strings.Cut(v, "/")
	if !ok {
		return netip.Prefix{}, badValue("invalid network %q: want address/bits", v)
	}
	p, err := netip.ParsePrefix(strings.TrimSuffix(strings.TrimPrefix(a, "["), "]") + "/" + bits)
	if err != nil {
		return netip.Prefix{}, wrapErr("invalid network %q", v, err)
	}
	if err := addrmap.CheckNetwork(p, ipv6); err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}
