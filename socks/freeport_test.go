package socks

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// unusedPort returns a loopback address whose port was free a moment ago,
// for a test that must name the port before a listener set opens it. The
// port is drawn below Linux's ephemeral range (32768-60999), so that no
// outgoing connection of another process takes it between the check and
// the test's bind, as a closed ":0" port could be.
func unusedPort(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}
