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
	var errs []error
	for _, f := range []struct {
		prefix, what string
		ls           *socks.Listeners
	}{{"tinytor_transport_", "TransPort", g.trans}, {"tinytor_httptunnel_", "HTTPTunnelPort", g.http}} {
		stat := func(v func(socks.Stats) uint64) func() float64 {
			return func() float64 { return float64(v(f.ls.Stats())) }
		}
		errs = append(errs,
			reg.NewCounterFunc(f.prefix+"connections_total", f.what+" connections accepted.",
				stat(func(s socks.Stats) uint64 { return s.Accepted })),
			reg.NewGaugeFunc(f.prefix+"connections_open", f.what+" connections open.",
				func() float64 { return float64(f.ls.Stats().Active) }),
			reg.NewCounterFunc(f.prefix+"connections_refused_total",
				f.what+" connections closed before a stream was asked for (SocksPolicy, bad request, not redirected, too many connections).",
				stat(func(s socks.Stats) uint64 { return s.Denied + s.BadHandshake + s.OverLimit })),
			reg.NewCounterFunc(f.prefix+"streams_succeeded_total", f.what+" streams opened.",
				stat(func(s socks.Stats) uint64 { return s.Succeeded })),
			reg.NewCounterFunc(f.prefix+"streams_failed_total", f.what+" streams that could not be opened.",
				stat(func(s socks.Stats) uint64 { return s.Failed })))
	}
	return errors.Join(errs...)
}
