package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsExchange sends one query to server over "udp" or "tcp" (RFC 1035
// framing) and returns the answer.
func dnsExchange(network string, server netip.AddrPort, name string, typ dnsmessage.Type) (*dnsmessage.Message, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x5eed, RecursionDesired: true})
	b.StartQuestions()
	qn, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: qn, Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	q, err := b.Finish()
	if err != nil {
		return nil, err
	}
	c, err := net.Dial(network, server.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var ans []byte
	if network == "tcp" {
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
			return nil, err
		}
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return nil, err
		}
		ans = make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, ans); err != nil {
			return nil, err
		}
	} else {
		if _, err := c.Write(q); err != nil {
			return nil, err
		}
		ans = make([]byte, 1500)
		n, err := c.Read(ans)
		if err != nil {
			return nil, err
		}
		ans = ans[:n]
	}
	var m dnsmessage.Message
	if err := m.Unpack(ans); err != nil {
		return nil, err
	}
	if m.ID != 0x5eed || !m.Response {
		return nil, fmt.Errorf("answer header %+v", m.Header)
	}
	return &m, nil
}

// firstA returns the first A record of m.
func firstA(m *dnsmessage.Message) (netip.Addr, error) {
	if m.RCode != dnsmessage.RCodeSuccess {
		return netip.Addr{}, fmt.Errorf("rcode %v", m.RCode)
	}
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			return netip.AddrFrom4(r.A), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no A record among %d answers", len(m.Answers))
}

// TestTinytorDNSPort resolves the test network's names through tinytor's
// DNSPort over UDP and TCP (exits ask the network's DNS server), gets a
// virtual address for the onion service's name (AutomapHostsOnResolve)
// and fetches the onion marker over SOCKS from that address.
func TestTinytorDNSPort(t *testing.T) {
	n := RequireNetwork(t)
	dnsName, ipSuffix := n.Env["TESTNET_DNS_NAME"], n.Env["TESTNET_DNS_IP_SUFFIX"]
	if dnsName == "" || ipSuffix == "" {
		t.Fatal("testnet.env has no TESTNET_DNS_NAME / TESTNET_DNS_IP_SUFFIX")
	}
	dnsAddr := freePort(t)
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil,
		"DNSPort "+dnsAddr.String(), "AutomapHostsOnResolve 1")
	bootstrapped(t, p)
	p.waitFor("Opened DNS listener connection (ready) on "+dnsAddr.String()+" (UDP)", 10*time.Second)

	retryFor := func(what string, d time.Duration, f func() error) {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			err := f()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(time.Second)
		}
	}
	retryFor("UDP A "+dnsName, 90*time.Second, func() error {
		m, err := dnsExchange("udp", dnsAddr, dnsName+".", dnsmessage.TypeA)
		if err != nil {
			return err
		}
		a, err := firstA(m)
		if err == nil && a != netip.MustParseAddr("127.0.0.1") {
			err = fmt.Errorf("answer %v, want 127.0.0.1", a)
		}
		if err == nil && m.Answers[0].Header.TTL < 60 {
			err = fmt.Errorf("TTL %d below C tor's 60", m.Answers[0].Header.TTL)
		}
		return err
	})
	name := "10-1-2-3." + ipSuffix + "."
	m, err := dnsExchange("tcp", dnsAddr, name, dnsmessage.TypeA)
	if err != nil {
		t.Fatalf("TCP A %s: %v", name, err)
	}
	if a, err := firstA(m); err != nil || a != netip.MustParseAddr("10.1.2.3") {
		t.Fatalf("TCP A %s: %v, %v", name, a, err)
	}
	if m.Questions[0].Name.String() != name {
		t.Errorf("question echoed as %q", m.Questions[0].Name)
	}
	m, err = dnsExchange("udp", dnsAddr, "nosuchname.test.", dnsmessage.TypeA)
	if err != nil || m.RCode != dnsmessage.RCodeNameError {
		t.Errorf("nosuchname.test: %v, %v; want NXDOMAIN", m, err)
	}
	m, err = dnsExchange("udp", dnsAddr, dnsName+".", dnsmessage.TypeMX)
	if err != nil || m.RCode != dnsmessage.RCodeNotImplemented {
		t.Errorf("MX query: %v, %v; want NOTIMP", m, err)
	}

	// The onion service's name gets a stable virtual address, which a
	// SOCKS connection then reaches the service through.
	m, err = dnsExchange("udp", dnsAddr, n.Onion+".", dnsmessage.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	virt, err := firstA(m)
	if err != nil || !netip.MustParsePrefix("127.192.0.0/10").Contains(virt) {
		t.Fatalf("A %s: %v, %v; want an address in 127.192.0.0/10", n.Onion, virt, err)
	}
	m, err = dnsExchange("tcp", dnsAddr, strings.ToUpper(n.Onion)+".", dnsmessage.TypeA)
	if a, aerr := firstA(m); err != nil || aerr != nil || a != virt {
		t.Fatalf("second lookup of the onion name: %v (%v, %v); want %v", a, err, aerr, virt)
	}
	ptr := fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", virt.As4()[3], virt.As4()[2], virt.As4()[1], virt.As4()[0])
	m, err = dnsExchange("udp", dnsAddr, ptr, dnsmessage.TypePTR)
	if err != nil || len(m.Answers) != 1 || m.Answers[0].Body.(*dnsmessage.PTRResource).PTR.String() != n.Onion+"." {
		t.Errorf("PTR %s: %+v, %v; want %s", ptr, m, err, n.Onion)
	}
	retryFor("onion marker through "+virt.String(), 120*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		resp, err := Get(ctx, p.socks, "http://"+virt.String()+"/")
		if err == nil && !bytes.Contains(resp.Body, []byte(n.Marker)) {
			err = fmt.Errorf("no marker in %q", resp.Body)
		}
		return err
	})
	// The mapping survives a reload (the address map is not recreated).
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitFor("Received reload signal (hup)", time.Minute)
	retryFor("lookup after SIGHUP", 30*time.Second, func() error {
		m, err := dnsExchange("udp", dnsAddr, n.Onion+".", dnsmessage.TypeA)
		if err != nil {
			return err
		}
		a, err := firstA(m)
		if err == nil && a != virt {
			t.Fatalf("after SIGHUP the onion name maps to %v, before to %v", a, virt)
		}
		return err
	})
	// A virtual address nothing maps is refused, never sent to an exit.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Get(ctx, p.socks, "http://127.192.0.9/"); err == nil {
		t.Error("an unmapped virtual address was connected")
	}
}
