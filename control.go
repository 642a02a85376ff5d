package main

import (
	"context"
	"sync"

	onionclient "tinytor/onion/client"
	"tinytor/onion/ctl"
	"tinytor/onion/service"
	"tinytor/socks/dnsport"
	"tinytor/tor"
	"tinytor/tor/addrmap"
	"tinytor/tor/clientmetrics"
	"tinytor/tor/config"
	"tinytor/tor/control"
	"tinytor/tor/ctlbackend"
	"tinytor/tor/metrics"
	"tinytor/tor/torlog"
)

// controlVersion is what GETINFO version and PROTOCOLINFO report: the C tor
// release whose control protocol tinytor speaks, then tinytor's version,
// in a form stem's version parser accepts.
func controlVersion() string { return "0.4.9.11-tinytor-" + version }

// startControl opens the torrc's ControlPorts, ControlSockets and
// MetricsPorts, writing the control cookie if CookieAuthentication is
// set. onion serves the client-side onion commands (ONION_CLIENT_AUTH_*,
// HSFETCH); ADD_ONION services run until DEL_ONION or stop. The
// controllers get their events from the client's bus. apply makes a
// SETCONF configuration live, reload acts as SIGHUP and shutdown as
// SIGTERM. stop closes everything and waits for it.
//
// amap answers MAPADDRESS and GETINFO address-mappings/*; it and dns (the
// DNSPort counters) are also on the MetricsPort, with what extraMetrics
// registers (the gateway's front ends).
func startControl(ctx context.Context, cfg *config.Config, src config.Sources, client *tor.Client, onion *onionclient.Client,
	amap *addrmap.Map, dns *dnsport.Counters, log *torlog.Logger,
	apply func(*config.Config) error, reload, shutdown func(), extraMetrics ...func(*metrics.Registry) error) (stop func(), err error) {
	metricsAddrs, stopMetrics, err := clientmetrics.Serve(ctx, client, cfg, log, append([]func(*metrics.Registry) error{frontEndMetrics(amap, dns)}, extraMetrics...)...)
	if err != nil {
		return nil, err
	}
	if len(cfg.ControlPorts) == 0 && len(cfg.ControlSockets) == 0 {
		return stopMetrics, nil
	}
	cleanups := []func(){stopMetrics}
	stop = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	lns, err := ctlbackend.Listen(cfg)
	cleanups = append(cleanups, func() {
		for _, l := range lns {
			l.Close()
		}
	})
	var auth control.AuthConfig
	if err == nil {
		auth, err = ctlbackend.Auth(cfg, log)
	}
	if err != nil {
		stop()
		return nil, err
	}
	onionCmds := ctl.New(ctl.Config{Client: client, Onion: onion, Events: client.Events(), Log: log,
		Collides: func(id string) bool { return service.TorrcIDs(client.Config().HiddenServices)[id] }})
	cleanups = append(cleanups, onionCmds.Close)
	backend, err := ctlbackend.New(ctlbackend.Config{Client: client, Onion: onionCmds, AddrMap: amap, Log: log, Version: controlVersion(),
		Sources: src, Apply: apply, Reload: reload, Shutdown: shutdown, Listeners: ctlbackend.ListenerAddrs(client, lns, metricsAddrs)})
	if err != nil {
		stop()
		return nil, err
	}
	cleanups = append(cleanups, backend.Close)
	srv, err := control.NewServer(control.Config{Auth: auth, Backend: backend, Logger: log})
	if err != nil {
		stop()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	cleanups = append(cleanups, func() { cancel(); wg.Wait() })
	wg.Go(func() { backend.Run(ctx, srv) })
	for _, l := range lns {
		log.Noticef("Opened Control listener connection (ready) on %s", control.ListenerAddr(l))
		wg.Go(func() {
			if err := srv.Serve(ctx, l); err != nil && ctx.Err() == nil {
				log.Warnf("Control listener on %s failed: %v", control.ListenerAddr(l), err)
			}
		})
	}
	return stop, nil
}
