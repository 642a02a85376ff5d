package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"tinytor/board"
	"tinytor/board/state"
	onionclient "tinytor/onion/client"
	"tinytor/socks"
	"tinytor/tor"
	"tinytor/tor/cell"
	"tinytor/tor/config"
	"tinytor/tor/event"
	"tinytor/tor/guard"
	"tinytor/tor/policy"
	"tinytor/tor/torlog"
)

// openLogs builds the logger the torrc's Log lines ask for. The returned
// closer closes any files it opened.
func openLogs(cfg *config.Config, stdout, stderr io.Writer) (*torlog.Logger, func(), error) {
	var sinks []torlog.Sink
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	for _, t := range cfg.Logs {
		var w io.Writer
		switch t.Dest {
		case config.LogStdout:
			w = stdout
		case config.LogStderr:
			w = stderr
		case config.LogFile:
			f, err := os.OpenFile(t.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("opening log file: %w", err)
			}
			closers = append(closers, f)
			w = f
		case config.LogSyslog:
			sw, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_NOTICE, "tinytor")
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("opening syslog: %w", err)
			}
			closers = append(closers, sw)
			w = sw
		default:
			closeAll()
			return nil, nil, fmt.Errorf("unsupported log destination %v", t.Dest)
		}
		sinks = append(sinks, torlog.Sink{Min: t.Min, Max: t.Max, W: w})
	}
	return torlog.New(sinks...), closeAll, nil
}

// runTor runs the client and its listeners until a SIGINT or SIGTERM.
// SIGHUP reloads the torrc with reload: listeners that appeared open,
// ones that vanished close, and a torrc that does not load leaves
// everything as it was (with the reason logged), as in C tor.
func runTor(cfg *config.Config, src config.Sources, reload func(*torlog.Logger) (*config.Config, error), stdout, stderr io.Writer) int {
	log, closeLogs, err := openLogs(cfg, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tinytor: %v\n", err)
		return exitConfig
	}
	defer func() { closeLogs() }() // closeLogs changes on reload
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

	// One event bus for the client, the onion code and the logs; the
	// control port, the metrics and the board subscribe to it.
	bus := &event.Bus{}
	log.OnMessage(func(sev torlog.Severity, msg string) { bus.Publish(event.Log{Severity: sev, Message: msg}) })
	client, err := tor.New(tor.Config{Torrc: cfg, Log: log, Events: bus, Now: brd.Now, AllowNewStream: brd.AllowNewStream,
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

	ls := &socksListeners{client: client, onion: onion, log: log, open: map[string]*socksListener{}}
	defer ls.closeAll()
	if err := ls.apply(ctx, cfg); err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// applyConfig makes a new torrc live: after SIGHUP, and for SETCONF.
	var applyMu sync.Mutex
	applyConfig := func(nc *config.Config) error {
		applyMu.Lock()
		defer applyMu.Unlock()
		nlog, ncloseLogs, err := openLogs(nc, stdout, stderr)
		if err != nil {
			return fmt.Errorf("Restoring previous configuration: %w", err)
		}
		closeLogs()
		closeLogs = ncloseLogs
		log.SetSinks(nlog.Sinks()...)
		client.Reconfigure(nc)
		onion.SetAuthDir(nc.ClientOnionAuthDir)
		return ls.apply(ctx, nc)
	}
	sendHup := func() {
		select {
		case hup <- syscall.SIGHUP:
		default:
		}
	}
	stopControl, err := startControl(ctx, cfg, src, client, onion, log, applyConfig, sendHup, stop)
	if err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}
	defer stopControl()
	if err := brd.Start(ctx, client, bus, st); err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}
	stopOnion, err := startOnionServices(ctx, cfg, client, log, bus)
	if err != nil {
		log.Errf("%v", err)
		return exitRuntime
	}
	defer stopOnion()
	runDone := make(chan error, 1)
	go func() { runDone <- client.Run(ctx) }()
	for {
		select {
		case err := <-runDone:
			stop()
			if err != nil {
				log.Errf("%v", err)
				return exitRuntime
			}
			log.Noticef("Clean shutdown finished. Exiting.")
			return exitOK
		case <-hup:
			log.Noticef("Received reload signal (hup). Reloading config and resetting internal state.")
			nc, err := reload(log)
			if err != nil {
				log.Warnf("Restoring previous configuration: the new torrc is not valid: %v", err)
				continue
			}
			if err := applyConfig(nc); err != nil {
				log.Warnf("%v", err)
			}
		}
	}
}

// socksListener is one open SocksPort.
type socksListener struct {
	conf config.SocksPort
	srv  *socks.Server
	done chan struct{}
}

// socksListeners keeps the open SocksPorts in step with the torrc.
type socksListeners struct {
	client *tor.Client
	onion  *onionclient.Client
	log    *torlog.Logger
	open   map[string]*socksListener // by listener address
	policy policy.Policy
}

// apply opens the SocksPorts cfg names that are not open, closes the
// ones it no longer names, and reopens ones whose flags changed.
func (ls *socksListeners) apply(ctx context.Context, cfg *config.Config) error {
	want := map[string]config.SocksPort{}
	for _, sp := range cfg.SocksPorts {
		want[sp.Listener.String()] = sp
	}
	policyChanged := !slices.Equal(ls.policy, cfg.SocksPolicy)
	ls.policy = cfg.SocksPolicy
	for key, l := range ls.open {
		if sp, ok := want[key]; ok && sp == l.conf && !policyChanged {
			continue
		}
		l.srv.Close()
		<-l.done
		delete(ls.open, key)
		ls.log.Noticef("Closing no-longer-configured Socks listener on %s", key)
	}
	var errs []error
	for key, sp := range want {
		if ls.open[key] != nil {
			continue
		}
		srv, ln, err := listenSocks(cfg, sp, socksDialer{ls.client, ls.onion}, ls.log)
		if err != nil {
			errs = append(errs, fmt.Errorf("Failed to open SocksPort %s: %w", key, err))
			continue
		}
		l := &socksListener{conf: sp, srv: srv, done: make(chan struct{})}
		ls.open[key] = l
		go func() {
			defer close(l.done)
			if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil && !errors.Is(err, socks.ErrClosed) {
				ls.log.Warnf("Socks listener on %s failed: %v", ln.Addr(), err)
			}
		}()
	}
	return errors.Join(errs...)
}

func (ls *socksListeners) closeAll() {
	for key, l := range ls.open {
		l.srv.Close()
		<-l.done
		delete(ls.open, key)
	}
}

// listenSocks opens one SocksPort.
func listenSocks(cfg *config.Config, sp config.SocksPort, d socksDialer, log *torlog.Logger) (*socks.Server, net.Listener, error) {
	var ln net.Listener
	var err error
	id := sp.Listener.String()
	if sp.Unix != "" {
		if err := os.MkdirAll(filepath.Dir(sp.Unix), 0o700); err != nil {
			return nil, nil, err
		}
		os.Remove(sp.Unix)
		ln, err = net.Listen("unix", sp.Unix)
	} else {
		ln, err = net.Listen("tcp", sp.Addr.String())
	}
	if err != nil {
		return nil, nil, err
	}
	if sp.Unix == "" && !sp.Addr.Addr().IsLoopback() && len(cfg.SocksPolicy) == 0 {
		log.Warnf("SocksPort %s is not on loopback, but no SocksPolicy is set: only loopback clients are accepted. "+
			"Add e.g. 'SocksPolicy accept 192.168.1.0/24, reject *' to the torrc to let your LAN in.", id)
	}
	srv, err := socks.New(socks.Config{
		ID:              id,
		Flags:           socksFlags(sp),
		Policy:          cfg.SocksPolicy,
		SafeSocks:       cfg.SafeSocks,
		WarnUnsafeSocks: cfg.WarnUnsafeSocks,
		Log:             log,
	}, d)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return srv, ln, nil
}

// socksFlags converts a SocksPort line's flags.
func socksFlags(sp config.SocksPort) socks.Flags {
	return socks.Flags{
		IsolateDestAddr:       sp.Isolation&config.IsolateDestAddr != 0,
		IsolateDestPort:       sp.Isolation&config.IsolateDestPort != 0,
		IsolateSOCKSAuth:      sp.Isolation&config.IsolateSOCKSAuth != 0,
		IsolateClientAddr:     sp.Isolation&config.IsolateClientAddr != 0,
		IsolateClientProtocol: sp.Isolation&config.IsolateClientProtocol != 0,
		NoIPv4Traffic:         !sp.IPv4Traffic,
		IPv6Traffic:           sp.IPv6Traffic,
		PreferIPv6:            sp.PreferIPv6,
		ExtendedErrors:        sp.ExtendedErrors,
		OnionTrafficOnly:      !sp.IPv4Traffic && !sp.IPv6Traffic && sp.OnionTraffic,
		NoOnionTraffic:        !sp.OnionTraffic,
		SessionGroup:          sp.SessionGroup,
		SessionGroupSet:       sp.SessionGroup >= 0,
	}
}

// socksDialer serves SOCKS requests with the Tor client, and .onion
// hosts with the onion service client.
type socksDialer struct {
	c     *tor.Client
	onion *onionclient.Client
}

func (d socksDialer) DialStream(ctx context.Context, req *socks.Request, iso socks.IsolationKey) (net.Conn, error) {
	if socks.IsOnion(req.Host) {
		conn, err := d.onion.Dial(ctx, req.Host, req.Port, iso)
		if err != nil {
			return nil, onionSocksError(err)
		}
		return conn, nil
	}
	conn, err := d.c.Dial(ctx, req.Host, req.Port, iso)
	if err != nil {
		return nil, socksError(err)
	}
	return conn, nil
}

func (d socksDialer) Resolve(ctx context.Context, host string, iso socks.IsolationKey) ([]netip.Addr, error) {
	addrs, err := d.c.Resolve(ctx, host, iso)
	if err != nil {
		return nil, socksError(err)
	}
	return addrs, nil
}

func (d socksDialer) ResolvePTR(ctx context.Context, addr netip.Addr, iso socks.IsolationKey) (string, error) {
	name, err := d.c.ResolvePTR(ctx, addr, iso)
	if err != nil {
		return "", socksError(err)
	}
	return name, nil
}

// onionSocksError chooses the SOCKS reply for a failed onion connection:
// proposal 304's codes (the socks package turns them into general
// failure without ExtendedErrors).
func onionSocksError(err error) error {
	var oe *onionclient.Error
	if !errors.As(err, &oe) {
		return socksError(err)
	}
	var r socks.ReplyCode
	switch oe.Kind {
	case onionclient.DescNotFound:
		r = socks.ReplyOnionDescNotFound
	case onionclient.DescInvalid:
		r = socks.ReplyOnionDescInvalid
	case onionclient.IntroFailed:
		r = socks.ReplyOnionIntroFailed
	case onionclient.RendFailed:
		r = socks.ReplyOnionRendFailed
	case onionclient.MissingClientAuth:
		r = socks.ReplyOnionMissingClientAuth
	case onionclient.BadClientAuth:
		r = socks.ReplyOnionWrongClientAuth
	case onionclient.BadAddress:
		r = socks.ReplyOnionBadAddress
	case onionclient.IntroTimeout:
		r = socks.ReplyOnionIntroTimedOut
	default:
		return socksError(err)
	}
	return &socks.Error{Reply: r, Err: err}
}

// socksError chooses the SOCKS reply for a stream failure as C tor does
// (connection_ap_handshake_socks_reply / END reason mapping).
func socksError(err error) error {
	var se *tor.StreamError
	if errors.As(err, &se) {
		switch se.Reason {
		case cell.EndResolveFailed:
			return &socks.Error{Reply: socks.ReplyHostUnreachable, Err: err}
		case cell.EndConnectRefused:
			return &socks.Error{Reply: socks.ReplyConnectionRefused, Err: err}
		case cell.EndExitPolicy:
			return &socks.Error{Reply: socks.ReplyNotAllowed, Err: err}
		case cell.EndNoRoute:
			return &socks.Error{Reply: socks.ReplyNetworkUnreachable, Err: err}
		case cell.EndTimeout:
			return &socks.Error{Reply: socks.ReplyTTLExpired, Err: err}
		case cell.EndResourceLimit: // also tor.ErrOverloaded: memory pressure
			return &socks.Error{Reply: socks.ReplyGeneralFailure, Err: err}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &socks.Error{Reply: socks.ReplyTTLExpired, Err: err}
	}
	return err
}
