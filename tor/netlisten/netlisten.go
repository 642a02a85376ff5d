// Package netlisten opens listeners from address literals without the
// net package's name resolution: net.Listen and net.Dial with string
// addresses link Go's DNS resolver (about 190 KB of a stripped mipsle
// binary), which a Tor client must never use anyway. Every listener and
// dial in the binary goes through typed calls (net.ListenTCP,
// net.ListenUnix, net.Dialer.DialTCP, ...) or this package.
package netlisten

import (
	"net"
	"net/netip"

	"tinytor/tor/errfmt"
)

// Listen opens a listener: for network "tcp" (or "tcp4", "tcp6") on
// address, an IP literal and port ("127.0.0.1:9050", "[::1]:0"); for
// "unix" on the socket path address.
func Listen(network, address string) (net.Listener, error) {
	switch network {
	case "unix":
		return net.ListenUnix("unix", &net.UnixAddr{Name: address, Net: "unix"})
	case "tcp", "tcp4", "tcp6":
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return nil, errfmt.Errorf("listen %s %s: not an address literal: %w", network, address, err)
		}
		return net.ListenTCP(network, net.TCPAddrFromAddrPort(ap))
	}
	return nil, errfmt.Errorf("listen %s %s: unsupported network", network, address)
}
