package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseBridge(t *testing.T) {
	fp := "4C17FB532E20B2A8AC199441ECD2B0177B39E4B1"
	tests := []struct {
		in   string
		want string // Bridge.String()
	}{
		{"127.0.0.1:5000", "127.0.0.1:5000"},
		{"127.0.0.1:5000 " + fp, "127.0.0.1:5000 " + fp},
		{"127.0.0.1:5000 $" + strings.ToLower(fp), "127.0.0.1:5000 " + fp},
		{"127.0.0.1:5000 4C17 FB53 2E20 B2A8 AC19 9441 ECD2 B017 7B39 E4B1", "127.0.0.1:5000 " + fp},
		{"[::1]:443 " + fp, "[::1]:443 " + fp},
		{"obfs4 127.0.0.1:6000 " + fp + " cert=AbC+/x iat-mode=0", "obfs4 127.0.0.1:6000 " + fp + " cert=AbC+/x iat-mode=0"},
		{"snowflake 192.0.2.3:80 url=https://x/ fronts=a.b,c.d", "snowflake 192.0.2.3:80 url=https://x/ fronts=a.b,c.d"},
	}
	for _, tt := range tests {
		b, err := ParseBridge(tt.in)
		if err != nil {
			t.Errorf("ParseBridge(%q): %v", tt.in, err)
			continue
		}
		if got := b.String(); got != tt.want {
			t.Errorf("ParseBridge(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	bad := map[string]string{
		"":                                     "empty Bridge line",
		"obfs4":                                "has no IP:ORPort",
		"bad-name 1.2.3.4:5":                   "transport name",
		"1.2.3.4":                              "no port",
		"1.2.3.4:0":                            "port",
		"example.com:443":                      "",
		"1.2.3.4:5 ABCD":                       "has 4 hex digits, want 40",
		"1.2.3.4:5 " + strings.Repeat("Z", 40): "not hex",
		"1.2.3.4:5 cert=x":                     "without a transport",
		"obfs4 1.2.3.4:5 =x":                   "has no key",
	}
	for in, want := range bad {
		_, err := ParseBridge(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseBridge(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

func TestParseTransportPlugin(t *testing.T) {
	p, err := ParseTransportPlugin("obfs4,meek_lite exec /usr/bin/obfs4proxy -enableLogging")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Names, ",") != "obfs4,meek_lite" || strings.Join(p.Exec, " ") != "/usr/bin/obfs4proxy -enableLogging" {
		t.Errorf("got %+v", p)
	}
	if !p.Provides("obfs4") || p.Provides("OBFS4") || p.Provides("snowflake") {
		t.Errorf("Provides wrong for %+v", p)
	}
	p, err = ParseTransportPlugin("obfs4 socks5 127.0.0.1:4000")
	if err != nil || p.ProxyType != "socks5" || p.Proxy != netip.MustParseAddrPort("127.0.0.1:4000") {
		t.Errorf("external: %+v, %v", p, err)
	}
	for in, want := range map[string]string{
		"obfs4 exec":                  "want name",
		"obfs4 run /bin/x":            "unknown transport method",
		"a,b socks5 127.0.0.1:1":      "exactly one",
		"obfs4 socks5 127.0.0.1:1 x":  "one IP:PORT",
		"obfs-4 exec /bin/x":          "not valid",
		"obfs4 socks4 proxy.lan:1080": "transport proxy address",
	} {
		if _, err := ParseTransportPlugin(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTransportPlugin(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

func TestBridgeOptions(t *testing.T) {
	c, err := Parse([]byte("UseBridges 1\nBridge obfs4 127.0.0.1:6000 cert=x iat-mode=0\nBridge 127.0.0.1:5000\nClientTransportPlugin obfs4 exec /usr/bin/obfs4proxy\nSocks5Proxy 127.0.0.1\nSocks5ProxyUsername u\nSocks5ProxyPassword p\n"), "torrc", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !c.UseBridges || len(c.Bridges) != 2 || c.Bridges[0].Where.Line != 2 || len(c.TransportPlugins) != 1 {
		t.Fatalf("got UseBridges %v, bridges %+v, plugins %+v", c.UseBridges, c.Bridges, c.TransportPlugins)
	}
	if p := c.Proxy(); p.Type != "socks5" || p.Addr != netip.MustParseAddrPort("127.0.0.1:1080") || p.User != "u" || p.Password != "p" {
		t.Errorf("Proxy() = %+v", p)
	}
	c, err = Parse([]byte("HTTPSProxy 127.0.0.1\nHTTPSProxyAuthenticator a:b:c\n"), "torrc", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Proxy(); p.Type != "https" || p.Addr.Port() != 443 || p.User != "a" || p.Password != "b:c" {
		t.Errorf("Proxy() = %+v", p)
	}
	for text, want := range map[string]string{
		"UseBridges 1\n": "torrc:1: UseBridges: if you set UseBridges, you must specify at least one bridge",
		"UseBridges 1\nBridge 127.0.0.1:5000\nBridge obfs4 127.0.0.1:6000 cert=x\n": `torrc:3: Bridge: the bridge 127.0.0.1:6000 uses the transport "obfs4", but no ClientTransportPlugin line provides it`,
		"Bridge 1.2.3.4\n": "torrc:1: Bridge: bridge address",
		"Socks5Proxy 127.0.0.1:1\nHTTPSProxy 127.0.0.1:2\n": "more than one proxy type",
		"Socks5Proxy 127.0.0.1:1\nSocks5ProxyUsername u\n":  "must be set together",
		"Socks5Proxy proxy.lan:1080\n":                      "give the proxy's IP address",
		"ClientTransportPlugin obfs4 exec\n":                "torrc:1: ClientTransportPlugin: want name",
	} {
		_, err := Parse([]byte(text), "torrc", testEnv)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error with %q", text, err, want)
		}
	}
}
