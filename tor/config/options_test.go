package config

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"tinytor/tor/policy"
	"tinytor/tor/torlog"
)

var testEnv = Env{Home: "/home/u"}

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse([]byte(text), "torrc", testEnv)
	if err != nil {
		t.Fatalf("Parse(%q): %v", text, err)
	}
	return c
}

// parseFails checks that each torrc text of cases fails to parse with an
// error containing its string.
func parseFails(t *testing.T, cases map[string]string) {
	t.Helper()
	for text, want := range cases {
		_, err := Parse([]byte(text), "torrc", testEnv)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", text, err, want)
		}
	}
}

func fp(b byte) [20]byte {
	var f [20]byte
	for i := range f {
		f[i] = b
	}
	return f
}

var (
	hexA = strings.Repeat("AA", 20)
	hexB = strings.Repeat("bb", 20)
)

func socks(addr string, mod func(*SocksPort)) SocksPort {
	p := SocksPort{Listener: Listener{Addr: netip.MustParseAddrPort(addr)}, Isolation: DefaultIsolation,
		SessionGroup: -1, IPv4Traffic: true, IPv6Traffic: true, DNSRequest: true, OnionTraffic: true}
	if mod != nil {
		mod(&p)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, "")
	want := &Config{
		DataDirectory:                 "/home/u/.tinytor",
		CacheDirectory:                "/home/u/.tinytor",
		SocksPorts:                    []SocksPort{socks("127.0.0.1:9050", nil)},
		WarnUnsafeSocks:               true,
		Logs:                          []LogTarget{{Min: torlog.Notice, Max: torlog.Err, Dest: LogStdout}},
		SafeLogging:                   SafeLoggingOn,
		UseDefaultFallbackDirs:        true,
		EnforceDistinctSubnets:        true,
		UseEntryGuards:                true,
		LearnCircuitBuildTimeout:      true,
		MaxCircuitDirtiness:           10 * time.Minute,
		NewCircuitPeriod:              30 * time.Second,
		ClientUseIPv4:                 true,
		ClientRejectInternalAddresses: true,
		CookieAuthFile:                "/home/u/.tinytor/control_auth_cookie",
		HardwareWatchdogTimeout:       30 * time.Second,
		AutomapHostsSuffixes:          []string{".onion", ".exit"},
		TransProxyType:                "default",
		VirtualAddrNetworkIPv4:        netip.MustParsePrefix("127.192.0.0/10"),
		VirtualAddrNetworkIPv6:        netip.MustParsePrefix("fe80::/10"),
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	root, err := Parse(nil, "torrc", Env{Root: true})
	if err != nil || root.DataDirectory != "/var/lib/tinytor" {
		t.Errorf("root DataDirectory = %q, %v; want /var/lib/tinytor", root.DataDirectory, err)
	}
	_, err = Parse(nil, "torrc", Env{})
	if err == nil || err.Error() != "DataDirectory: no default: not running as root and $HOME is unset; set DataDirectory" {
		t.Errorf("no HOME: err = %v", err)
	}
	if _, err := Parse([]byte("DataDirectory /d"), "torrc", Env{}); err != nil {
		t.Errorf("no HOME but DataDirectory set: %v", err)
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		in   string
		get  func(*Config) any
		want any
	}{
		// Case-insensitive keys, last one wins for single options.
		{"datadirectory /a\nDATADIRECTORY /b", func(c *Config) any { return c.DataDirectory }, "/b"},
		{"DataDirectory /a", func(c *Config) any { return c.CacheDirectory }, "/a"},
		{"DataDirectory /a\nCacheDirectory /c", func(c *Config) any { return c.CacheDirectory }, "/c"},
		{"DataDirectory /a\nDataDirectory", func(c *Config) any { return c.DataDirectory }, "/home/u/.tinytor"},

		{"SocksPort 9150", func(c *Config) any { return c.SocksPorts }, []SocksPort{socks("127.0.0.1:9150", nil)}},
		{"SocksPort 0.0.0.0:9050\nSocksPort [::1]:9051", func(c *Config) any { return c.SocksPorts },
			[]SocksPort{socks("0.0.0.0:9050", nil), socks("[::1]:9051", nil)}},
		{"SocksPort localhost:9150", func(c *Config) any { return c.SocksPorts }, []SocksPort{socks("127.0.0.1:9150", nil)}},
		{"SocksPort 0", func(c *Config) any { return len(c.SocksPorts) }, 0},
		{"SocksPort auto", func(c *Config) any { return c.SocksPorts[0].Listener }, Listener{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Auto: true}},
		{"SocksPort 10.0.0.1:auto", func(c *Config) any { return c.SocksPorts[0].String() }, "10.0.0.1:auto"},
		{"SocksPort unix:/run/tor/socks", func(c *Config) any { return c.SocksPorts[0].Listener }, Listener{Unix: "/run/tor/socks"}},
		{`SocksPort unix:"/run/a b" GroupWritable`, func(c *Config) any { return c.SocksPorts[0].Unix + "|" + boolStr(c.SocksPorts[0].GroupWritable) }, "/run/a b|1"},
		{"SocksPort unix:/s IsolateClientAddr", func(c *Config) any { return c.SocksPorts[0].Isolation }, IsolateSOCKSAuth},
		{"SocksPort 9050 IsolateDestAddr IsolateDestPort IsolateClientProtocol", func(c *Config) any { return c.SocksPorts[0].Isolation },
			DefaultIsolation | IsolateDestAddr | IsolateDestPort | IsolateClientProtocol},
		{"SocksPort 9050\tIsolateDestAddr", func(c *Config) any { return c.SocksPorts[0].Isolation }, DefaultIsolation | IsolateDestAddr},
		{"SocksPort unix:/s\tNoIsolateSOCKSAuth", func(c *Config) any { return c.SocksPorts[0].Isolation }, Isolation(0)},
		{"SocksPort 9050 IsolateDestAddrs", func(c *Config) any { return c.SocksPorts[0].Isolation }, DefaultIsolation | IsolateDestAddr},
		{"SocksPort 9050 NoIsolateSOCKSAuth NoIsolateClientAddr", func(c *Config) any {
			return []any{c.SocksPorts[0].Isolation, c.SocksPorts[0].PreferSOCKSNoAuth}
		}, []any{Isolation(0), true}},
		{"SocksPort 9050 isolatesocksauth", func(c *Config) any { return c.SocksPorts[0].Isolation }, DefaultIsolation},
		{"SocksPort 9050 SessionGroup=7", func(c *Config) any { return c.SocksPorts[0].SessionGroup }, 7},
		{"SocksPort 9050 NoIPv4Traffic IPv6Traffic PreferIPv6 ExtendedErrors", func(c *Config) any {
			p := c.SocksPorts[0]
			return []bool{p.IPv4Traffic, p.IPv6Traffic, p.PreferIPv6, p.ExtendedErrors}
		}, []bool{false, true, true, true}},
		{"SocksPort 9050 OnionTrafficOnly", func(c *Config) any {
			p := c.SocksPorts[0]
			return []bool{p.IPv4Traffic, p.IPv6Traffic, p.DNSRequest, p.OnionTraffic}
		}, []bool{false, false, false, true}},
		{"SocksPort 9050 NoOnionTraffic", func(c *Config) any { return c.SocksPorts[0].OnionTraffic }, false},
		{"SocksPort 9050 Bogus", func(c *Config) any { return c.Warnings }, []string{"torrc:1: SocksPort: Unrecognized SocksPort option 'Bogus'"}},

		{"SocksPort 192.168.1.1:9050\nSocksPort 0.0.0.0:9051\nSocksPort [fd00::1]:9052", func(c *Config) any { return len(c.Warnings) }, 0},
		{"SocksPort 8.8.8.8:9050", func(c *Config) any { return c.Warnings }, []string{"torrc:1: SocksPort: You specified a public address '8.8.8.8:9050' for SocksPort. Other people on the Internet might find your computer and use it as an open proxy. Please don't allow this unless you have a good reason."}},
		{"ControlPort 192.168.1.1:9051\nCookieAuthentication 1", func(c *Config) any { return c.Warnings }, []string{"torrc:1: ControlPort: You have a ControlPort set to accept connections from a non-local address (192.168.1.1:9051). The control protocol isn't encrypted; prefer 127.0.0.1 with ssh or stunnel for remote access."}},
		{"SocksPolicy accept 192.168.0.0/16, reject *", func(c *Config) any { return c.SocksPolicy },
			policy.Policy{{Accept: true, Prefix: netip.MustParsePrefix("192.168.0.0/16"), PortMin: 1, PortMax: 65535}, {PortMin: 1, PortMax: 65535}}},
		{"SocksPolicy accept 10.0.0.0/8\nSocksPolicy accept [fd00::]/8:80\nMetricsPortPolicy reject *4:443, accept *", func(c *Config) any { return c.Warnings },
			[]string{"torrc:2: SocksPolicy: Ignoring ports in SocksPolicy option.", "torrc:3: MetricsPortPolicy: Ignoring ports in MetricsPortPolicy option.",
				"torrc:2: SocksPolicy: SocksPolicy has no rule for every address (such as 'reject *'), so a client no rule matches is accepted, as in C tor."}},
		{"SocksPolicy accept private, reject *", func(c *Config) any { return []any{len(c.SocksPolicy), c.Warnings} }, []any{13, []string(nil)}},
		{"SocksPolicy ,\nMetricsPortPolicy , ", func(c *Config) any { return []any{c.SocksPolicy, c.MetricsPortPolicy} }, []any{policy.Policy(nil), policy.Policy(nil)}},
		{"SocksPolicy accept 10.1.2.3\nSocksPolicy reject6 [fe80::]/10:80-90\nSocksPolicy reject *4:443", func(c *Config) any { return c.SocksPolicy },
			policy.Policy{{Accept: true, Prefix: netip.MustParsePrefix("10.1.2.3/32"), PortMin: 1, PortMax: 65535},
				{Prefix: netip.MustParsePrefix("fe80::/10"), PortMin: 80, PortMax: 90},
				{Prefix: netip.MustParsePrefix("0.0.0.0/0"), PortMin: 443, PortMax: 443}}},
		{"SocksPolicy accept 10.0.0.0/255.0.0.0:*\nSocksPolicy reject [::]/0:*", func(c *Config) any { return c.SocksPolicy },
			policy.Policy{{Accept: true, Prefix: netip.MustParsePrefix("10.0.0.0/8"), PortMin: 1, PortMax: 65535},
				{Prefix: netip.MustParsePrefix("::/0"), PortMin: 1, PortMax: 65535}}},
		{"SafeSocks 1\nWarnUnsafeSocks 0\nTestSocks 1", func(c *Config) any { return []bool{c.SafeSocks, c.WarnUnsafeSocks, c.TestSocks} }, []bool{true, false, true}},

		{"Log info-warn stderr\nLog debug file /var/log/tor debug.log\nLog err syslog\nLog notice", func(c *Config) any { return c.Logs },
			[]LogTarget{{Min: torlog.Info, Max: torlog.Warn, Dest: LogStderr}, {Min: torlog.Debug, Max: torlog.Err, Dest: LogFile, Path: "/var/log/tor debug.log"},
				{Min: torlog.Err, Max: torlog.Err, Dest: LogSyslog}, {Min: torlog.Notice, Max: torlog.Err, Dest: LogStdout}}},
		{"SafeLogging 0", func(c *Config) any { return c.SafeLogging }, SafeLoggingOff},
		{"SafeLogging relay", func(c *Config) any { return c.SafeLogging }, SafeLoggingRelay},

		{"DirAuthority test000a orport=5000 no-v2 v3ident=" + hexA + " 127.0.0.1:7000 " + hexB,
			func(c *Config) any { return c.DirAuthorities }, []DirAuthority{{Nickname: "test000a", Addr: netip.MustParseAddrPort("127.0.0.1:7000"),
				ORPort: 5000, Fingerprint: fp(0xbb), V3Ident: fp(0xaa), Weight: 1}}},
		{"DirAuthority orport=1 bridge weight=2.5 ipv6=[::1]:9 10.0.0.1:80 " + hexB,
			func(c *Config) any { return c.DirAuthorities }, []DirAuthority{{Addr: netip.MustParseAddrPort("10.0.0.1:80"),
				ORPort: 1, IPv6: netip.MustParseAddrPort("[::1]:9"), Fingerprint: fp(0xbb), Bridge: true, Weight: 2.5}}},
		{"DirAuthority x hs 10.0.0.1:80 " + hexB, func(c *Config) any { return c.Warnings },
			[]string{"torrc:1: DirAuthority: The DirAuthority options 'hs' and 'no-hs' are obsolete; you don't need them any more."}},
		{"FallbackDir 10.0.0.2:80 orport=9001 id=" + hexA + " ipv6=[2001:db8::1]:9001 weight=3", func(c *Config) any { return c.FallbackDirs },
			[]FallbackDir{{Addr: netip.MustParseAddr("10.0.0.2"), DirPort: 80, ORPort: 9001, ID: fp(0xaa), IPv6: netip.MustParseAddrPort("[2001:db8::1]:9001"), Weight: 3}}},
		{"FallbackDir 10.0.0.2 orport=9001 id=" + hexA, func(c *Config) any { return c.FallbackDirs[0].DirPort }, uint16(0)},
		{"DirAuthority\nDirAuthority  ", func(c *Config) any { return c.Warnings }, []string{
			"torrc:1: DirAuthority: Linelist option 'DirAuthority' has no value. Skipping.",
			"torrc:2: DirAuthority: Linelist option 'DirAuthority' has no value. Skipping."}},
		{"UseDefaultFallbackDirs 0", func(c *Config) any { return len(c.Fallbacks()) }, 0},

		{"TestingTorNetwork 1\nDirAuthority 127.0.0.1:7000 " + hexB, func(c *Config) any {
			return []bool{c.TestingTorNetwork, c.EnforceDistinctSubnets, c.ClientRejectInternalAddresses, c.ExtendAllowPrivateAddresses}
		}, []bool{true, false, false, true}},
		{"TestingTorNetwork 1\nEnforceDistinctSubnets 1\nDirAuthority 127.0.0.1:7000 " + hexB, func(c *Config) any { return c.EnforceDistinctSubnets }, true},
		{"EnforceDistinctSubnets 0", func(c *Config) any { return c.EnforceDistinctSubnets }, false},

		{"ExitNodes $" + hexA + "~Nick, " + hexB + ",Bob , 10.0.0.0/8,2001:db8::/32, 1.2.3.4", func(c *Config) any { return c.ExitNodes },
			NodeList{{Kind: NodeFingerprint, Fingerprint: fp(0xaa), Nickname: "Nick"}, {Kind: NodeFingerprint, Fingerprint: fp(0xbb)},
				{Kind: NodeNickname, Nickname: "Bob"}, {Kind: NodeAddress, Prefix: netip.MustParsePrefix("10.0.0.0/8")},
				{Kind: NodeAddress, Prefix: netip.MustParsePrefix("2001:db8::/32")}, {Kind: NodeAddress, Prefix: netip.MustParsePrefix("1.2.3.4/32")}}},
		{"EntryNodes a\nExcludeNodes b\nExcludeExitNodes c\nStrictNodes 1", func(c *Config) any {
			return []any{c.EntryNodes[0].Nickname, c.ExcludeNodes[0].Nickname, c.ExcludeExitNodes[0].Nickname, c.StrictNodes}
		}, []any{"a", "b", "c", true}},
		{"NumEntryGuards 2\nUseEntryGuards 0", func(c *Config) any { return []any{c.NumEntryGuards, c.UseEntryGuards} }, []any{2, false}},
		{"CircuitBuildTimeout 30\nLearnCircuitBuildTimeout 0", func(c *Config) any { return []any{c.CircuitBuildTimeout, c.LearnCircuitBuildTimeout} }, []any{30 * time.Second, false}},
		{"MaxCircuitDirtiness 5", func(c *Config) any { return []any{c.MaxCircuitDirtiness, c.Warnings} },
			[]any{10 * time.Second, []string{"torrc:1: MaxCircuitDirtiness: MaxCircuitDirtiness option is too short; raising to 10 seconds."}}},
		{"MaxCircuitDirtiness 2 months", func(c *Config) any { return []any{c.MaxCircuitDirtiness, c.Warnings} },
			[]any{30 * 24 * time.Hour, []string{"torrc:1: MaxCircuitDirtiness: MaxCircuitDirtiness option is too high; setting to 30 days."}}},
		{"CircuitBuildTimeout 5\nLearnCircuitBuildTimeout 0", func(c *Config) any { return len(c.Warnings) }, 1},
		{"SocksPort 1\n/SocksPort\nSocksPort 2\n+SocksPort 3", func(c *Config) any { return ports(c) }, []string{"127.0.0.1:2", "127.0.0.1:3"}},
		{"SocksPort 1\n/SocksPort", func(c *Config) any { return ports(c) }, []string{"127.0.0.1:9050"}},
		{"User a\nUser b", func(c *Config) any { return []any{c.User, c.Warnings} },
			[]any{"b", []string{"torrc:2: User: Option 'User' used more than once; all but the last value will be ignored."}}},
		{"MaxCircuitDirtiness 2 hours", func(c *Config) any { return c.MaxCircuitDirtiness }, 2 * time.Hour},
		{"MaxCircuitDirtiness 1.5 minutes", func(c *Config) any { return c.MaxCircuitDirtiness }, 90 * time.Second},
		{"NewCircuitPeriod 1 day", func(c *Config) any { return c.NewCircuitPeriod }, 24 * time.Hour},
		{"NewCircuitPeriod 2 WEEKS", func(c *Config) any { return c.NewCircuitPeriod }, 14 * 24 * time.Hour},
		{"NewCircuitPeriod 45seconds", func(c *Config) any { return c.NewCircuitPeriod }, 45 * time.Second},
		{"ClientUseIPv6 1\nClientUseIPv4 0", func(c *Config) any { return []bool{c.ClientUseIPv6, c.ClientUseIPv4} }, []bool{true, false}},
		{"ClientRejectInternalAddresses 0\nExtendAllowPrivateAddresses 1", func(c *Config) any {
			return []bool{c.ClientRejectInternalAddresses, c.ExtendAllowPrivateAddresses}
		}, []bool{false, true}},
		{"MaxMemInQueues 64 MB", func(c *Config) any { return c.MaxMemInQueues }, uint64(64 << 20)},
		{"MaxMemInQueues 1 GB", func(c *Config) any { return c.MaxMemInQueues }, uint64(1 << 30)},
		{"MaxMemInQueues 512 kbytes", func(c *Config) any { return c.MaxMemInQueues }, uint64(512 << 10)},
		{"MaxMemInQueues 8 mbits", func(c *Config) any { return c.MaxMemInQueues }, uint64(1 << 20)},
		{"MaxMemInQueues 1000", func(c *Config) any { return c.MaxMemInQueues }, uint64(1000)},

		{"ClientOnionAuthDir /var/lib/tinytor/auth", func(c *Config) any { return c.ClientOnionAuthDir }, "/var/lib/tinytor/auth"},
		{"ControlPort 9051\nControlPort unix:/run/ctl GroupWritable RelaxDirModeCheck\nControlPort 0", func(c *Config) any { return c.ControlPorts },
			[]ControlPort{{Listener: Listener{Addr: netip.MustParseAddrPort("127.0.0.1:9051")}},
				{Listener: Listener{Unix: "/run/ctl"}, GroupWritable: true, RelaxDirModeCheck: true}}},
		{"ControlSocket /run/c\nControlSocket 0", func(c *Config) any { return c.ControlSockets }, []string{"/run/c"}},
		{"CookieAuthentication 1\nCookieAuthFile /c\nCookieAuthFileGroupReadable 1", func(c *Config) any {
			return []any{c.CookieAuthentication, c.CookieAuthFile, c.CookieAuthFileGroupReadable}
		}, []any{true, "/c", true}},
		{"HashedControlPassword 16:" + strings.Repeat("0A", 29), func(c *Config) any { return c.HashedControlPasswords }, []string{"16:" + strings.Repeat("0A", 29)}},
		{"MetricsPort 9035\nMetricsPort 192.168.1.1:9036 prometheus", func(c *Config) any { return c.MetricsPorts },
			[]MetricsPort{{Listener: Listener{Addr: netip.MustParseAddrPort("127.0.0.1:9035")}, Format: "prometheus"},
				{Listener: Listener{Addr: netip.MustParseAddrPort("192.168.1.1:9036")}, Format: "prometheus"}}},
		{"MetricsPortPolicy accept 192.168.1.0/24", func(c *Config) any {
			return []bool{c.MetricsPortPolicy.Allows(netip.MustParseAddr("192.168.1.7"), policy.RejectUnmatched),
				c.MetricsPortPolicy.Allows(netip.MustParseAddr("192.168.2.7"), policy.RejectUnmatched)}
		}, []bool{true, false}},
		{"User tor\nPidFile /run/tinytor.pid\nRunAsDaemon 0", func(c *Config) any { return []any{c.User, c.PidFile, c.RunAsDaemon} }, []any{"tor", "/run/tinytor.pid", false}},
		{"", func(c *Config) any { return []any{c.HardwareWatchdog, c.HardwareWatchdogTimeout, c.AvoidDiskWrites} }, []any{"", 30 * time.Second, false}},
		{"HardwareWatchdog 1\nHardwareWatchdogTimeout 1 minute\nAvoidDiskWrites 1", func(c *Config) any {
			return []any{c.HardwareWatchdog, c.HardwareWatchdogTimeout, c.AvoidDiskWrites}
		}, []any{"/dev/watchdog", time.Minute, true}},
		{"HardwareWatchdog /dev/watchdog1/\nHardwareWatchdogTimeout 3", func(c *Config) any { return []any{c.HardwareWatchdog, c.HardwareWatchdogTimeout} },
			[]any{"/dev/watchdog1", 3 * time.Second}},
		{"HardwareWatchdog /dev/watchdog\nHardwareWatchdog 0", func(c *Config) any { return c.HardwareWatchdog }, ""},
		{"CircuitStreamTimeout 20\nSocks4Proxy 10.0.0.1", func(c *Config) any { return []any{c.CircuitStreamTimeout, c.Proxy()} },
			[]any{20 * time.Second, UpstreamProxy{Type: "socks4", Addr: netip.MustParseAddrPort("10.0.0.1:1080")}}},
	}
	for _, tc := range tests {
		c := mustParse(t, tc.in)
		if got := tc.get(c); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %#v\nwant %#v", tc.in, got, tc.want)
		}
	}
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func TestHiddenServices(t *testing.T) {
	c := mustParse(t, `HiddenServiceDir /hs/a
HiddenServicePort 80
HiddenServicePort 443 8443
HiddenServicePort 22 192.168.1.5:22
HiddenServicePort 8080 unix:/run/web.sock
HiddenServicePort 8081 unix:"/run/a b"
HiddenServiceVersion 3
HiddenServiceNumIntroductionPoints 5
HiddenServiceMaxStreams 10
HiddenServiceMaxStreamsCloseCircuit 1
HiddenServiceDirGroupReadable 1
HiddenServicePoWDefensesEnabled 1
HiddenServicePoWQueueRate 10
HiddenServicePoWQueueBurst 100
HiddenServiceDir /hs/b
HiddenServicePort 80 [::1]:8080
`)
	want := []HiddenService{
		{Dir: "/hs/a", Ports: []HiddenServicePort{
			{VirtualPort: 80, Target: netip.MustParseAddrPort("127.0.0.1:80")},
			{VirtualPort: 443, Target: netip.MustParseAddrPort("127.0.0.1:8443")},
			{VirtualPort: 22, Target: netip.MustParseAddrPort("192.168.1.5:22")},
			{VirtualPort: 8080, Unix: "/run/web.sock"},
			{VirtualPort: 8081, Unix: "/run/a b"},
		}, Version: 3, NumIntroductionPoints: 5, MaxStreams: 10, MaxStreamsCloseCircuit: true, DirGroupReadable: true,
			PoWDefensesEnabled: true, PoWQueueRate: 10, PoWQueueBurst: 100},
		{Dir: "/hs/b", Ports: []HiddenServicePort{{VirtualPort: 80, Target: netip.MustParseAddrPort("[::1]:8080")}},
			Version: 3, NumIntroductionPoints: 3, PoWQueueRate: 250, PoWQueueBurst: 2500},
	}
	if !reflect.DeepEqual(c.HiddenServices, want) {
		t.Errorf("got  %+v\nwant %+v", c.HiddenServices, want)
	}
}

func TestOptionErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Foo 1", "torrc:1: Unknown option 'Foo'"},
		{"\n\nSocksPort 9050\nbar", "torrc:4: Unknown option 'bar'"},
		{"ORPort 9001", "torrc:1: ORPort: tinytor is a Tor client only and does not support relay options"},
		{"exitrelay 0", "torrc:1: ExitRelay: tinytor is a Tor client only and does not support relay options"},
		{"ExitPolicy reject *:*", "torrc:1: ExitPolicy: tinytor is a Tor client only and does not support relay options"},
		{"DirPort 80", "torrc:1: DirPort: tinytor is a Tor client only and does not support relay options"},
		{"ContactInfo x", "torrc:1: ContactInfo: tinytor is a Tor client only and does not support relay options"},
		{"Nickname x", "torrc:1: Nickname: tinytor is a Tor client only and does not support relay options"},
		{"BridgeRelay 1", "torrc:1: BridgeRelay: tinytor is a Tor client only and does not support relay options"},
		{"RelayBandwidthRate 1 MB", "torrc:1: RelayBandwidthRate: tinytor is a Tor client only and does not support relay options"},

		{"SocksPort 70000", `torrc:1: SocksPort: invalid port "70000": must be between 1 and 65535`},
		{"SocksPort example.com:80", `torrc:1: SocksPort: invalid address "example.com": must be an IPv4 or IPv6 literal`},
		{"SocksPort 1.2.3.4", `torrc:1: SocksPort: address "1.2.3.4" has no port`},
		{"SocksPort 1.2.3.4:", `torrc:1: SocksPort: invalid address "1.2.3.4:": empty port`},
		{"SocksPort [::1", `torrc:1: SocksPort: invalid address "[::1": missing ']'`},
		{"SocksPort 9050\nSocksPort 0", "torrc:2: SocksPort: you specified a nonzero SocksPort along with 'SocksPort 0' in the same configuration; did you mean to disable SocksPort or not?"},
		{"SocksPort 9050 SessionGroup=x", `torrc:1: SocksPort: invalid SocksPort option "SessionGroup=x"`},
		{"SocksPort 9050 SessionGroup=1 SessionGroup=2", "torrc:1: SocksPort: multiple SessionGroup options on SocksPort"},
		{"SocksPort 9050 NoIPv4Traffic NoIPv6Traffic NoOnionTraffic", "torrc:1: SocksPort: SocksPort entry with all of IPv4 and IPv6 and .onion disabled; that won't work"},
		{"SocksPort 9050 NoIPv4Traffic NoIPv6Traffic", "torrc:1: SocksPort: SocksPort entry with DNSRequest enabled, but IPv4 and IPv6 disabled; DNS-based sites won't work"},
		{"SocksPort 9050 GroupWritable", "torrc:1: SocksPort: SocksPort entry with GroupWritable, WorldWritable, or RelaxDirModeCheck, but it is not a unix socket"},
		{"SocksPort 9050 NoOnionTrafficOnly", "torrc:1: SocksPort: unsupported SocksPort option 'NoOnionTrafficOnly'; use DNSRequest, IPv4Traffic and/or IPv6Traffic instead"},
		{"SocksPort 9050 NoIsolateSOCKSAuth KeepAliveIsolateSOCKSAuth", "torrc:1: SocksPort: SocksPort entry with both NoIsolateSOCKSAuth and KeepAliveIsolateSOCKSAuth set"},
		{"SocksPort unix:", "torrc:1: SocksPort: empty unix socket path"},

		{"SocksPolicy allow *", `torrc:1: SocksPolicy: entry 1 "allow *": unknown action "allow" (want accept, reject, accept6 or reject6)`},
		{"SocksPolicy accept 300.1.1.1", `torrc:1: SocksPolicy: entry 1 "accept 300.1.1.1": malformed address "300.1.1.1" (want *, *4, *6, private, an IPv4 address or a bracketed IPv6 address)`},
		{"SocksPolicy accept 10.0.0.0/33", `torrc:1: SocksPolicy: entry 1 "accept 10.0.0.0/33": mask /33 is longer than the 32 bits of the address 10.0.0.0`},
		{"SocksPolicy accept 10.0.0.0/255.0.255.0", `torrc:1: SocksPolicy: entry 1 "accept 10.0.0.0/255.0.255.0": netmask 255.0.255.0 is not contiguous`},
		{"SocksPolicy accept *:90-80", `torrc:1: SocksPolicy: entry 1 "accept *:90-80": port range "90-80" is reversed`},
		{"SocksPolicy accept 1.2.3.4, accept6 1.2.3.4", `torrc:1: SocksPolicy: entry 2 "accept6 1.2.3.4": accept6 with the IPv4 address 1.2.3.4: accept6 takes IPv6 addresses only (use accept)`},
		{"SocksPolicy accept", `torrc:1: SocksPolicy: entry 1 "accept": no address: want "accept|reject ADDR[/MASK][:PORTS]"`},
		{"MetricsPort 9035\nMetricsPortPolicy accept [::1", `torrc:2: MetricsPortPolicy: entry 1 "accept [::1": no ']' after the IPv6 address in "[::1"`},

		{"Log loud stdout", `torrc:1: Log: unknown log severity "loud" (want debug, info, notice, warn or err)`},
		{"Log err-notice stdout", `torrc:1: Log: severity range "err-notice" is reversed (write it least severe first, e.g. info-notice)`},
		{"Log notice file", "torrc:1: Log: 'file' log destination needs a file name"},
		{"Log notice journald", `torrc:1: Log: unknown log destination "journald" (want stdout, stderr, syslog or file PATH)`},
		{"Log notice stdout extra", `torrc:1: Log: excess data "extra" after log destination "stdout"`},
		{"Log [circ]info stdout", "torrc:1: Log: log domains ([domain,...]severity) are not supported by tinytor"},
		{"SafeLogging 2", `torrc:1: SafeLogging: invalid value "2": must be 0, 1 or relay`},

		{"DirAuthority 1.2.3.4:80", "torrc:1: DirAuthority: too few arguments to DirAuthority line (want [nickname] [flags] address:dirport fingerprint)"},
		{"DirAuthority x orport=0 1.2.3.4:80 " + hexA, `torrc:1: DirAuthority: invalid orport "0"`},
		{"DirAuthority x v3ident=12 1.2.3.4:80 " + hexA, `torrc:1: DirAuthority: bad v3 identity digest "12"`},
		{"DirAuthority x ipv6=1.2.3.4:5 1.2.3.4:80 " + hexA, `torrc:1: DirAuthority: bad ipv6 addr/port "1.2.3.4:5"`},
		{"DirAuthority x 300.1.1.1:80 " + hexA, `torrc:1: DirAuthority: error parsing DirAuthority address "300.1.1.1" (invalid IPv4 address)`},
		// As in C tor, an item not starting with a digit is a flag.
		{"DirAuthority x [::1]:80 " + hexA, "torrc:1: DirAuthority: too few arguments to DirAuthority line (want [nickname] [flags] address:dirport fingerprint)"},
		{"DirAuthority x 1.2.3.4 " + hexA, `torrc:1: DirAuthority: missing port in DirAuthority address "1.2.3.4"`},
		{"DirAuthority x 1.2.3.4:80 ABCD", `torrc:1: DirAuthority: key digest "ABCD" for DirAuthority is wrong length 4`},
		{"DirAuthority x 1.2.3.4:80 " + strings.Repeat("G", 40), "torrc:1: DirAuthority: unable to decode DirAuthority key digest"},
		{"DirAuthority x weight=-1 1.2.3.4:80 " + hexA, `torrc:1: DirAuthority: invalid weight "-1"`},
		{"FallbackDir 1.2.3.4:80 id=" + hexA, "torrc:1: FallbackDir: missing orport on FallbackDir line"},
		{"FallbackDir 1.2.3.4:80 orport=1", "torrc:1: FallbackDir: missing identity (id=) on FallbackDir line"},
		{"FallbackDir 1.2.3.4:80 orport=1 id=12", `torrc:1: FallbackDir: bad FallbackDir option "id=12"`},
		{"FallbackDir 1.2.3.4:80 orport=1 id=" + hexA + "00", `torrc:1: FallbackDir: bad FallbackDir option "id=` + hexA + `00"`},
		{"FallbackDir 1.2.3.4:80 5.6.7.8 orport=1 id=" + hexA, "torrc:1: FallbackDir: couldn't parse FallbackDir line: want exactly one address[:dirport]"},
		{"FallbackDir host:80 orport=1 id=" + hexA, `torrc:1: FallbackDir: couldn't parse address:port "host:80" on FallbackDir line`},
		{"TestingTorNetwork 1", "torrc:1: TestingTorNetwork: TestingTorNetwork may only be configured in combination with a non-default set of DirAuthority"},
		{"TestingTorNetwork yes", `torrc:1: TestingTorNetwork: invalid boolean "yes": must be 0 or 1`},

		{"ExitNodes {us}", `torrc:1: ExitNodes: country code "{us}" is not supported: tinytor has no GeoIP database; list fingerprints or address ranges instead`},
		{"ExitNodes $1234", `torrc:1: ExitNodes: bad node "$1234": fingerprint "1234" is not 40 hex digits`},
		{"EntryNodes a-b", `torrc:1: EntryNodes: bad node "a-b": not a fingerprint, nickname or address range`},
		{"ExcludeNodes 10.0.0.0/40", `torrc:1: ExcludeNodes: bad node "10.0.0.0/40": bad mask "40"`},
		{"ExcludeExitNodes $" + hexA + "~bad-name", `torrc:1: ExcludeExitNodes: bad nickname in "$` + hexA + `~bad-name"`},
		{"NumEntryGuards -1", `torrc:1: NumEntryGuards: invalid number "-1": must be an integer between 0 and 65535`},
		{"CircuitBuildTimeout 10 fortnights", `torrc:1: CircuitBuildTimeout: interval "10 fortnights" is malformed: unknown unit in "10 fortnights"`},
		{"MaxCircuitDirtiness soon", `torrc:1: MaxCircuitDirtiness: interval "soon" is malformed: unable to parse "soon" as a number`},
		{"MaxMemInQueues 64 MiB", `torrc:1: MaxMemInQueues: memory size "64 MiB" is malformed: unknown unit in "64 MiB"`},
		{"MaxMemInQueues 99999999999 TB", `torrc:1: MaxMemInQueues: memory size "99999999999 TB" is malformed: overflow while parsing "99999999999 TB"`},
		{"HardwareWatchdog watchdog", `torrc:1: HardwareWatchdog: invalid value "watchdog": must be 0, 1 or the absolute path of a watchdog device such as /dev/watchdog`},
		{"HardwareWatchdogTimeout 2 seconds", `torrc:1: HardwareWatchdogTimeout: interval "2 seconds" is out of bounds: must be between 3 seconds and 10 minutes`},
		{"HardwareWatchdogTimeout 1 hour", `torrc:1: HardwareWatchdogTimeout: interval "1 hour" is out of bounds: must be between 3 seconds and 10 minutes`},
		{"HardwareWatchdogTimeout soon", `torrc:1: HardwareWatchdogTimeout: interval "soon" is malformed: unable to parse "soon" as a number`},
		{"AvoidDiskWrites 2", `torrc:1: AvoidDiskWrites: invalid boolean "2": must be 0 or 1`},

		{"HiddenServicePort 80", "torrc:1: HiddenServicePort: HiddenServicePort with no preceding HiddenServiceDir directive"},
		{"HiddenServiceDir /a", "torrc:1: HiddenServiceDir: hidden service (/a) with no ports configured"},
		{"HiddenServiceDir /a\nHiddenServicePort 80\nHiddenServicePoWDefensesEnabled 1\nHiddenServicePoWQueueRate 10\nHiddenServicePoWQueueBurst 5", "torrc:1: HiddenServiceDir: hidden service (/a) PoW queue burst (5) can not be smaller than the rate value (10)"},
		{"HiddenServiceDir /a\nHiddenServicePort 80\nHiddenServicePoWQueueRate -1", "torrc:3: HiddenServicePoWQueueRate: invalid number \"-1\": must be an integer between 0 and 2147483647"},
		{"HiddenServiceDir /a\nHiddenServicePort 80\nHiddenServiceDir /a", "torrc:3: HiddenServiceDir: another hidden service is already configured for directory /a"},
		{"HiddenServiceDir /a\nHiddenServiceVersion 2", `torrc:2: HiddenServiceVersion: HiddenServiceVersion "2" is not supported: only version 3 onion services exist`},
		{"HiddenServiceDir /a\nHiddenServiceVersion 3\nHiddenServiceVersion 3", "torrc:3: HiddenServiceVersion: HiddenServiceVersion given more than once for HiddenServiceDir /a"},
		{"HiddenServiceDir /a\nHiddenServiceNumIntroductionPoints 21", `torrc:2: HiddenServiceNumIntroductionPoints: invalid number "21": must be an integer between 0 and 20`},
		{"HiddenServiceDir /a\nHiddenServicePort 0", `torrc:2: HiddenServicePort: bad virtual port in HiddenServicePort: invalid port "0": must be between 1 and 65535`},
		{"HiddenServiceDir /a\nHiddenServicePort 80 host:80", `torrc:2: HiddenServicePort: bad target in HiddenServicePort: invalid address "host": must be an IPv4 or IPv6 literal`},
		{"HiddenServiceDir /a\nHiddenServicePort 80 81 82", `torrc:2: HiddenServicePort: bad HiddenServicePort "80 81 82": want VIRTPORT [TARGET]`},
		{"HiddenServiceDir /a\nHiddenServicePort 80 unix:\"/a b\" x", `torrc:2: HiddenServicePort: bad unix socket path in HiddenServicePort "80 unix:\"/a b\" x"`},
		{"HiddenServiceDir /a\nHiddenServiceMaxStreamsCloseCircuit 2", `torrc:2: HiddenServiceMaxStreamsCloseCircuit: invalid boolean "2": must be 0 or 1`},

		{"ControlPort 0.0.0.0:9051", "torrc:1: ControlPort: ControlPort 0.0.0.0:9051 accepts connections from a non-local address without authentication; set CookieAuthentication or HashedControlPassword, or listen on 127.0.0.1"},
		{"ControlPort 9051 GroupWritable", "torrc:1: ControlPort: ControlPort entry with GroupWritable, WorldWritable, or RelaxDirModeCheck, but it is not a unix socket"},
		{"HashedControlPassword 16:00", `torrc:1: HashedControlPassword: bad HashedControlPassword "16:00": want "16:" and 58 hex digits, as printed by tor --hash-password`},
		{"MetricsPort unix:/x", "torrc:1: MetricsPort: MetricsPort does not support unix sockets"},
		{"MetricsPort 9035 json", `torrc:1: MetricsPort: unknown MetricsPort format "json" (only "prometheus" is supported)`},
		{"RunAsDaemon 1", "torrc:1: RunAsDaemon: RunAsDaemon 1 is not supported: tinytor runs in the foreground; let the init system (procd, systemd, runit, ...) run it in the background"},
		{"%include /x", "torrc:1: %include: %include is only allowed in configuration files"},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.in), "torrc", testEnv)
		if err == nil {
			t.Errorf("%q: no error, want %s", tc.in, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%q:\n got error %s\nwant error %s", tc.in, err, tc.want)
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.File != "torrc" || ce.Line == 0 {
			t.Errorf("%q: error %#v lacks file and line", tc.in, err)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	_, err := Parse([]byte("Bogus 1"), "torrc", testEnv)
	if !errors.Is(err, ErrUnknownOption) {
		t.Errorf("unknown option error %v does not wrap ErrUnknownOption", err)
	}
	_, err = Parse([]byte("ORPort 1"), "torrc", testEnv)
	if !errors.Is(err, ErrRelayOption) {
		t.Errorf("relay option error %v does not wrap ErrRelayOption", err)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Option != "ORPort" || ce.Line != 1 {
		t.Errorf("relay option error = %#v", ce)
	}
}

// TestOptionFields: every row of the option table names a field its
// values can be stored in (store panics on a missing one).
func TestOptionFields(t *testing.T) {
	for i := range options {
		opt := &options[i]
		if opt.name == "HiddenServiceDir" {
			continue // starts a service, stores nothing
		}
		dst := reflect.ValueOf(&Config{}).Elem()
		if opt.group == hsGroup {
			dst = reflect.ValueOf(&HiddenService{}).Elem()
		}
		name := opt.field
		if name == "" {
			name = opt.name
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("option %s: %v", opt.name, r)
				}
			}()
			fieldByName(dst, name)
		}()
	}
}
