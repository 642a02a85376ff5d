package config

import (
	"net/netip"
	"slices"
	"testing"
)

func TestDNSPortAndAutomap(t *testing.T) {
	c := mustParse(t, "")
	if len(c.DNSPorts) != 0 || c.AutomapHostsOnResolve || !slices.Equal(c.AutomapHostsSuffixes, []string{".onion", ".exit"}) ||
		c.VirtualAddrNetworkIPv4 != netip.MustParsePrefix("127.192.0.0/10") || c.VirtualAddrNetworkIPv6 != netip.MustParsePrefix("fe80::/10") {
		t.Fatalf("defaults: %v %v %q %v %v", c.DNSPorts, c.AutomapHostsOnResolve, c.AutomapHostsSuffixes, c.VirtualAddrNetworkIPv4, c.VirtualAddrNetworkIPv6)
	}
	c = mustParse(t, "DNSPort 5353\nDNSPort 192.168.1.1:53 IsolateDestAddr NoIsolateClientAddr SessionGroup=4\n"+
		"AutomapHostsOnResolve 1\nAutomapHostsSuffixes .onion, .i2p,\nVirtualAddrNetworkIPv4 10.192.0.5/10\nVirtualAddrNetworkIPv6 [FC00::]/7\n")
	if len(c.DNSPorts) != 2 {
		t.Fatalf("DNSPorts: %+v", c.DNSPorts)
	}
	if p := c.DNSPorts[0]; p.Addr != netip.MustParseAddrPort("127.0.0.1:5353") || p.Isolation != DefaultIsolation {
		t.Errorf("DNSPort 5353: %+v", p)
	}
	if p := c.DNSPorts[1]; p.Addr != netip.MustParseAddrPort("192.168.1.1:53") || p.Isolation != IsolateDestAddr|IsolateSOCKSAuth || p.SessionGroup != 4 {
		t.Errorf("second DNSPort: %+v", p)
	}
	if !c.AutomapHostsOnResolve || !slices.Equal(c.AutomapHostsSuffixes, []string{".onion", ".i2p"}) ||
		c.VirtualAddrNetworkIPv4 != netip.MustParsePrefix("10.192.0.0/10") || c.VirtualAddrNetworkIPv6 != netip.MustParsePrefix("fc00::/7") {
		t.Errorf("automap options: %v %q %v %v", c.AutomapHostsOnResolve, c.AutomapHostsSuffixes, c.VirtualAddrNetworkIPv4, c.VirtualAddrNetworkIPv6)
	}
	if c := mustParse(t, "DNSPort 0\n"); len(c.DNSPorts) != 0 {
		t.Errorf("DNSPort 0: %+v", c.DNSPorts)
	}
	parseFails(t, map[string]string{
		"DNSPort unix:/run/dns\n":                                     "does not support unix sockets",
		"DNSPort 53 NoDNSRequest\n":                                   "DNSPort entry with DNS disabled",
		"DNSPort 53 SessionGroup=x\n":                                 "invalid DNSPort option",
		"VirtualAddrNetworkIPv4 10.0.0.0/24\n":                        "expects a /16 network or larger",
		"VirtualAddrNetworkIPv4 [fe80::]/10\n":                        "incorrect address type",
		"VirtualAddrNetworkIPv6 fe80::/120\n":                         "expects a /104 network or larger",
		"VirtualAddrNetworkIPv6 fe80::\n":                             "want address/bits",
		"AutomapHostsOnResolve yes\n":                                 "invalid boolean",
		"SocksPort 9050 NoIPv4Traffic NoIPv6Traffic NoOnionTraffic\n": "SocksPort entry with all of IPv4",
	})
}

func TestMapAddress(t *testing.T) {
	c := mustParse(t, "MapAddress www.example.com 1.2.3.4\nMapAddress *.a.example *.b.example extra\nMapAddress lonely\nMapAddress .x y\n")
	want := []AddressMapping{{"www.example.com", "1.2.3.4"}, {"*.a.example", "*.b.example"}}
	if !slices.Equal(c.MapAddresses, want) {
		t.Fatalf("MapAddresses %+v, want %+v", c.MapAddresses, want)
	}
	if len(c.Warnings) != 3 {
		t.Fatalf("warnings %q, want 3", c.Warnings)
	}
}
