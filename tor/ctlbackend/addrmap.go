package ctlbackend

import (
	"strings"
	"time"

	"tinytor/tor/addrmap"
	"tinytor/tor/control"
)

// addressMappings answers GETINFO address-mappings/<which> as C tor's
// getinfo_helper_events: one "FROM TO EXPIRY" line per mapping.
func (b *Backend) addressMappings(which string) (string, error) {
	k, ok := addrmap.ParseKind(which)
	if !ok {
		return "", control.ErrNotFound
	}
	if b.cfg.AddrMap == nil {
		return "", nil
	}
	return strings.Join(b.cfg.AddrMap.Mappings(k), "\n"), nil
}

// MapAddress answers one MAPADDRESS mapping as C tor's
// handle_control_mapaddress: "." gets a ".virtual" host name for to,
// "0.0.0.0" and "::" a virtual address, anything else is mapped as given
// and never expires.
func (b *Backend) MapAddress(from, to string) (string, error) {
	m := b.cfg.AddrMap
	if m == nil {
		return "", control.Errorf(control.CodeUnimplemented, "MAPADDRESS is not available")
	}
	if !addrmap.ValidDestination(strings.TrimPrefix(to, "*.")) {
		b.log.Warnf("Skipping invalid argument '%s' in MapAddress msg", to)
		return "", control.Errorf(control.CodeSyntaxArgs, "syntax error: invalid address '%s'", to)
	}
	switch from {
	case ".":
		h, err := m.VirtualHost(to, addrmap.FromController)
		if err != nil {
			b.log.Warnf("Unable to allocate address for '%s' in MapAddress msg", to)
			return "", control.Errorf(control.CodeResourceExhausted, "resource exhausted: skipping '%s=%s'", from, to)
		}
		return h, nil
	case "0.0.0.0", "::":
		a, err := m.Virtual(to, from == "::", addrmap.FromController)
		if err != nil {
			b.log.Warnf("Unable to allocate address for '%s' in MapAddress msg", to)
			return "", control.Errorf(control.CodeResourceExhausted, "resource exhausted: skipping '%s=%s'", from, to)
		}
		return a.String(), nil
	}
	if err := m.Register(from, to, addrmap.FromController, time.Time{}); err != nil {
		b.log.Warnf("Skipping invalid argument '%s=%s' in MapAddress msg: %v", from, to, err)
		return "", control.Errorf(control.CodeSyntaxArgs, "syntax error: invalid address mapping  '%s=%s': %v", from, to, err)
	}
	return from, nil
}
