// Package addrmap is the client's address map, after C tor's addressmap.c:
// MAPADDRESS rewrites (with "*." wildcards), and the virtual addresses that
// AutomapHostsOnResolve hands out for names such as .onion ones, so that
// software that can only connect to IP addresses (a LAN device behind a
// TransPort, an application resolving through the DNSPort) reaches them.
//
// A virtual address is drawn at random from VirtualAddrNetworkIPv4 (default
// 127.192.0.0/10) or VirtualAddrNetworkIPv6 (default [FE80::]/10); the same
// name keeps the same address for as long as the Map lives (a reload does
// not recreate it). Rewrite turns a virtual address back into its name.
package addrmap

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
)

// Default virtual networks, as in C tor.
var (
	DefaultIPv4Network = netip.MustParsePrefix("127.192.0.0/10")
	DefaultIPv6Network = netip.MustParsePrefix("fe80::/10")
)

// Largest prefixes C tor accepts for the virtual networks
// (parse_virtual_addr_network): a network must leave room for addresses.
const (
	MaxIPv4PrefixBits = 16
	MaxIPv6PrefixBits = 104
)

// maxRewrites bounds chained rewrites (C tor: 16).
const maxRewrites = 16

// maxAttempts bounds the draws for a free virtual address (C tor: 1000).
const maxAttempts = 1000

// Source says where a mapping came from; it selects the GETINFO
// address-mappings/* key that lists it.
type Source uint8

// Mapping sources.
const (
	FromConfig     Source = iota + 1 // MapAddress in the torrc
	FromController                   // MAPADDRESS on the control port
	FromAutomap                      // AutomapHostsOnResolve, or MAPADDRESS to a virtual address
	FromDNS                          // a cached answer with an expiry
)

// Config is what the Map is configured with; SetConfig changes it.
type Config struct {
	// Automap is AutomapHostsOnResolve.
	Automap bool
	// Suffixes is AutomapHostsSuffixes: names ending with one of them are
	// automapped; "." matches every name.
	Suffixes []string
	// IPv4, IPv6 are VirtualAddrNetworkIPv4 and VirtualAddrNetworkIPv6;
	// zero values mean the defaults.
	IPv4, IPv6 netip.Prefix
}

// CheckNetwork reports whether p can be a virtual network of its family.
func CheckNetwork(p netip.Prefix, ipv6 bool) error {
	name, maxBits := "VirtualAddrNetworkIPv4", MaxIPv4PrefixBits
	if ipv6 {
		name, maxBits = "VirtualAddrNetworkIPv6", MaxIPv6PrefixBits
	}
	var msg string
	switch {
	case !p.IsValid():
		msg = name + ": no network"
	case p.Addr().Is6() != ipv6 || p.Addr().Is4In6():
		msg = "incorrect address type for " + name
	case p.Bits() > maxBits:
		msg = name + " expects a /" + strconv.Itoa(maxBits) + " network or larger"
	default:
		return nil
	}
	return errors.New(msg)
}

// entry is one mapping: from its key (a lower-case name or an address) to
// a new address.
type entry struct {
	to      string
	source  Source
	expires time.Time // zero: never
	srcWild bool      // the key is a "*." pattern: it also maps subdomains
	dstWild bool      // and the matched prefix is kept before to
}

// virtuals are the virtual addresses handed out for one name.
type virtuals struct{ v4, v6, host string }

// Map is the address map. Its methods are safe for concurrent use.
type Map struct {
	rand io.Reader
	now  func() time.Time

	mu      lock.Mutex
	cfg     Config
	entries map[string]*entry    // by lower-case source
	reverse map[string]*virtuals // name -> its virtual addresses
}

// New returns an empty Map configured with cfg. rnd supplies the random
// virtual addresses (nil: crypto/rand); now is the clock (nil: time.Now).
func New(cfg Config, rnd io.Reader, now func() time.Time) (*Map, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if now == nil {
		now = time.Now
	}
	m := &Map{rand: rnd, now: now, entries: map[string]*entry{}, reverse: map[string]*virtuals{}}
	if err := m.SetConfig(cfg); err != nil {
		return nil, err
	}
	return m, nil
}

// SetConfig applies a new configuration (after a reload). As C tor's
// addressmap_clear_invalid_automaps, automapped entries whose name no
// longer matches a suffix, or whose address left the virtual networks,
// are dropped; the others keep their addresses.
func (m *Map) SetConfig(cfg Config) error {
	if !cfg.IPv4.IsValid() {
		cfg.IPv4 = DefaultIPv4Network
	}
	if !cfg.IPv6.IsValid() {
		cfg.IPv6 = DefaultIPv6Network
	}
	if err := CheckNetwork(cfg.IPv4, false); err != nil {
		return err
	}
	if err := CheckNetwork(cfg.IPv6, true); err != nil {
		return err
	}
	cfg.IPv4, cfg.IPv6 = cfg.IPv4.Masked(), cfg.IPv6.Masked()
	cfg.Suffixes = append([]string(nil), cfg.Suffixes...)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg = cfg
	for k, e := range m.entries {
		switch {
		case m.isVirtual(k) && !m.inVirtualRange(k):
			m.remove(k) // the network changed
		case e.source == FromAutomap && (!cfg.Automap || !cfg.shouldAutomap(e.to)):
			m.remove(k) // automapping is off for this name now
		}
	}
	return nil
}

// isVirtual reports whether the entry at key is a virtual address handed
// out by Virtual.
func (m *Map) isVirtual(key string) bool {
	e := m.entries[key]
	if e == nil {
		return false
	}
	v := m.reverse[strings.ToLower(e.to)]
	return v != nil && (v.v4 == key || v.v6 == key || v.host == key)
}

// ShouldAutomap reports whether a lookup of name gets a virtual address:
// AutomapHostsOnResolve is on and name ends with one of
// AutomapHostsSuffixes (C tor's addressmap_address_should_automap).
func (m *Map) ShouldAutomap(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.Automap && m.cfg.shouldAutomap(name)
}

func (c *Config) shouldAutomap(name string) bool {
	if _, err := netip.ParseAddr(name); err == nil {
		return false
	}
	name = strings.ToLower(name)
	for _, s := range c.Suffixes {
		if s == "." || strings.HasSuffix(name, strings.ToLower(s)) {
			return true
		}
	}
	return false
}

// ErrExhausted is returned when no free virtual address was found.
var ErrExhausted = errors.New("ran out of virtual addresses")

// Kinds of virtual address, indexes into a virtuals record.
const (
	virtualIPv4 = iota
	virtualIPv6
	virtualHost
)

// slot returns the field of v holding the address of kind.
func (v *virtuals) slot(kind int) *string {
	switch kind {
	case virtualIPv4:
		return &v.v4
	case virtualIPv6:
		return &v.v6
	}
	return &v.host
}

// Virtual returns the virtual address of name in the IPv4 or IPv6
// network, choosing a free one at random the first time (C tor's
// addressmap_register_virtual_address). The same name always gets the
// same address while the mapping lives. src is FromAutomap for a lookup
// under AutomapHostsOnResolve, FromController for MAPADDRESS.
func (m *Map) Virtual(name string, ipv6 bool, src Source) (netip.Addr, error) {
	kind := virtualIPv4
	if ipv6 {
		kind = virtualIPv6
	}
	s, err := m.virtual(name, kind, src)
	if err != nil {
		return netip.Addr{}, err
	}
	return netip.ParseAddr(s)
}

// VirtualHost returns the ".virtual" host name standing for name (MAPADDRESS
// with "." as the old address), choosing a random unused one the first
// time, as C tor's addressmap_get_virtual_address for
// RESOLVED_TYPE_HOSTNAME: 10 random bytes in base32, then ".virtual".
func (m *Map) VirtualHost(name string, src Source) (string, error) {
	return m.virtual(name, virtualHost, src)
}

// virtual returns the virtual address of kind for name, drawing a free one
// the first time.
func (m *Map) virtual(name string, kind int, src Source) (string, error) {
	if name == "" || !ValidDestination(name) {
		return "", errfmt.Errorf("invalid address %q", name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := strings.ToLower(name)
	v := m.reverse[key]
	if v == nil {
		v = &virtuals{}
	}
	slot := v.slot(kind)
	if *slot != "" {
		if e := m.entries[*slot]; e != nil && strings.EqualFold(e.to, name) {
			return *slot, nil
		}
	}
	a, err := m.freeVirtual(kind)
	if err != nil {
		return "", err
	}
	*slot = a
	m.reverse[key] = v
	m.entries[a] = &entry{to: name, source: src}
	return a, nil
}

// freeVirtual draws an unused virtual address of kind: from a virtual
// network, skipping IPv4 addresses ending in .0 or .255 as C tor does, or
// a host name.
func (m *Map) freeVirtual(kind int) (string, error) {
	p := m.cfg.IPv4
	if kind == virtualIPv6 {
		p = m.cfg.IPv6
	}
	// Host names (80 random bits) are drawn until one is free.
	for i := 0; kind == virtualHost || i < maxAttempts; i++ {
		var s string
		if kind == virtualHost {
			var b [10]byte
			if _, err := io.ReadFull(m.rand, b[:]); err != nil {
				return "", errfmt.Errorf("drawing a virtual host name: %w", err)
			}
			s = strings.ToLower(base32.StdEncoding.EncodeToString(b[:])) + ".virtual"
		} else {
			a, err := randomIn(p, m.rand)
			if err != nil {
				return "", errfmt.Errorf("drawing a virtual address: %w", err)
			}
			if a.Is4() {
				if last := a.As4()[3]; last == 0 || last == 0xff {
					continue
				}
			}
			s = a.String()
		}
		if m.entries[s] == nil {
			return s, nil
		}
	}
	return "", ErrExhausted
}

// randomIn returns a random address of network p (C tor's
// get_random_virtual_addr).
func randomIn(p netip.Prefix, rnd io.Reader) (netip.Addr, error) {
	base := p.Addr().AsSlice()
	b := make([]byte, len(base))
	if _, err := io.ReadFull(rnd, b); err != nil {
		return netip.Addr{}, err
	}
	bits := p.Bits()
	copy(b, base[:bits/8])
	if r := bits % 8; r != 0 {
		mask := byte(0xff) >> r
		b[bits/8] = b[bits/8]&mask | base[bits/8]&^mask
	}
	a, _ := netip.AddrFromSlice(b)
	return a, nil
}

// InVirtualRange reports whether addr is in a virtual network (or a
// ".virtual" name): an address that must be mapped before use and never
// sent to an exit.
func (m *Map) InVirtualRange(addr string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inVirtualRange(addr)
}

func (m *Map) inVirtualRange(addr string) bool {
	if strings.HasSuffix(strings.ToLower(addr), ".virtual") {
		return true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"))
	if err != nil {
		return false
	}
	a = a.Unmap()
	return m.cfg.IPv4.Contains(a) || m.cfg.IPv6.Contains(a)
}

// Register maps from to to, as C tor's addressmap_register_auto: "*.a.b"
// as from also maps every name under a.b, and "*.c.d" as to then keeps
// the part before a.b. A zero expires never expires. Mapping an address
// to itself removes its mapping. A temporary mapping (non-zero expires)
// does not replace an existing one.
func (m *Map) Register(from, to string, src Source, expires time.Time) error {
	if from == "*" || to == "*" {
		return errors.New("can't remap from or to *")
	}
	fromWild, toWild := false, false
	if f, ok := strings.CutPrefix(from, "*."); ok {
		from, fromWild = f, true
	}
	if t, ok := strings.CutPrefix(to, "*."); ok {
		to, toWild = t, true
	}
	if toWild && !fromWild {
		return errors.New("can only use wildcard (i.e. '*.') if 'from' address uses wildcard also")
	}
	if from == "" || !ValidDestination(from) {
		return errors.New("source is invalid")
	}
	if to == "" || !ValidDestination(to) {
		return errors.New("destination is invalid")
	}
	key := strings.ToLower(from)
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.entries[key]
	if strings.EqualFold(from, to) && fromWild == toWild {
		if old != nil {
			m.remove(key)
		}
		return nil
	}
	if old != nil && !expires.IsZero() {
		return nil // C tor: a temporary mapping does not replace one in force
	}
	if old != nil {
		m.remove(key)
	}
	m.entries[key] = &entry{to: to, source: src, expires: expires, srcWild: fromWild, dstWild: toWild}
	return nil
}

// SetConfigured replaces the mappings from the torrc (MapAddress lines,
// source FromConfig) with pairs, as C tor's config_register_addressmaps
// at each (re)load. A pair Register refuses is left out; the errors say
// which, for the caller to log.
func (m *Map) SetConfigured(pairs [][2]string) []error {
	m.mu.Lock()
	for k, e := range m.entries {
		if e.source == FromConfig {
			m.remove(k)
		}
	}
	m.mu.Unlock()
	var errs []error
	for _, p := range pairs {
		if err := m.Register(p[0], p[1], FromConfig, time.Time{}); err != nil {
			errs = append(errs, errfmt.Errorf("MapAddress '%s %s' failed: %w. Ignoring", p[0], p[1], err))
		}
	}
	return errs
}

// remove deletes the entry at key and its reverse record (C tor's
// addressmap_ent_remove).
func (m *Map) remove(key string) {
	e := m.entries[key]
	if e == nil {
		return
	}
	delete(m.entries, key)
	name := strings.ToLower(e.to)
	if v := m.reverse[name]; v != nil {
		if v.v4 == key {
			v.v4 = ""
		}
		if v.v6 == key {
			v.v6 = ""
		}
		if v.host == key {
			v.host = ""
		}
		if v.v4 == "" && v.v6 == "" && v.host == "" {
			delete(m.reverse, name)
		}
	}
}

// Rewrite applies the mappings to addr until none applies (at most 16
// times, as C tor's addressmap_rewrite): an exact match first, then the
// nearest "*." pattern of a parent domain. It reports whether addr
// changed. Expired entries are dropped on the way.
func (m *Map) Rewrite(addr string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	changed := false
	for range maxRewrites {
		key := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"))
		e, exact := m.entries[key], true
		if e != nil && !e.expires.IsZero() && now.After(e.expires) {
			m.remove(key)
			e = nil
		}
		if e != nil && e.srcWild && !e.dstWild && strings.EqualFold(addr, e.to) {
			return addr, changed
		}
		if e == nil {
			e, key, exact = m.matchParent(key, now)
		}
		if e == nil {
			return addr, changed
		}
		if e.dstWild && !exact {
			addr = addr[:len(addr)-len(key)] + e.to
		} else {
			addr = e.to
		}
		changed = true
	}
	return addr, changed
}

// matchParent finds a "*." entry for a parent domain of name; suffix is
// the matched domain with its leading dot.
func (m *Map) matchParent(name string, now time.Time) (e *entry, suffix string, exact bool) {
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if e := m.entries[name[i+1:]]; e != nil && e.srcWild && (e.expires.IsZero() || !now.After(e.expires)) {
			return e, name[i+1:], false
		}
	}
	return nil, "", false
}

// Name returns the name a virtual address stands for, if it is mapped.
func (m *Map) Name(addr netip.Addr) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := addr.Unmap().String()
	if !m.isVirtual(key) {
		return "", false
	}
	return m.entries[key].to, true
}

// Virtuals returns how many virtual addresses are mapped.
func (m *Map) Virtuals() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, v := range m.reverse {
		if v.v4 != "" {
			n++
		}
		if v.v6 != "" {
			n++
		}
	}
	return n
}

// Kind selects mappings for Mappings, as the GETINFO address-mappings/*
// keys.
type Kind uint8

// Mapping kinds.
const (
	KindAll     Kind = iota // address-mappings/all
	KindConfig              // address-mappings/config: from the torrc
	KindControl             // address-mappings/control: MAPADDRESS and virtual addresses
	KindCache               // address-mappings/cache: entries that expire
)

// ParseKind returns the Kind of a GETINFO address-mappings/ key's last
// part: "all", "config", "control" or "cache".
func ParseKind(s string) (Kind, bool) {
	switch s {
	case "all":
		return KindAll, true
	case "config":
		return KindConfig, true
	case "control":
		return KindControl, true
	case "cache":
		return KindCache, true
	}
	return 0, false
}

// Mappings lists mappings as C tor's addressmap_get_mappings with expiry:
// "FROM TO NEVER" or `FROM TO "YYYY-MM-DD HH:MM:SS"` (UTC), sorted.
func (m *Map) Mappings(k Kind) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var out []string
	for key, e := range m.entries {
		if !e.expires.IsZero() && now.After(e.expires) {
			continue
		}
		var kind Kind
		switch {
		case !e.expires.IsZero():
			kind = KindCache
		case e.source == FromConfig:
			kind = KindConfig
		default:
			kind = KindControl
		}
		if k != KindAll && k != kind {
			continue
		}
		src, dst := key, e.to
		if e.srcWild {
			src = "*." + src
		}
		if e.dstWild {
			dst = "*." + dst
		}
		when := "NEVER"
		if !e.expires.IsZero() {
			when = `"` + e.expires.UTC().Format(time.DateTime) + `"`
		}
		out = append(out, src+" "+dst+" "+when)
	}
	sort.Strings(out)
	return out
}

// ValidDestination reports whether addr is usable as a mapping's address:
// an IP literal, or a name of letters, digits, '-', '.' and '_' (C tor's
// address_is_invalid_destination without AllowNonRFC953Hostnames).
func ValidDestination(addr string) bool {
	if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")); err == nil {
		return true
	}
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}
