//go:build !linux

package transparent

import (
	"errors"
	"net"
	"net/netip"
)

// OriginalDst is implemented on Linux only (netfilter's SO_ORIGINAL_DST);
// elsewhere every TransPort connection fails with this error.
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("TransPort needs Linux netfilter (SO_ORIGINAL_DST); this system has no supported transparent proxy method")
}
