package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"tinytor/socks"
	"tinytor/socks/dnsport"
	"tinytor/tor/addrmap"
	"tinytor/tor/torlog"
)

const testOnion = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion"

// TestAutomapGlue follows an onion name through the glue without a
// network: a lookup gets a stable virtual address, a connection to it is
// mapped back to the name, a reverse lookup names it, and what is not
// mapped is refused before it could reach an exit.
func TestAutomapGlue(t *testing.T) {
	m, err := addrmap.New(addrmap.Config{Automap: true, Suffixes: []string{".onion", ".exit"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := socksDialer{amap: m, log: torlog.Discard()}
	ctx := context.Background()
	iso := socks.IsolationKey{}
	a, ttl, err := d.resolve(ctx, testOnion, false, iso)
	if err != nil || len(a) != 1 || !addrmap.DefaultIPv4Network.Contains(a[0]) || ttl != 0 {
		t.Fatalf("resolve: %v, %d, %v", a, ttl, err)
	}
	if b, _ := d.Resolve(ctx, testOnion, iso); len(b) != 1 || b[0] != a[0] {
		t.Fatalf("SOCKS RESOLVE gave %v, DNS %v", b, a)
	}
	v6, _, err := d.resolve(ctx, testOnion, true, iso)
	if err != nil || !addrmap.DefaultIPv6Network.Contains(v6[0]) {
		t.Fatalf("IPv6 resolve: %v, %v", v6, err)
	}
	if h, err := d.mapHost(a[0].String()); err != nil || h != testOnion {
		t.Fatalf("mapHost(%v) = %q, %v", a[0], h, err)
	}
	if h, err := d.mapHost("[" + v6[0].String() + "]"); err != nil || h != testOnion {
		t.Fatalf("mapHost([%v]) = %q, %v", v6[0], h, err)
	}
	if n, _, err := d.resolvePTR(ctx, a[0], iso); err != nil || n != testOnion {
		t.Fatalf("resolvePTR(%v) = %q, %v", a[0], n, err)
	}
	for _, bad := range []string{"127.192.0.9", "x.exit", "[fe80::1]"} {
		if h, err := d.mapHost(bad); err == nil {
			t.Errorf("mapHost(%q) = %q, want a refusal", bad, h)
		}
	}
	if _, _, err := d.resolvePTR(ctx, netip.MustParseAddr("192.168.1.1"), iso); !errors.Is(dnsError(err), dnsport.ErrNotFound) {
		t.Errorf("PTR of a private address: %v", err)
	}
	// MAPADDRESS rewrites apply to lookups too.
	if err := m.Register("alias.example", testOnion, addrmap.FromController, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := d.resolve(ctx, "alias.example", false, iso); len(b) != 1 || b[0] != a[0] {
		t.Fatalf("mapped name resolved to %v, want %v", b, a)
	}
	// Without automapping, onion names are not resolved.
	m.SetConfig(addrmap.Config{Automap: false})
	if _, _, err := d.resolve(ctx, testOnion, false, iso); !errors.Is(dnsError(err), dnsport.ErrNotFound) {
		t.Errorf("onion lookup without automap: %v", err)
	}
	if _, err := d.mapHost(a[0].String()); err == nil {
		t.Error("a dropped mapping still maps")
	}
}

// TestDNSPortAutomap asks the DNSPort for an onion name's A record.
func TestDNSPortAutomap(t *testing.T) {
	m, _ := addrmap.New(addrmap.Config{Automap: true, Suffixes: []string{".onion"}}, nil, nil)
	ls := dnsport.NewListeners(dnsResolver{socksDialer{amap: m, log: torlog.Discard()}}, nil)
	defer ls.Close()
	if err := ls.Apply(context.Background(), []dnsport.Port{{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Config: dnsport.Config{ID: "dns:test"}}}); err != nil {
		t.Fatal(err)
	}
	want, _ := m.Virtual(testOnion, false, addrmap.FromAutomap)
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 9, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(testOnion + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	c, err := net.Dial("udp", ls.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(q)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	ans := make([]byte, 512)
	n, err := c.Read(ans)
	if err != nil {
		t.Fatal(err)
	}
	ans = ans[:n]
	var msg dnsmessage.Message
	if err := msg.Unpack(ans); err != nil {
		t.Fatal(err)
	}
	if len(msg.Answers) != 1 || netip.AddrFrom4(msg.Answers[0].Body.(*dnsmessage.AResource).A) != want || msg.Answers[0].Header.TTL != dnsport.MinAnswerTTL {
		t.Fatalf("answer %+v, want %v with TTL %d", msg.Answers, want, dnsport.MinAnswerTTL)
	}
}
