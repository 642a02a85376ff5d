package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"tinytor/board"
	"tinytor/board/state"
	onionclient "tinytor/onion/client"
	"tinytor/onion/pow"
	"tinytor/onion/service"
	"tinytor/socks"
	"tinytor/socks/dnsport"
	"tinytor/tor"
	"tinytor/tor/addrmap"
	"tinytor/tor/config"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/guard"
	"tinytor/tor/lock"
	"tinytor/tor/metrics"
	"tinytor/tor/torlog"
)

// runTor runs the client and its listeners until a SIGINT or SIGTERM.
// SIGHUP reloads the torrc with reload: listeners that appeared open,
// ones that vanished close, and a torrc that does not load leaves
// everything as it was (with the reason logged), as in C tor.
func runTor(cfg *config.Config, src config.Sources, reload func(*torlog.Logger) (*config.Config, error), stdout, stderr io.Writer) int {
	log, closeLogs, err := config.OpenLogs(cfg.Logs, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tinytor: %v\n", err)
		return exitConfig
	}
	n := &node{stdout: stdout, stderr: stderr, log: log, closeLogs: closeLogs}
	defer n.close()
	log.Noticef("tinytor %s (Tor protocol client) starting.", version)

	for _, d := range []string{cfg.DataDirectory, cfg.CacheDirectory} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			log.Errf("Couldn't create directory %s: %v", d, err)
			return exitRuntime
		}
	}
	if cfg.PidFile != "" {
		if err := os.WriteFile(cfg.PidFile, fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
			log.Warnf("Couldn't write PidFile %s: %v", cfg.PidFile, err)
		} else {
			defer os.Remove(cfg.PidFile)
		}
	}

	// The router layer: memory plan, network clock, watchdogs (board/).
	brd, err := board.New(cfg, log, os.Getenv)
	if err != nil {
		log.Errf("%v", err)
		return exitConfig
	}
	defer brd.Close()

	// One writer for everything persistent on flash (board/state).
	st, err := state.Open(cfg.DataDirectory, brd.StateOptions())
	if err != nil {
		log.Errf("Opening the state directory: %v", err)
		return exitRuntime
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Warnf("Writing state on exit: %v", err)
		}
	}()
	return n.run(cfg, src, reload, brd, st)
}

// node is one run of tinytor: the logs, the client and what serves it.
type node struct {
	stdout, stderr io.Writer
	log            *torlog.Logger
	client         *tor.Client
	onion          *onionclient.Client
	socks          *socks.Listeners
	dns            *dnsport.Listeners
	dnsCounters    *dnsport.Counters // DNS queries by outcome, across reloads
	amap           *addrmap.Map      // lives as long as the process: mappings survive SIGHUP
	gateway        *gateway          // TransPorts and HTTPTunnelPorts
	services       *service.Set      // the torrc's onion services
	powGauges      atomic.Pointer[powGauges]

	mu        lock.Mutex // serialises configuration changes
	closeLogs func()     // closes the log files of the configuration in force
}

// run builds the client, the onion service client, the SOCKS, control and
// metrics listeners and the torrc's onion services, starts the board, and
// serves until a SIGINT or SIGTERM.
func (n *node) run(cfg *config.Config, src config.Sources, reload func(*torlog.Logger) (*config.Config, error), brd *board.Board, st *state.Store) int {
	log := n.log
	// One event bus for the client, the onion code and the logs; the
	// control port, the metrics and the board subscribe to it.
	bus := &event.Bus{}
	log.OnMessage(func(sev torlog.Severity, msg string) { bus.Publish(event.Log{Severity: sev, Message: msg}) })
	client, err := tor.New(tor.Config{Torrc: cfg, Log: log, Events: bus, Now: brd.Now, AllowNewStream: brd.AllowNewStream,
		MaxQueuedCells: int(brd.Caps().QueuedCells), // the cell pool's capacity, from MaxMemInQueues
		State: guard.Funcs{
			ReadFunc:  st.Read,
			WriteFunc: func(name string, b []byte) error { return st.Write(name, b, state.TimeDependent) },
		}})
	if err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	onion, err := onionclient.New(onionclient.Config{Net: client, Log: log, Testing: cfg.TestingTorNetwork,
		AuthDir: cfg.ClientOnionAuthDir, Dirtiness: cfg.MaxCircuitDirtiness, Events: bus})
	if err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}
	defer onion.Close()
	n.client, n.onion = client, onion
	n.amap, err = addrmap.New(addrMapConfig(cfg), nil, nil)
	if err != nil {
		log.Errf("%v", err)
		return exitConfig
	}
	applyMapAddress(n.amap, cfg, log)
	dialer := socksDialer{c: client, onion: onion, amap: n.amap, log: log}
	n.socks = socks.NewListeners(dialer, log)
	defer n.socks.Close()
	if err := n.socks.Apply(ctx, socksPorts(cfg, log)); err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}
	n.dnsCounters = &dnsport.Counters{}
	n.dns = dnsport.NewListeners(dnsResolver{dialer}, log)
	defer n.dns.Close()
	if err := n.dns.Apply(ctx, dnsPorts(cfg, log, n.dnsCounters)); err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}
	n.gateway = newGateway(dialer, log)
	defer n.gateway.close()
	if err := n.gateway.apply(ctx, cfg, log); err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	sendHup := func() {
		select {
		case hup <- syscall.SIGHUP:
		default:
		}
	}
	apply := func(nc *config.Config) error { return n.apply(ctx, nc) }
	n.services = service.NewSet(ctx, client, service.Options{Testing: cfg.TestingTorNetwork, Log: log, Events: bus, Rand: client.Rand(),
		PoWStats: n.powStats})
	defer n.services.Stop()
	stopControl, err := startControl(ctx, cfg, src, client, onion, n.amap, n.dnsCounters, log, apply, sendHup, stop, n.gateway.metrics, n.powMetrics)
	if err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}
	defer stopControl()
	if err := brd.Start(ctx, client, bus, st); err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}
	n.mu.Lock()
	err = n.services.Apply(cfg.HiddenServices)
	n.mu.Unlock()
	if err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}
	return n.serve(ctx, stop, hup, reload)
}

// serve runs the client until ctx ends, reloading the torrc on SIGHUP.
func (n *node) serve(ctx context.Context, stop func(), hup <-chan os.Signal, reload func(*torlog.Logger) (*config.Config, error)) int {
	runDone := make(chan error, 1)
	go func() { runDone <- n.client.Run(ctx) }()
	for {
		select {
		case err := <-runDone:
			stop()
			if err != nil {
				n.log.Errf("%v", err)
				return exitRuntime
			}
			n.log.Noticef("Clean shutdown finished. Exiting.")
			return exitOK
		case <-hup:
			n.log.Noticef("Received reload signal (hup). Reloading config and resetting internal state.")
			nc, err := reload(n.log)
			if err != nil {
				n.log.Warnf("Restoring previous configuration: the new torrc is not valid: %v", err)
				continue
			}
			if err := n.apply(ctx, nc); err != nil {
				n.log.Warnf("%v", err)
			}
		}
	}
}

// apply makes a new torrc live: after SIGHUP, and for SETCONF.
func (n *node) apply(ctx context.Context, nc *config.Config) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	nlog, ncloseLogs, err := config.OpenLogs(nc.Logs, n.stdout, n.stderr)
	if err != nil {
		return errfmt.Errorf("Restoring previous configuration: %w", err)
	}
	n.closeLogs()
	n.closeLogs = ncloseLogs
	n.log.SetSinks(nlog.Sinks()...)
	n.client.Reconfigure(nc)
	n.onion.SetAuthDir(nc.ClientOnionAuthDir)
	if err := n.amap.SetConfig(addrMapConfig(nc)); err != nil {
		return errfmt.Errorf("Restoring previous address map settings: %w", err)
	}
	applyMapAddress(n.amap, nc, n.log)
	return errors.Join(n.socks.Apply(ctx, socksPorts(nc, n.log)), n.dns.Apply(ctx, dnsPorts(nc, n.log, n.dnsCounters)),
		n.gateway.apply(ctx, nc, n.log), n.services.Apply(nc.HiddenServices))
}

// close closes the log files.
func (n *node) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closeLogs()
}

// powGauges are the MetricsPort's proof-of-work series of the onion
// services, with C tor's names.
type powGauges struct {
	effort, queued *metrics.GaugeVec
}

// powMetrics registers them.
func (n *node) powMetrics(reg *metrics.Registry) error {
	effort, err := reg.NewGaugeVec("tor_hs_pow_suggested_effort", "Suggested effort of an onion service's proof-of-work defenses", "onion")
	if err != nil {
		return err
	}
	queued, err := reg.NewGaugeVec("tor_hs_rdv_pow_pqueue_count", "Introductions waiting in an onion service's proof-of-work queue", "onion")
	if err != nil {
		return err
	}
	n.powGauges.Store(&powGauges{effort, queued})
	return nil
}

// powStats feeds a service's counters to the gauges, once they exist.
func (n *node) powStats(onion string, st pow.Stats) {
	g := n.powGauges.Load()
	if g == nil {
		return
	}
	if e, err := g.effort.With(onion); err == nil {
		e.Set(float64(st.SuggestedEffort))
	}
	if q, err := g.queued.With(onion); err == nil {
		q.Set(float64(st.Queued))
	}
}
