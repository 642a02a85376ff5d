package main

import (
	"context"
	"errors"

	"tinytor/socks"
	"tinytor/socks/httptunnel"
	"tinytor/socks/transparent"
	"tinytor/tor/config"
	"tinytor/tor/metrics"
	"tinytor/tor/torlog"
)

// gateway is the LAN gateway's TCP front ends beside the SocksPorts:
// TransPorts (connections the packet filter redirects) and
// HTTPTunnelPorts (HTTP CONNECT). They serve with the SOCKS ports' Dialer.
type gateway struct {
	trans, http *socks.Listeners
}

// newGateway returns the front ends, with no port open yet.
func newGateway(d socks.Dialer, log *torlog.Logger) *gateway {
	return &gateway{
		trans: socks.NewProtocolListeners(transparent.Protocol{}, d, log),
		http:  socks.NewProtocolListeners(httptunnel.Protocol{}, d, log),
	}
}

// apply opens and closes ports to match cfg (at start and on reload).
func (g *gateway) apply(ctx context.Context, cfg *config.Config, log *torlog.Logger) error {
	return errors.Join(g.trans.Apply(ctx, clientPorts(cfg.TransPorts, cfg, log)),
		g.http.Apply(ctx, clientPorts(cfg.HTTPTunnelPorts, cfg, log)))
}

// close closes every port.
func (g *gateway) close() {
	g.trans.Close()
	g.http.Close()
}

// metrics registers the front ends' counters on the MetricsPort, read
// from the listener sets at each scrape:
//
//	tinytor_transport_connections_total         counter  TransPort connections accepted
//	tinytor_transport_connections_open          gauge    TransPort connections open
//	tinytor_transport_connections_refused_total counter  closed before a stream was asked for
//	tinytor_transport_streams_succeeded_total   counter  streams opened
//	tinytor_transport_streams_failed_total      counter  streams that could not be opened
//
// and the same as tinytor_httptunnel_* for the HTTPTunnelPorts.
func (g *gateway) metrics(reg *metrics.Registry) error {
	series := []struct {
		name, help string
		counter    bool
		get        func(socks.Stats) uint64
	}{
		{"connections_total", "connections accepted.", true, func(s socks.Stats) uint64 { return s.Accepted }},
		{"connections_open", "connections open.", false, func(s socks.Stats) uint64 { return uint64(s.Active) }},
		{"connections_refused_total", "connections closed before a stream was asked for (SocksPolicy, bad request, not redirected, too many).", true,
			func(s socks.Stats) uint64 { return s.Denied + s.BadHandshake + s.OverLimit }},
		{"streams_succeeded_total", "streams opened.", true, func(s socks.Stats) uint64 { return s.Succeeded }},
		{"streams_failed_total", "streams that could not be opened.", true, func(s socks.Stats) uint64 { return s.Failed }},
	}
	var errs []error
	for _, port := range []struct {
		prefix, what string
		ls           *socks.Listeners
	}{{"tinytor_transport_", "TransPort ", g.trans}, {"tinytor_httptunnel_", "HTTPTunnelPort ", g.http}} {
		for _, m := range series {
			ls, get := port.ls, m.get
			fn := func() float64 { return float64(get(ls.Stats())) }
			register := reg.NewGaugeFunc
			if m.counter {
				register = reg.NewCounterFunc
			}
			errs = append(errs, register(port.prefix+m.name, port.what+m.help, fn))
		}
	}
	return errors.Join(errs...)
}
