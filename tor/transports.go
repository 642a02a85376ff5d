package tor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"tinytor/tor/bridge"
	"tinytor/tor/config"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/link"
	"tinytor/tor/netproxy"
	"tinytor/tor/pt"
)

// outbound is how the client reaches the relays and bridges it talks to
// directly: through a pluggable transport for a bridge whose line names
// one, else through the upstream proxy (Socks4Proxy, Socks5Proxy,
// HTTPSProxy) when one is set, else by TCP.
type outbound struct {
	bridges    *bridge.Manager // nil without UseBridges
	transports []pt.Provider
	proxy      netproxy.Dialer // nil: direct
	proxyName  string
	progress   interface{ Reach(event.Phase) }
}

// newOutbound builds the transports and the proxy dialer of t. Managed
// transports are launched only when a bridge in use needs them, as C tor
// does.
func newOutbound(t *config.Config, c *Client) (*outbound, error) {
	o := &outbound{bridges: c.bridges, progress: c.boot}
	up := t.Proxy()
	switch up.Type {
	case "socks4":
		o.proxy = netproxy.SOCKS4(up.Addr, "")
	case "socks5":
		o.proxy = netproxy.SOCKS5(up.Addr, up.User, up.Password)
	case "https":
		o.proxy = netproxy.HTTPConnect(up.Addr, up.User, up.Password)
	}
	if o.proxy != nil {
		o.proxyName = fmt.Sprintf("%s proxy %s", up.Type, up.Addr)
	}
	if !t.UseBridges {
		return o, nil
	}
	needed := map[string]bool{}
	for _, b := range t.Bridges {
		if b.Transport != "" {
			needed[b.Transport] = true
		}
	}
	for _, p := range t.TransportPlugins {
		var names []string
		for _, n := range p.Names {
			if needed[n] {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			continue
		}
		prov, err := newProvider(t, p, names, up, c)
		if err != nil {
			o.close()
			return nil, errfmt.Errorf("ClientTransportPlugin %s (%s:%d): %w", p.Names, p.Where.File, p.Where.Line, err)
		}
		o.transports = append(o.transports, prov)
	}
	return o, nil
}

// newProvider starts the provider of one ClientTransportPlugin line.
func newProvider(t *config.Config, p config.TransportPlugin, names []string, up config.UpstreamProxy, c *Client) (pt.Provider, error) {
	if len(p.Exec) == 0 {
		socks := 5
		if p.ProxyType == "socks4" {
			socks = 4
		}
		return pt.NewExternal(names, socks, p.Proxy)
	}
	program := p.Exec[0]
	mc := pt.Config{
		Transports: names,
		Path:       program,
		Args:       p.Exec[1:],
		StateDir:   filepath.Join(t.DataDirectory, "pt_state"),
		Log:        c.log,
		OnEvent: func(e pt.Event) {
			ev := event.Transport{Type: e.Type, Program: program}
			for _, kv := range e.Args {
				ev.Args = append(ev.Args, [2]string{kv.Key, kv.Value})
			}
			c.bus.Publish(ev)
		},
		OnLaunch: func(m pt.Method) {
			c.bus.Publish(event.Transport{Type: "LAUNCHED", Program: program, Name: m.Transport, Addr: m.Addr})
		},
	}
	if up.Type != "" {
		kind := up.Type
		if kind == "https" {
			kind = "http"
		}
		uri, err := pt.ProxyURI(kind, up.Addr, up.User, up.Password)
		if err != nil {
			return nil, err
		}
		mc.Proxy = uri
	}
	return pt.Start(mc)
}

// close stops the transports.
func (o *outbound) close() {
	for _, p := range o.transports {
		p.Close()
	}
}

// status describes every transport, for GETINFO and the metrics page.
func (o *outbound) status() []pt.Status {
	var out []pt.Status
	for _, p := range o.transports {
		out = append(out, p.Status()...)
	}
	return out
}

// dial opens the connection for a channel to addr.
func (o *outbound) dial(ctx context.Context, addr netip.AddrPort, _ link.Identity) (net.Conn, error) {
	if o.bridges != nil {
		if b, ok := o.bridges.ByAddr(addr); ok && b.Transport != "" {
			return o.dialTransport(ctx, b)
		}
	}
	if o.proxy != nil {
		o.progress.Reach(event.PhaseConnProxy)
		conn, err := o.proxy.Dial(ctx, addr)
		if err != nil {
			return nil, errfmt.Errorf("through the %s: %w", o.proxyName, err)
		}
		o.progress.Reach(event.PhaseConnDoneProxy)
		return conn, nil
	}
	var d net.Dialer
	return d.DialTCP(ctx, "tcp", netip.AddrPort{}, addr) // no resolver: see tor/netlisten
}

// dialTransport reaches bridge b through its transport.
func (o *outbound) dialTransport(ctx context.Context, b config.Bridge) (net.Conn, error) {
	var prov pt.Provider
	for _, p := range o.transports {
		for _, n := range p.Names() {
			if n == b.Transport {
				prov = p
			}
		}
	}
	if prov == nil {
		return nil, errfmt.Errorf("no transport plugin provides %s", b.Transport)
	}
	o.progress.Reach(event.PhaseConnPT)
	m, err := prov.Method(ctx, b.Transport)
	if err != nil {
		return nil, errfmt.Errorf("transport %s: %w", b.Transport, err)
	}
	args := make([]pt.KV, len(b.Args))
	for i, a := range b.Args {
		args[i] = pt.KV{Key: a.Key, Value: a.Value}
	}
	conn, err := m.Dial(ctx, b.Addr, args)
	if err != nil {
		return nil, err
	}
	o.progress.Reach(event.PhaseConnDonePT)
	return conn, nil
}
