package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	onionclient "tinytor/onion/client"
	"tinytor/onion/ctl"
	"tinytor/onion/service"
	"tinytor/tor"
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
func startControl(ctx context.Context, cfg *config.Config, src config.Sources, client *tor.Client, onion *onionclient.Client, log *torlog.Logger,
	apply func(*config.Config) error, reload, shutdown func()) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var cleanups []func()
	stop = func() {
		cancel()
		wg.Wait()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	fail := func(err error) (func(), error) {
		stop()
		return nil, err
	}
	var ctlAddrs, metricsAddrs []string

	if len(cfg.MetricsPorts) > 0 {
		reg := metrics.NewRegistry()
		unsubscribe, err := clientmetrics.Register(reg, client)
		if err != nil {
			return fail(err)
		}
		cleanups = append(cleanups, unsubscribe)
		srv := metrics.NewServer(reg, cfg.MetricsPortPolicy, log)
		for _, mp := range cfg.MetricsPorts {
			l, err := net.Listen("tcp", mp.Addr.String())
			if err != nil {
				return fail(fmt.Errorf("Failed to open MetricsPort %s: %w", mp.Listener, err))
			}
			if !mp.Addr.Addr().IsLoopback() && len(cfg.MetricsPortPolicy) == 0 {
				log.Warnf("MetricsPort %s is not on loopback, but no MetricsPortPolicy is set: only loopback clients are accepted.", mp.Listener)
			}
			metricsAddrs = append(metricsAddrs, l.Addr().String())
			log.Noticef("Opened Metrics listener connection (ready) on %s", l.Addr())
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.Serve(ctx, l); err != nil && ctx.Err() == nil {
					log.Warnf("Metrics listener on %s failed: %v", l.Addr(), err)
				}
			}()
		}
	}
	if len(cfg.ControlPorts) > 0 || len(cfg.ControlSockets) > 0 {
		var lns []net.Listener
		closeAll := func() {
			for _, l := range lns {
				l.Close()
			}
		}
		for _, cp := range cfg.ControlPorts {
			l, err := listenControl(cp)
			if err != nil {
				closeAll()
				return fail(fmt.Errorf("Failed to open ControlPort %s: %w", cp.Listener, err))
			}
			lns = append(lns, l)
		}
		for _, path := range cfg.ControlSockets {
			l, err := listenControl(config.ControlPort{Listener: config.Listener{Unix: path}})
			if err != nil {
				closeAll()
				return fail(fmt.Errorf("Failed to open ControlSocket %s: %w", path, err))
			}
			lns = append(lns, l)
		}
		for _, l := range lns {
			ctlAddrs = append(ctlAddrs, listenerAddr(l))
		}
		auth := control.AuthConfig{HashedPasswords: cfg.HashedControlPasswords}
		if cfg.CookieAuthentication {
			path, err := filepath.Abs(cfg.CookieAuthFile)
			if err == nil {
				auth.Cookie, err = control.NewCookie(path, nil)
			}
			if err != nil {
				closeAll()
				return fail(fmt.Errorf("Error writing authentication cookie: %w", err))
			}
			if cfg.CookieAuthFileGroupReadable {
				if err := os.Chmod(path, 0o640); err != nil {
					log.Warnf("Unable to make %s group-readable: %v", path, err)
				}
			}
			auth.CookieFile = path
		}
		if auth.Cookie == nil && len(auth.HashedPasswords) == 0 {
			auth.AllowNull = true
			log.Warnf("ControlPort is open, but no authentication method has been configured. " +
				"This means that any program on your computer can reconfigure your Tor. That's bad! " +
				"Set CookieAuthentication 1 or HashedControlPassword.")
		}
		onionCmds := ctl.New(ctl.Config{Client: client, Onion: onion, Events: client.Events(), Log: log,
			Collides: func(id string) bool { return torrcServiceIDs(client.Config())[id] }})
		cleanups = append(cleanups, onionCmds.Close)
		backend, err := ctlbackend.New(ctlbackend.Config{
			Client:   client,
			Onion:    onionCmds,
			Log:      log,
			Version:  controlVersion(),
			Sources:  src,
			Apply:    apply,
			Reload:   reload,
			Shutdown: shutdown,
			Listeners: func(kind string) []string {
				switch kind {
				case "socks":
					var out []string
					for _, sp := range client.Config().SocksPorts {
						out = append(out, sp.Listener.String())
					}
					return out
				case "control":
					return ctlAddrs
				case "metrics":
					return metricsAddrs
				}
				return nil
			},
		})
		if err != nil {
			closeAll()
			return fail(err)
		}
		cleanups = append(cleanups, backend.Close)
		srv, err := control.NewServer(control.Config{Auth: auth, Backend: backend, Logger: log})
		if err != nil {
			closeAll()
			return fail(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			backend.Run(ctx, srv)
		}()
		for _, l := range lns {
			log.Noticef("Opened Control listener connection (ready) on %s", listenerAddr(l))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.Serve(ctx, l); err != nil && ctx.Err() == nil {
					log.Warnf("Control listener on %s failed: %v", listenerAddr(l), err)
				}
			}()
		}
	}

	return stop, nil
}

// torrcServiceIDs are the service IDs of the torrc's onion services, read
// from the hostname files their directories hold.
func torrcServiceIDs(cfg *config.Config) map[string]bool {
	ids := map[string]bool{}
	for _, hc := range cfg.HiddenServices {
		b, err := os.ReadFile(filepath.Join(hc.Dir, service.HostnameFile))
		if err != nil {
			continue
		}
		ids[strings.TrimSuffix(strings.TrimSpace(string(b)), ".onion")] = true
	}
	return ids
}

// listenControl opens one control listener; a Unix socket is made
// accessible to the owner only unless GroupWritable or WorldWritable.
func listenControl(cp config.ControlPort) (net.Listener, error) {
	if cp.Unix == "" {
		return net.Listen("tcp", cp.Addr.String())
	}
	if err := os.MkdirAll(filepath.Dir(cp.Unix), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(cp.Unix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", cp.Unix)
	if err != nil {
		return nil, err
	}
	mode := os.FileMode(0o600)
	switch {
	case cp.WorldWritable:
		mode = 0o666
	case cp.GroupWritable:
		mode = 0o660
	}
	if err := os.Chmod(cp.Unix, mode); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func listenerAddr(l net.Listener) string {
	if l.Addr().Network() == "unix" {
		return "unix:" + l.Addr().String()
	}
	return l.Addr().String()
}
