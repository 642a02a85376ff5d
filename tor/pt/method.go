package pt

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"tinytor/tor/errfmt"
	"tinytor/tor/netproxy"
)

// Method is a transport's local SOCKS listener.
type Method struct {
	// Transport is the transport's name ("obfs4").
	Transport string
	// SOCKS is the SOCKS version, 4 or 5.
	SOCKS int
	// Addr is where the listener is.
	Addr netip.AddrPort
}

// Dial connects to bridge through the transport, passing args (the Bridge
// line's k=v arguments) in the SOCKS authentication fields as pt-spec 3.5
// and C tor do.
func (m Method) Dial(ctx context.Context, bridge netip.AddrPort, args []KV) (net.Conn, error) {
	enc := EncodeArgs(args)
	var d netproxy.Dialer
	switch m.SOCKS {
	case 4:
		d = netproxy.SOCKS4(m.Addr, enc)
	case 5:
		user, pass, err := socks5Auth(enc)
		if err != nil {
			return nil, errfmt.Errorf("transport %s: %w", m.Transport, err)
		}
		d = netproxy.SOCKS5(m.Addr, user, pass)
	default:
		return nil, errfmt.Errorf("transport %s: unsupported SOCKS version %d", m.Transport, m.SOCKS)
	}
	c, err := d.Dial(ctx, bridge)
	if err != nil {
		return nil, errfmt.Errorf("transport %s: %w", m.Transport, err)
	}
	return c, nil
}

// State is a transport's state in Status.
type State string

// Transport states.
const (
	Launching State = "launching" // starting, or waiting to be restarted
	Running   State = "running"   // its method can be used
	Failed    State = "failed"    // it will not work without a configuration change
)

// Status describes one transport, for GETINFO and metrics.
type Status struct {
	Transport string
	Managed   bool   // a child process (false: an external SOCKS listener)
	Path      string // the managed program
	State     State
	PID       int // of the child while it runs, else 0
	Restarts  int // times the child was restarted after it died
	LastError string
	Method    Method // valid when State is Running
}

// Provider gives the methods of one ClientTransportPlugin line.
type Provider interface {
	// Names lists the transports the line provides.
	Names() []string
	// Method returns the method for transport name, waiting until it is
	// available or ctx ends.
	Method(ctx context.Context, name string) (Method, error)
	// Status describes each transport.
	Status() []Status
	// Close stops the provider; Method then fails with ErrClosed.
	Close() error
}

// ErrClosed is returned by Method after Close.
var ErrClosed = errors.New("transport plugin closed")

// External is the form "ClientTransportPlugin name[,name] socks5 IP:PORT":
// a transport proxy that someone else runs.
type External struct {
	names  []string
	method Method
	closed chan struct{}
}

// NewExternal returns the Provider for transports names at the SOCKS
// version socks (4 or 5) listener addr.
func NewExternal(names []string, socks int, addr netip.AddrPort) (*External, error) {
	if len(names) == 0 {
		return nil, errors.New("no transport name")
	}
	for _, n := range names {
		if !ValidName(n) {
			return nil, errfmt.Errorf("transport name %q is not a C identifier", n)
		}
	}
	if socks != 4 && socks != 5 {
		return nil, errfmt.Errorf("unsupported SOCKS version %d", socks)
	}
	if !addr.IsValid() || addr.Port() == 0 {
		return nil, errfmt.Errorf("invalid address %s", addr)
	}
	return &External{names: append([]string(nil), names...), method: Method{SOCKS: socks, Addr: addr},
		closed: make(chan struct{})}, nil
}

// Names lists the transports.
func (e *External) Names() []string { return append([]string(nil), e.names...) }

// Method returns the fixed method for name.
func (e *External) Method(ctx context.Context, name string) (Method, error) {
	select {
	case <-e.closed:
		return Method{}, ErrClosed
	default:
	}
	for _, n := range e.names {
		if n == name {
			m := e.method
			m.Transport = name
			return m, nil
		}
	}
	return Method{}, errfmt.Errorf("no transport called %s in this plugin", name)
}

// Status reports each transport as running.
func (e *External) Status() []Status {
	var st []Status
	for _, n := range e.names {
		m := e.method
		m.Transport = n
		st = append(st, Status{Transport: n, State: Running, Method: m})
	}
	return st
}

// Close marks e closed.
func (e *External) Close() error {
	select {
	case <-e.closed:
	default:
		close(e.closed)
	}
	return nil
}

// ProxyURI formats an upstream proxy for TOR_PT_PROXY as C tor does from
// its options: kind "socks4" (Socks4Proxy, written socks4a://), "socks5"
// (Socks5Proxy with Socks5ProxyUsername and Socks5ProxyPassword) or
// "http" (HTTPSProxy with HTTPSProxyAuthenticator's user and password).
func ProxyURI(kind string, addr netip.AddrPort, user, pass string) (string, error) {
	auth := ""
	if user != "" || pass != "" {
		auth = user + ":" + pass + "@"
	}
	switch kind {
	case "socks4":
		return "socks4a://" + addr.String(), nil
	case "socks5":
		return "socks5://" + auth + addr.String(), nil
	case "http":
		return "http://" + auth + addr.String(), nil
	}
	return "", errfmt.Errorf("unknown proxy kind %q", kind)
}
