package clientmetrics

import (
	"context"
	"net"
	"sync"

	"tinytor/tor"
	"tinytor/tor/config"
	"tinytor/tor/errfmt"
	"tinytor/tor/metrics"
	"tinytor/tor/torlog"
)

// Serve serves c's metrics on the torrc's MetricsPorts (cfg), to the
// clients MetricsPortPolicy admits, until ctx ends or stop is called, and
// returns the ports' addresses. stop waits until the ports are closed.
// With no MetricsPort it does nothing. extra registers the metrics of
// parts beside the client (the front ends).
func Serve(ctx context.Context, c *tor.Client, cfg *config.Config, log *torlog.Logger, extra ...func(*metrics.Registry) error) (addrs []string, stop func(), err error) {
	if len(cfg.MetricsPorts) == 0 {
		return nil, func() {}, nil
	}
	reg := metrics.NewRegistry()
	unsubscribe, err := Register(reg, c)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range extra {
		if err := f(reg); err != nil {
			unsubscribe()
			return nil, nil, errfmt.Errorf("clientmetrics: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop = func() {
		cancel()
		wg.Wait()
		unsubscribe()
	}
	srv := metrics.NewServer(reg, cfg.MetricsPortPolicy, log)
	for _, mp := range cfg.MetricsPorts {
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(mp.Addr))
		if err != nil {
			stop()
			return nil, nil, errfmt.Errorf("Failed to open MetricsPort %s: %w", mp.Listener, err)
		}
		if !mp.Addr.Addr().IsLoopback() && len(cfg.MetricsPortPolicy) == 0 {
			log.Warnf("MetricsPort %s is not on loopback, but no MetricsPortPolicy is set: only loopback clients are accepted.", mp.Listener)
		}
		addrs = append(addrs, l.Addr().String())
		log.Noticef("Opened Metrics listener connection (ready) on %s", l.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx, l); err != nil && ctx.Err() == nil {
				log.Warnf("Metrics listener on %s failed: %v", l.Addr(), err)
			}
		}()
	}
	return addrs, stop, nil
}
