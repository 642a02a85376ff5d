package socks

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"tinytor/tor/lock"
	"tinytor/tor/netlisten"
	"tinytor/tor/torlog"
)

// Port is one SOCKS listener of a Listeners set.
type Port struct {
	// Network is "tcp" or "unix"; Address is a host:port or a socket
	// path. A Unix socket's directory is made (mode 0700) if missing, and
	// a stale socket file is replaced.
	Network, Address string
	// Config serves the port's clients. Its ID names the port in the set
	// and in logs.
	Config Config
}

// Listeners keeps a set of SOCKS ports open in step with a configuration
// that may change (a reload): see Apply. Its methods may be called
// concurrently.
type Listeners struct {
	dialer Dialer
	proto  Protocol // nil for SOCKS
	log    *torlog.Logger

	mu      lock.Mutex
	open    map[string]*listener // by Config.ID
	retired Stats                // the counters of ports closed so far
}

// listener is one open Port.
type listener struct {
	port Port
	srv  *Server
	done chan struct{} // closed when its Serve has returned
}

// NewListeners returns an empty set whose ports serve requests with d.
// log receives the set's messages; nil discards them.
func NewListeners(d Dialer, log *torlog.Logger) *Listeners {
	if log == nil {
		log = torlog.Discard()
	}
	return &Listeners{dialer: d, log: log, open: map[string]*listener{}}
}

// NewProtocolListeners returns an empty set of ports of another front end
// than SOCKS (TransPorts, HTTPTunnelPorts): each port's Config.Protocol
// is set to p.
func NewProtocolListeners(p Protocol, d Dialer, log *torlog.Logger) *Listeners {
	ls := NewListeners(d, log)
	ls.proto = p
	return ls
}

// option is the torrc option of the set's ports ("SocksPort").
func (ls *Listeners) option() string {
	if ls.proto != nil {
		return ls.proto.Option()
	}
	return "SocksPort"
}

// Apply opens the ports that are not open yet, closes the open ones that
// ports no longer lists, and reopens those whose address or Config
// changed. The ports serve until ctx ends or Close. A port that fails to
// open does not keep the others from opening; the error names every one
// that failed.
func (ls *Listeners) Apply(ctx context.Context, ports []Port) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	want := map[string]Port{}
	for _, p := range ports {
		if ls.proto != nil {
			p.Config.Protocol = ls.proto
		}
		want[p.Config.ID] = p
	}
	return ApplyPorts(ls.open, want, func(p Port, l *listener) bool { return samePort(p, l.port) },
		ls.closeListener, func(p Port) (*listener, error) { return ls.listen(ctx, p) }, strings.TrimSuffix(ls.option(), "Port"), ls.log)
}

// Close closes every port and waits until they have stopped serving.
func (ls *Listeners) Close() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for id, l := range ls.open {
		ls.closeListener(l)
		delete(ls.open, id)
	}
}

// Stats returns the counters of every port the set has served, open or
// since closed (Active counts the open ports' connections), so that they
// only grow across reloads.
func (ls *Listeners) Stats() Stats {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	sum := ls.retired
	for _, l := range ls.open {
		sum = sum.add(l.srv.Stats())
	}
	return sum
}

// closeListener closes l and keeps its counters.
func (ls *Listeners) closeListener(l *listener) {
	l.close()
	st := l.srv.Stats()
	st.Active = 0
	ls.retired = ls.retired.add(st)
}

// listen opens p and serves it on a goroutine of its own.
func (ls *Listeners) listen(ctx context.Context, p Port) (*listener, error) {
	if p.Network == "unix" {
		if err := os.MkdirAll(filepath.Dir(p.Address), 0o700); err != nil {
			return nil, err
		}
		// Replace a stale socket, never a file of another kind.
		if fi, err := os.Lstat(p.Address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(p.Address)
		}
	}
	ln, err := netlisten.Listen(p.Network, p.Address)
	if err != nil {
		return nil, err
	}
	if a, err := netip.ParseAddrPort(p.Address); err == nil && p.Network == "tcp" && !a.Addr().IsLoopback() && len(p.Config.Policy) == 0 {
		ls.log.Warnf("%s %s is not on loopback, but no SocksPolicy is set: only loopback clients are accepted. "+
			"Add e.g. 'SocksPolicy accept 192.168.1.0/24, reject *' to the torrc to let your LAN in.", ls.option(), p.Config.ID)
	}
	srv, err := New(p.Config, ls.dialer)
	if err != nil {
		ln.Close()
		return nil, err
	}
	l := &listener{port: p, srv: srv, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
			ls.log.Warnf("%s listener on %s failed: %v", srv.listenerName(), ln.Addr(), err)
		}
	}()
	return l, nil
}

// close stops l's server and waits for its Serve to return.
func (l *listener) close() {
	l.srv.Close()
	<-l.done
}

// samePort reports whether a and b listen and serve alike (their loggers
// aside).
func samePort(a, b Port) bool {
	ac, bc := a.Config, b.Config
	return a.Network == b.Network && a.Address == b.Address &&
		ac.ID == bc.ID && ac.Listen == bc.Listen && ac.Flags == bc.Flags && slices.Equal(ac.Policy, bc.Policy) &&
		ac.SafeSocks == bc.SafeSocks && ac.WarnUnsafeSocks == bc.WarnUnsafeSocks && ac.UnsafeLogging == bc.UnsafeLogging &&
		ac.HandshakeTimeout == bc.HandshakeTimeout && ac.ConnectTimeout == bc.ConnectTimeout && ac.MaxConns == bc.MaxConns &&
		ac.Protocol == bc.Protocol
}
