package main

import (
	"context"
	"errors"
	"net/netip"

	"tinytor/socks"
	"tinytor/socks/dnsport"
	"tinytor/tor"
	"tinytor/tor/addrmap"
	"tinytor/tor/circuit"
	"tinytor/tor/config"
	"tinytor/tor/errfmt"
	"tinytor/tor/metrics"
	"tinytor/tor/torlog"
)

// addrMapConfig is the address map's part of the torrc.
func addrMapConfig(cfg *config.Config) addrmap.Config {
	return addrmap.Config{Automap: cfg.AutomapHostsOnResolve, Suffixes: cfg.AutomapHostsSuffixes,
		IPv4: cfg.VirtualAddrNetworkIPv4, IPv6: cfg.VirtualAddrNetworkIPv6}
}

// applyMapAddress makes the torrc's MapAddress lines the address map's
// configured mappings, logging those it refuses as C tor does.
func applyMapAddress(m *addrmap.Map, cfg *config.Config, log *torlog.Logger) {
	pairs := make([][2]string, 0, len(cfg.MapAddresses))
	for _, p := range cfg.MapAddresses {
		pairs = append(pairs, [2]string{p.From, p.To})
	}
	for _, err := range m.SetConfigured(pairs) {
		log.Warnf("%v.", err)
	}
}

// dnsPorts are the torrc's DNSPorts as package dnsport opens them; they
// all count into counters.
func dnsPorts(cfg *config.Config, log *torlog.Logger, counters *dnsport.Counters) []dnsport.Port {
	ports := make([]dnsport.Port, 0, len(cfg.DNSPorts))
	for _, p := range cfg.DNSPorts {
		ports = append(ports, dnsport.Port{Addr: p.Addr, Config: dnsport.Config{
			ID:            "dns:" + p.Listener.String(),
			Flags:         socksFlags(p),
			Policy:        cfg.SocksPolicy,
			Log:           log,
			UnsafeLogging: cfg.SafeLogging == config.SafeLoggingOff,
			Counters:      counters,
		}})
	}
	return ports
}

// dnsResolver answers the DNSPort's lookups as the SOCKS port's: through
// the address map, then an exit.
type dnsResolver struct{ d socksDialer }

func (r dnsResolver) Resolve(ctx context.Context, host string, ipv6 bool, client netip.AddrPort, iso socks.IsolationKey) ([]netip.Addr, uint32, error) {
	addrs, ttl, err := r.d.resolve(tor.WithSource(ctx, client), host, ipv6, iso)
	return addrs, ttl, dnsError(err)
}

func (r dnsResolver) ResolvePTR(ctx context.Context, addr netip.Addr, client netip.AddrPort, iso socks.IsolationKey) (string, uint32, error) {
	name, ttl, err := r.d.resolvePTR(tor.WithSource(ctx, client), addr, iso)
	return name, ttl, dnsError(err)
}

// dnsError marks an exit's permanent "no such name" as dnsport.ErrNotFound
// (NXDOMAIN, C tor's RESOLVED_TYPE_ERROR); other failures stay SERVFAIL.
func dnsError(err error) error {
	var re *circuit.ResolveError
	if errors.As(err, &re) && !re.Transient {
		return errfmt.Errorf("%w: %w", dnsport.ErrNotFound, err)
	}
	return err
}

// frontEndMetrics registers the DNSPort's query counts by outcome and the
// address map's virtual addresses on the MetricsPort.
func frontEndMetrics(amap *addrmap.Map, counters *dnsport.Counters) func(*metrics.Registry) error {
	return func(reg *metrics.Registry) error {
		if amap == nil || counters == nil {
			return nil
		}
		if err := reg.NewGaugeFunc("tinytor_automap_entries", "Virtual addresses mapped to names (AutomapHostsOnResolve and MAPADDRESS).",
			func() float64 { return float64(amap.Virtuals()) }); err != nil {
			return err
		}
		vec, err := reg.NewCounterVec("tinytor_dns_queries_total", "DNSPort queries by outcome.", "outcome")
		if err != nil {
			return err
		}
		// The counts live in dnsport.Counters, which outlast reloads and
		// are there without a MetricsPort: start the series at their
		// values, then follow them.
		series := make([]*metrics.Counter, len(dnsport.Outcomes()))
		for i, o := range dnsport.Outcomes() {
			if series[i], err = vec.With(o.String()); err != nil {
				return err
			}
		}
		counters.OnAdd(func(o dnsport.Outcome) { series[o].Inc() })
		for i, o := range dnsport.Outcomes() {
			series[i].Add(counters.Get(o))
		}
		return nil
	}
}
