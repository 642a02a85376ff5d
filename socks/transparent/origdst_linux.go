package transparent

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"

	"tinytor/tor/errfmt"
)

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST of
// linux/netfilter_ipv6/ip6_tables.h (x/sys/unix does not name it).
const ip6tSoOriginalDst = 80

// OriginalDst returns the destination a connection redirected by netfilter
// (REDIRECT, DNAT, nftables redirect) was sent to, from the connection
// tracking entry: getsockopt SO_ORIGINAL_DST at SOL_IP for IPv4 clients
// (IPv4-mapped ones on an IPv6 socket included), IP6T_SO_ORIGINAL_DST at
// SOL_IPV6 for IPv6 ones. A connection that conntrack never saw fails
// (ENOENT).
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}, errfmt.Errorf("no socket to ask for the original destination (%T)", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	v4 := addrPort(c.LocalAddr()).Addr().Is4()
	var dst netip.AddrPort
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v4 {
			// struct sockaddr_in fits in the 20 bytes of an ipv6_mreq;
			// its bytes come back as they are.
			var m *unix.IPv6Mreq
			if m, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST); serr == nil {
				b := m.Multiaddr
				dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
			}
			return
		}
		// struct sockaddr_in6 is the first field of an ip6_mtuinfo.
		var m *unix.IPv6MTUInfo
		if m, serr = unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSoOriginalDst); serr == nil {
			var port [2]byte
			binary.NativeEndian.PutUint16(port[:], m.Addr.Port) // network order in memory
			dst = netip.AddrPortFrom(netip.AddrFrom16(m.Addr.Addr).Unmap(), binary.BigEndian.Uint16(port[:]))
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		opt := "SO_ORIGINAL_DST"
		if !v4 {
			opt = "IP6T_SO_ORIGINAL_DST"
		}
		return netip.AddrPort{}, errfmt.Errorf("getsockopt %s: %w", opt, err)
	}
	return dst, nil
}
