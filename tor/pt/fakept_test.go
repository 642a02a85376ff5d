package pt

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the test binary as a fake managed transport proxy when it
// is started as "<binary> fakept MODE DIR" with TOR_PT_* set.
func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == "fakept" && os.Getenv("TOR_PT_MANAGED_TRANSPORT_VER") != "" {
		os.Exit(fakePT(os.Args[2], os.Args[3]))
	}
	os.Exit(m.Run())
}

// fakePT behaves as a client transport proxy. Modes:
//
//	ok            VERSION, PROXY DONE if TOR_PT_PROXY is set, a CMETHOD per
//	              transport (socks4 for names ending in 4, CMETHOD-ERROR for
//	              "broken", nothing for "unknown"), LOG, STATUS, a stderr
//	              line, an unknown line, CMETHODS DONE; then a SOCKS server
//	              that records the auth fields in DIR and forwards to the
//	              target, until stdin closes.
//	noproxydone   as ok but never says PROXY DONE
//	versionerror  VERSION-ERROR, exit 1
//	nodone        VERSION 1, then waits for stdin to close
//	stubborn      ignores SIGTERM and stdin; configures a method; runs forever
func fakePT(mode, dir string) int {
	pr := func(s string) { fmt.Fprintln(os.Stdout, s) }
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TOR_PT_") || strings.HasPrefix(kv, "KEEP=") {
			env = append(env, kv)
		}
	}
	sort.Strings(env)
	os.WriteFile(filepath.Join(dir, fmt.Sprintf("env-%d", os.Getpid())), []byte(strings.Join(env, "\n")), 0o600)
	switch mode {
	case "versionerror":
		pr("VERSION-ERROR no-version")
		return 1
	case "nodone":
		pr("VERSION 1")
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		pr("VERSION 1")
		pr("CMETHOD stub socks5 127.0.0.1:9")
		pr("CMETHODS DONE")
		for {
			time.Sleep(time.Hour)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pr("ENV-ERROR " + err.Error())
		return 1
	}
	pr("VERSION 1")
	if os.Getenv("TOR_PT_PROXY") != "" && mode != "noproxydone" {
		pr("PROXY DONE")
	}
	for _, name := range strings.Split(os.Getenv("TOR_PT_CLIENT_TRANSPORTS"), ",") {
		switch {
		case name == "broken":
			pr("CMETHOD-ERROR broken no rocks available")
		case name == "unknown":
		case strings.HasSuffix(name, "4"):
			pr("CMETHOD " + name + " socks4 " + ln.Addr().String())
		default:
			pr("CMETHOD " + name + " socks5 " + ln.Addr().String())
		}
	}
	pr(`LOG SEVERITY=notice MESSAGE="hello \"world\""`)
	pr(`STATUS TRANSPORT=fake ADDRESS=198.51.100.1:443 CONNECT=Success`)
	fmt.Fprintln(os.Stderr, "fake stderr line")
	pr("BOGUS this line is unknown")
	pr("CMETHODS DONE")
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fakeSOCKS(c, filepath.Join(dir, fmt.Sprintf("auth-%d-%d", os.Getpid(), n)))
		}
	}()
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// fakeSOCKS serves one SOCKS 4 or 5 connection: it writes the hex of the
// auth fields to record, connects to the target and relays.
func fakeSOCKS(c net.Conn, record string) {
	defer c.Close()
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return
	}
	rd := func(n int) []byte {
		p := make([]byte, n)
		io.ReadFull(c, p)
		return p
	}
	var target netip.AddrPort
	var fields []string
	if b[0] == 4 {
		h := rd(7)
		var uid []byte
		for {
			x := rd(1)
			if x[0] == 0 {
				break
			}
			uid = append(uid, x[0])
		}
		fields = []string{hex.EncodeToString(uid)}
		target = netip.AddrPortFrom(netip.AddrFrom4([4]byte(h[3:7])), binary.BigEndian.Uint16(h[1:3]))
	} else {
		methods := rd(int(rd(1)[0]))
		if strings.IndexByte(string(methods), 2) >= 0 {
			c.Write([]byte{5, 2})
			rd(1)
			u := rd(int(rd(1)[0]))
			p := rd(int(rd(1)[0]))
			fields = []string{hex.EncodeToString(u), hex.EncodeToString(p)}
			c.Write([]byte{1, 0})
		} else {
			c.Write([]byte{5, 0})
		}
		h := rd(4)
		if h[3] == 1 {
			a := rd(6)
			target = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), binary.BigEndian.Uint16(a[4:]))
		} else {
			a := rd(18)
			target = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[:16])), binary.BigEndian.Uint16(a[16:]))
		}
	}
	os.WriteFile(record, []byte(strings.Join(fields, " ")), 0o600)
	up, err := net.Dial("tcp", target.String())
	if err != nil {
		if b[0] == 4 {
			c.Write([]byte{0, 91, 0, 0, 0, 0, 0, 0})
		} else {
			c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		}
		return
	}
	defer up.Close()
	if b[0] == 4 {
		c.Write([]byte{0, 90, 0, 0, 0, 0, 0, 0})
	} else {
		c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	}
	go func() {
		io.Copy(up, c)
		up.Close()
	}()
	io.Copy(c, up)
}
