package config

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary torrc text through the lexer and the option
// table. It must never panic, and every error must be a *Error.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"SocksPort 9050\nLog notice stdout\n",
		"SocksPort 127.0.0.1:9150 IsolateDestAddr SessionGroup=3\nSocksPort unix:\"/run/a b\" GroupWritable\n",
		"ExitNodes a,\\\n# c\n b # x\nc\n",
		`User "\x41\101\n\""` + "\n",
		"+SocksPort 1\n/SocksPort\n",
		"DirAuthority moria1 orport=9201 v3ident=F533C81CEF0BC0267857C99B2F471ADF249FA232 128.31.0.39:9231 1A25C6358DB91342AA51720A5038B72742732498\n",
		"FallbackDir 185.220.101.65 orport=9100 id=DA45B31898EDEBC5F6DB39F5BC0DB5FC693FCEFE ipv6=[2001:db8::1]:9100\n",
		"TestingTorNetwork 1\n",
		"HiddenServiceDir /a\nHiddenServicePort 80 unix:/s\nHiddenServiceVersion 3\n",
		"SocksPolicy accept [::1]/64:80-90, reject *6\n",
		"MaxMemInQueues 1.5 GB\nMaxCircuitDirtiness 2 hours\n",
		"ExcludeNodes {us},$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~x,10.0.0.0/8\n",
		"Log info-err file /tmp/x\nControlPort auto\nMetricsPort 9035 prometheus\n",
		"%include /nonexistent\n",
		"DNSPort 5353 IsolateDestAddr\nAutomapHostsOnResolve 1\nAutomapHostsSuffixes .onion,.i2p\nVirtualAddrNetworkIPv6 [fc00::]/8\n",
		"TransPort 192.168.1.1:9040 IsolateDestPort SessionGroup=2\nTransProxyType default\nHTTPTunnelPort [::1]:8118 NoIsolateSOCKSAuth\n",
		"UseBridges 1\nBridge obfs4 127.0.0.1:6000 4C17FB532E20B2A8AC199441ECD2B0177B39E4B1 cert=x iat-mode=0\nBridge [::1]:5 4C17 FB53\nClientTransportPlugin obfs4,meek exec /usr/bin/obfs4proxy\nClientTransportPlugin s socks5 127.0.0.1:1\n",
		"Socks5Proxy [::1]\nSocks5ProxyUsername u\nSocks5ProxyPassword p\nHTTPSProxy 10.0.0.1:3128\nHTTPSProxyAuthenticator a:b\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := Lex(data, "fuzz")
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Lex error %v is not a *Error", err)
			}
			return
		}
		// The same text as defaults file, torrc and command line.
		c, err := Build(Env{Home: "/h"}, lines, lines, lines)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Error() == "" {
				t.Fatalf("Build error %v is not a *Error", err)
			}
			return
		}
		_ = c.Authorities()
		_ = c.Fallbacks()
		for _, l := range lines {
			ParseDirAuthority(l.Value)
			ParseFallbackDir(l.Value)
		}
	})
}
