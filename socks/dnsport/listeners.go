package dnsport

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"tinytor/socks"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Port is one DNSPort: UDP and TCP on the same address.
type Port struct {
	Addr   netip.AddrPort
	Config Config // Config.ID names the port in the set
}

// Listeners keeps a set of DNSPorts open in step with a configuration
// that may change (a reload): see Apply. Its methods may be called
// concurrently.
type Listeners struct {
	resolver Resolver
	log      *torlog.Logger

	mu   lock.Mutex
	open map[string]*listener
}

type listener struct {
	port Port
	srv  *Server
	done sync.WaitGroup
	udp  net.Addr
	tcp  net.Addr
}

// NewListeners returns an empty set whose ports answer with r.
func NewListeners(r Resolver, log *torlog.Logger) *Listeners {
	if log == nil {
		log = torlog.Discard()
	}
	return &Listeners{resolver: r, log: log, open: map[string]*listener{}}
}

// Apply opens the ports not open yet, closes those no longer listed and
// reopens those whose address or settings changed. A port that fails to
// open does not keep the others from opening; the error names each one.
func (ls *Listeners) Apply(ctx context.Context, ports []Port) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	want := map[string]Port{}
	for _, p := range ports {
		want[p.Config.ID] = p
	}
	return socks.ApplyPorts(ls.open, want, func(p Port, l *listener) bool { return samePort(p, l.port) },
		(*listener).close, func(p Port) (*listener, error) { return ls.listen(ctx, p) }, "DNS", ls.log)
}

// Addrs returns the local addresses of the open ports (UDP and TCP).
func (ls *Listeners) Addrs() []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var out []string
	for _, l := range ls.open {
		out = append(out, l.udp.String())
	}
	slices.Sort(out)
	return out
}

// Close closes every port and waits until they have stopped.
func (ls *Listeners) Close() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for id, l := range ls.open {
		l.close()
		delete(ls.open, id)
	}
}

// listen opens p's UDP socket and TCP listener on the same address (for
// port 0, the TCP port follows the one the system gave the UDP socket).
func (ls *Listeners) listen(ctx context.Context, p Port) (*listener, error) {
	pc, ln, err := listenPair(p.Addr)
	if err != nil {
		return nil, err
	}
	switch a := p.Addr.Addr(); {
	case !a.IsLoopback() && !a.IsPrivate() && !a.IsLinkLocalUnicast():
		ls.log.Warnf("DNSPort %s is bound to a public or unspecified address: anyone who can reach it may use it as an open resolver. "+
			"Bind it to a LAN address and set SocksPolicy to let only your LAN in.", p.Config.ID)
	case !a.IsLoopback() && len(p.Config.Policy) == 0:
		ls.log.Warnf("DNSPort %s is not on loopback, but no SocksPolicy is set: only loopback clients are answered. "+
			"Add e.g. 'SocksPolicy accept 192.168.1.0/24, reject *' to the torrc to let your LAN in.", p.Config.ID)
	}
	srv, err := New(p.Config, ls.resolver)
	if err != nil {
		pc.Close()
		ln.Close()
		return nil, err
	}
	l := &listener{port: p, srv: srv, udp: pc.LocalAddr(), tcp: ln.Addr()}
	l.done.Go(func() {
		if err := srv.ServeUDP(ctx, pc); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
			ls.log.Warnf("DNS listener on %v failed: %v", l.udp, err)
		}
	})
	l.done.Go(func() {
		if err := srv.ServeTCP(ctx, ln); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
			ls.log.Warnf("DNS listener on %v failed: %v", l.tcp, err)
		}
	})
	return l, nil
}

func (l *listener) close() {
	l.srv.Close()
	l.done.Wait()
}

// samePort reports whether a and b listen and answer alike.
func samePort(a, b Port) bool {
	ac, bc := a.Config, b.Config
	return a.Addr == b.Addr && ac.ID == bc.ID && ac.Flags == bc.Flags && slices.Equal(ac.Policy, bc.Policy) &&
		ac.UnsafeLogging == bc.UnsafeLogging && ac.Counters == bc.Counters && ac.MaxOutstanding == bc.MaxOutstanding &&
		ac.MaxTCPConns == bc.MaxTCPConns && ac.MaxTCPMessage == bc.MaxTCPMessage && ac.CacheEntries == bc.CacheEntries &&
		ac.Timeout == bc.Timeout && ac.TCPIdle == bc.TCPIdle
}

// listenPair opens a UDP socket and a TCP listener on the same address.
// For port 0 ("auto") the TCP listener takes the number the system gave
// the UDP socket; another program's TCP socket may hold that number, so
// a few other numbers are tried before giving up.
func listenPair(addr netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	const autoTries = 8
	for try := 1; ; try++ {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return nil, nil, err
		}
		tcpAddr := netip.AddrPortFrom(addr.Addr(), uint16(pc.LocalAddr().(*net.UDPAddr).Port))
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(tcpAddr))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if addr.Port() != 0 || try == autoTries || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, err
		}
	}
}
