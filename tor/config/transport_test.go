package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestTransPortAndHTTPTunnelPort(t *testing.T) {
	c := mustParse(t, "")
	if len(c.TransPorts) != 0 || len(c.HTTPTunnelPorts) != 0 || c.TransProxyType != "default" {
		t.Fatalf("defaults: %v %v %q", c.TransPorts, c.HTTPTunnelPorts, c.TransProxyType)
	}
	c = mustParse(t, "TransPort 9040\nTransPort 192.168.1.1:9040 IsolateDestAddr IsolateDestPorts NoIsolateClientAddr SessionGroup=3\n"+
		"TransPort [::1]:9041 IPv6Traffic\nHTTPTunnelPort 8118 NoIsolateSOCKSAuth OnionTrafficOnly\nHTTPTunnelPort auto\nTransProxyType Default\n")
	if len(c.TransPorts) != 3 || len(c.HTTPTunnelPorts) != 2 {
		t.Fatalf("TransPorts %+v HTTPTunnelPorts %+v", c.TransPorts, c.HTTPTunnelPorts)
	}
	if p := c.TransPorts[0]; p.Addr != netip.MustParseAddrPort("127.0.0.1:9040") || p.Isolation != DefaultIsolation || p.SessionGroup != -1 {
		t.Errorf("TransPort 9040: %+v", p)
	}
	if p := c.TransPorts[1]; p.Addr != netip.MustParseAddrPort("192.168.1.1:9040") ||
		p.Isolation != IsolateDestAddr|IsolateDestPort|IsolateSOCKSAuth || p.SessionGroup != 3 {
		t.Errorf("second TransPort: %+v", p)
	}
	if !strings.Contains(strings.Join(c.Warnings, "\n"), "Unrecognized TransPort option 'IPv6Traffic'") {
		t.Errorf("no warning for a host-name flag on a TransPort: %q", c.Warnings)
	}
	if p := c.HTTPTunnelPorts[0]; p.Addr != netip.MustParseAddrPort("127.0.0.1:8118") || p.Isolation != IsolateClientAddr ||
		p.IPv4Traffic || p.IPv6Traffic || !p.OnionTraffic {
		t.Errorf("HTTPTunnelPort 8118: %+v", p)
	}
	if p := c.HTTPTunnelPorts[1]; !p.Auto {
		t.Errorf("HTTPTunnelPort auto: %+v", p)
	}

	c = mustParse(t, "TransPort 0.0.0.0:9040\nHTTPTunnelPort 198.51.100.7:8118\nSocksPolicy accept 192.168.0.0/16\n")
	w := strings.Join(c.Warnings, "\n")
	if !strings.Contains(w, "'0.0.0.0:9040' for TransPort: it listens on every interface") ||
		!strings.Contains(w, "public address '198.51.100.7:8118' for HTTPTunnelPort") {
		t.Errorf("no open-proxy warnings: %q", c.Warnings)
	}
	if c := mustParse(t, "TransPort 192.168.1.1:9040\n"); len(c.Warnings) != 0 {
		t.Errorf("warnings for a LAN TransPort: %q", c.Warnings)
	}

	for _, tc := range []struct{ torrc, err string }{
		{"TransPort unix:/run/trans\n", "TransPort does not support unix sockets"},
		{"HTTPTunnelPort unix:/run/http\n", "HTTPTunnelPort does not support unix sockets"},
		{"TransPort 9040\nTransPort 0\n", "nonzero TransPort along with 'TransPort 0'"},
		{"HTTPTunnelPort 0\nHTTPTunnelPort 1\n", "nonzero HTTPTunnelPort along with 'HTTPTunnelPort 0'"},
		{"TransPort 9040 SessionGroup=x\n", "invalid TransPort option"},
		{"TransPort 192.168.1.1\n", "has no port"},
		{"TransProxyType TPROXY\n", "TransProxyType TPROXY is not implemented in tinytor"},
		{"TransProxyType pf-divert\n", "not implemented"},
		{"TransProxyType nat\n", "unrecognized value"},
		{"HTTPTunnelPort 1 NoOnionTrafficOnly\n", "unsupported HTTPTunnelPort option"},
		{"SocksPort 9050\nSocksPort 0\n", "nonzero SocksPort along with 'SocksPort 0'"},
		{"HTTPTunnelPort 1 NoIPv4Traffic NoIPv6Traffic NoOnionTraffic\n", "HTTPTunnelPort entry with all of IPv4"},
	} {
		parseFails(t, map[string]string{tc.torrc: tc.err})
	}
}
