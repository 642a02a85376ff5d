package integration

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstreamProxy is a small forwarding proxy (SOCKS5 with username and
// password, or HTTP CONNECT with Basic auth) on 127.0.0.1 that records
// the targets it was asked for and the credentials it got.
type upstreamProxy struct {
	ln      net.Listener
	kind    string
	mu      sync.Mutex
	targets map[netip.AddrPort]int
	auth    []string
}

func startUpstreamProxy(t *testing.T, kind string) *upstreamProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &upstreamProxy{ln: ln, kind: kind, targets: map[netip.AddrPort]int{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *upstreamProxy) addr() netip.AddrPort { return netip.MustParseAddrPort(p.ln.Addr().String()) }

func (p *upstreamProxy) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	var target netip.AddrPort
	var err error
	if p.kind == "socks5" {
		target, err = p.socks5(br, c)
	} else {
		target, err = p.connect(br, c)
	}
	if err != nil {
		return
	}
	up, err := net.Dial("tcp", target.String())
	if err != nil {
		return
	}
	defer up.Close()
	if p.kind == "socks5" {
		c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	} else {
		io.WriteString(c, "HTTP/1.0 200 Connection established\r\n\r\n")
	}
	c.SetDeadline(time.Time{})
	p.mu.Lock()
	p.targets[target]++
	p.mu.Unlock()
	go func() { io.Copy(up, br); up.Close() }()
	io.Copy(c, up)
}

func (p *upstreamProxy) socks5(br *bufio.Reader, c net.Conn) (netip.AddrPort, error) {
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil || hdr[0] != 5 {
		return netip.AddrPort{}, fmt.Errorf("greeting")
	}
	methods := make([]byte, hdr[1])
	io.ReadFull(br, methods)
	if !strings.Contains(string(methods), "\x02") {
		c.Write([]byte{5, 0xff})
		return netip.AddrPort{}, fmt.Errorf("no username/password method")
	}
	c.Write([]byte{5, 2})
	ver, _ := br.ReadByte()
	ulen, _ := br.ReadByte()
	user := make([]byte, ulen)
	io.ReadFull(br, user)
	plen, _ := br.ReadByte()
	pass := make([]byte, plen)
	io.ReadFull(br, pass)
	p.mu.Lock()
	p.auth = append(p.auth, string(user)+":"+string(pass))
	p.mu.Unlock()
	if ver != 1 {
		return netip.AddrPort{}, fmt.Errorf("auth version")
	}
	c.Write([]byte{1, 0})
	req := make([]byte, 4)
	if _, err := io.ReadFull(br, req); err != nil || req[1] != 1 || req[3] != 1 {
		return netip.AddrPort{}, fmt.Errorf("request %x", req)
	}
	a := make([]byte, 6)
	if _, err := io.ReadFull(br, a); err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), binary.BigEndian.Uint16(a[4:])), nil
}

func (p *upstreamProxy) connect(br *bufio.Reader, c net.Conn) (netip.AddrPort, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return netip.AddrPort{}, err
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "CONNECT" {
		return netip.AddrPort{}, fmt.Errorf("request %q", line)
	}
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			return netip.AddrPort{}, err
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		if v, ok := strings.CutPrefix(h, "Proxy-Authorization: Basic "); ok {
			d, _ := base64.StdEncoding.DecodeString(v)
			p.mu.Lock()
			p.auth = append(p.auth, string(d))
			p.mu.Unlock()
		}
	}
	return netip.ParseAddrPort(f[1])
}

// TestTinytorUpstreamProxy: with Socks5Proxy (and its username and
// password) or HTTPSProxy (and HTTPSProxyAuthenticator), tinytor
// bootstraps and fetches the marker with every connection to the network
// going through the proxy, which is asked for the relays' ORPorts.
func TestTinytorUpstreamProxy(t *testing.T) {
	n := RequireNetwork(t)
	bin := tinytorBinary(t, "")
	for _, kind := range []string{"socks5", "https"} {
		t.Run(kind, func(t *testing.T) {
			px := startUpstreamProxy(t, kind)
			lines := []string{"Socks5Proxy " + px.addr().String(), "Socks5ProxyUsername user5", "Socks5ProxyPassword pass5"}
			wantAuth := "user5:pass5"
			if kind == "https" {
				lines = []string{"HTTPSProxy " + px.addr().String(), "HTTPSProxyAuthenticator userh:passh"}
				wantAuth = "userh:passh"
			}
			p := startTinytor(t, n, bin, "", nil, lines...)
			w := watchPeers(p.cmd.Process.Pid)
			p.waitFor("Bootstrapped 4% (conn_done_proxy)", time.Minute)
			p.waitFor("Bootstrapped 100%", 3*time.Minute)
			mustGetMarker(t, p, n, n.URLMarker)
			own, _ := w.stop()
			for _, a := range own {
				if a != px.addr() {
					t.Errorf("tinytor connected to %s, not through the proxy %s", a, px.addr())
				}
			}
			known := map[netip.AddrPort]bool{}
			for _, r := range n.Relays {
				known[r.ORAddr] = true
			}
			for _, a := range n.Authorities {
				known[a.ORAddr] = true
			}
			px.mu.Lock()
			defer px.mu.Unlock()
			if len(px.targets) == 0 {
				t.Fatal("the proxy carried nothing")
			}
			for tg := range px.targets {
				if !known[tg] {
					t.Errorf("the proxy was asked for %s, which is no relay's ORPort", tg)
				}
			}
			for _, a := range px.auth {
				if a != wantAuth {
					t.Errorf("the proxy got credentials %q, want %q", a, wantAuth)
				}
			}
			t.Logf("%s proxy: %d targets, %d authentications", kind, len(px.targets), len(px.auth))
		})
	}
}
