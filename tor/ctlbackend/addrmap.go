package ctlbackend

import (
	"net/netip"
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

// errNoAddrMap answers MAPADDRESS without Config.AddrMap.
var errNoAddrMap = &control.Error{Code: control.CodeUnimplemented, Msg: "MAPADDRESS is not available"}

// MapAddress answers one MAPADDRESS mapping as C tor's
// handle_control_mapaddress: "." gets a ".virtual" host name for to,
// "0.0.0.0" and "::" a virtual address, anything else is mapped as given
// and never expires.
func (b *Backend) MapAddress(from, to string) (string, error) {
	m := b.cfg.AddrMap
	if m == nil {
		return "", errNoAddrMap
	}
	if !addrmap.ValidDestination(strings.TrimPrefix(to, "*.")) {
		b.log.Warnf("Skipping invalid argument '%s' in MapAddress msg", to)
		return "", &control.Error{Code: control.CodeSyntaxArgs, Msg: "syntax error: invalid address '" + to + "'"}
	}
	mapping := "'" + from + "=" + to + "'"
	var err error
	switch from {
	case ".":
		from, err = m.VirtualHost(to, addrmap.FromController)
	case "0.0.0.0", "::":
		var a netip.Addr
		a, err = m.Virtual(to, from == "::", addrmap.FromController)
		from = a.String()
	default:
		if err := m.Register(from, to, addrmap.FromController, time.Time{}); err != nil {
			b.log.Warnf("Skipping invalid argument %s in MapAddress msg: %v", mapping, err)
			return "", control.WrapError(control.CodeSyntaxArgs, "syntax error: invalid address mapping  "+mapping+": ", err)
		}
	}
	if err != nil {
		b.log.Warnf("Unable to allocate address for '%s' in MapAddress msg", to)
		return "", &control.Error{Code: control.CodeResourceExhausted, Msg: "resource exhausted: skipping " + mapping}
	}
	return from, nil
}
