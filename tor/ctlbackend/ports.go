package ctlbackend

import (
	"net"
	"os"

	"tinytor/tor"
	"tinytor/tor/config"
	"tinytor/tor/control"
	"tinytor/tor/errfmt"
	"tinytor/tor/torlog"
)

// Listen opens the torrc's ControlPorts and ControlSockets (cfg). Unix
// sockets are for their owner only unless GroupWritable or WorldWritable.
// On error it also returns the listeners it did open, for the caller to
// close.
func Listen(cfg *config.Config) ([]net.Listener, error) {
	var lns []net.Listener
	for _, cp := range cfg.ControlPorts {
		network, address, mode := "tcp", cp.Addr.String(), os.FileMode(0o600)
		switch {
		case cp.Unix == "":
		case cp.WorldWritable:
			network, address, mode = "unix", cp.Unix, 0o666
		case cp.GroupWritable:
			network, address, mode = "unix", cp.Unix, 0o660
		default:
			network, address = "unix", cp.Unix
		}
		l, err := control.Listen(network, address, mode)
		if err != nil {
			return lns, errfmt.Errorf("Failed to open ControlPort %s: %w", cp.Listener, err)
		}
		lns = append(lns, l)
	}
	for _, path := range cfg.ControlSockets {
		l, err := control.Listen("unix", path, 0o600)
		if err != nil {
			return lns, errfmt.Errorf("Failed to open ControlSocket %s: %w", path, err)
		}
		lns = append(lns, l)
	}
	return lns, nil
}

// Auth is how controllers authenticate, from the torrc (cfg): a fresh
// cookie written to CookieAuthFile (CookieAuthentication), the
// HashedControlPasswords, or, with neither, no authentication at all
// (with a warning, as C tor).
func Auth(cfg *config.Config, log *torlog.Logger) (control.AuthConfig, error) {
	auth := control.AuthConfig{HashedPasswords: cfg.HashedControlPasswords}
	if cfg.CookieAuthentication {
		if err := auth.UseCookieFile(cfg.CookieAuthFile, cfg.CookieAuthFileGroupReadable, log); err != nil {
			return auth, errfmt.Errorf("Error writing authentication cookie: %w", err)
		}
	}
	if auth.Cookie == nil && len(auth.HashedPasswords) == 0 {
		auth.AllowNull = true
		log.Warnf("ControlPort is open, but no authentication method has been configured. " +
			"This means that any program on your computer can reconfigure your Tor. That's bad! " +
			"Set CookieAuthentication 1 or HashedControlPassword.")
	}
	return auth, nil
}

// portNames are the torrc names of client ports.
func portNames(ports []config.ClientPort) []string {
	var out []string
	for _, p := range ports {
		out = append(out, p.Listener.String())
	}
	return out
}

// ListenerAddrs is a Config.Listeners for GETINFO net/listeners/<kind>:
// the client's SocksPorts, TransPorts and HTTPTunnelPorts as its
// configuration names them, the control listeners ctl and the MetricsPort
// addresses metrics.
func ListenerAddrs(client *tor.Client, ctl []net.Listener, metrics []string) func(kind string) []string {
	var ctlAddrs []string
	for _, l := range ctl {
		ctlAddrs = append(ctlAddrs, control.ListenerAddr(l))
	}
	return func(kind string) []string {
		var ports []config.ClientPort
		switch cfg := client.Config(); kind {
		case "socks":
			ports = cfg.SocksPorts
		case "trans":
			ports = cfg.TransPorts
		case "httptunnel":
			ports = cfg.HTTPTunnelPorts
		case "control":
			return ctlAddrs
		case "metrics":
			return metrics
		}
		return portNames(ports)
	}
}
