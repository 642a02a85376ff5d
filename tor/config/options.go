package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"tinytor/tor/policy"
)

// option is one row of the table of known options. To support a new
// option, add a Config field and a row.
type option struct {
	name  string // canonical name
	list  bool   // lines accumulate (else the last one wins)
	group string // options that merge as one ordered list (HiddenService*)
	// def is the default, applied through apply when no line sets the
	// option; defFn, if set, computes it from the options before it.
	def   string
	defFn func(b *builder) (string, error)
	apply func(b *builder, v string) error
}

// slot is the key under which an option's lines are merged.
func (o *option) slot() string {
	if o.group != "" {
		return o.group
	}
	return strings.ToLower(o.name)
}

func boolOpt(name, def string, field func(*Config) *bool) option {
	return option{name: name, def: def, apply: func(b *builder, v string) error {
		x, err := parseBool(v)
		*field(b.c) = x
		return err
	}}
}

func intervalOpt(name, def string, field func(*Config) *time.Duration) option {
	return option{name: name, def: def, apply: func(b *builder, v string) error {
		d, err := parseInterval(v)
		*field(b.c) = d
		return err
	}}
}

func stringOpt(name string, field func(*Config) *string) option {
	return option{name: name, apply: func(b *builder, v string) error {
		*field(b.c) = v
		return nil
	}}
}

func nodesOpt(name string, field func(*Config) *NodeList) option {
	return option{name: name, apply: func(b *builder, v string) error {
		n, err := parseNodeList(v)
		*field(b.c) = n
		return err
	}}
}

// policyOpt is a repeatable address policy (SocksPolicy,
// MetricsPortPolicy). As C tor, ports are kept but do not count: a warning
// says they are ignored.
func policyOpt(name string, field func(*Config) *policy.Policy) option {
	return option{name: name, list: true, apply: func(b *builder, v string) error {
		p, err := policy.Parse(v)
		if err != nil {
			return err
		}
		if p.HasPorts() {
			b.warnf("Ignoring ports in %s option.", name)
		}
		*field(b.c) = append(*field(b.c), p...)
		return nil
	}}
}

// clientPortOpt is a repeatable client listener (SocksPort, DNSPort,
// TransPort, HTTPTunnelPort) with default def ("" for none). "Name 0"
// opens none, and may not be mixed with other lines (see finish).
func clientPortOpt(name, def string, parse func(*builder, string) (ClientPort, bool, error), field func(*Config) *[]ClientPort) option {
	return option{name: name, list: true, def: def, apply: func(b *builder, v string) error {
		p, off, err := parse(b, v)
		if err != nil {
			return err
		}
		if off {
			b.zeroPorts[name] = true
		} else {
			*field(b.c) = append(*field(b.c), p)
		}
		return nil
	}}
}

// testingDefault is a boolean default that C tor flips when
// TestingTorNetwork is set.
func testingDefault(normal, testing string) func(b *builder) (string, error) {
	return func(b *builder) (string, error) {
		if b.c.TestingTorNetwork {
			return testing, nil
		}
		return normal, nil
	}
}

// options is the table of known options, in the order they are applied
// (an option's computed default may read the options above it).
var options = []option{
	{name: "DataDirectory", defFn: defaultDataDirectory, apply: func(b *builder, v string) error {
		b.c.DataDirectory = v
		return nil
	}},
	{name: "CacheDirectory", defFn: func(b *builder) (string, error) { return b.c.DataDirectory, nil },
		apply: func(b *builder, v string) error { b.c.CacheDirectory = v; return nil }},
	{name: "TestingTorNetwork", def: "0", apply: func(b *builder, v string) error {
		x, err := parseBool(v)
		b.c.TestingTorNetwork = x
		return err
	}},
	{name: "DirAuthority", list: true, apply: func(b *builder, v string) error {
		a, warns, err := ParseDirAuthority(v)
		b.warn(warns)
		b.c.DirAuthorities = append(b.c.DirAuthorities, a)
		return err
	}},
	{name: "FallbackDir", list: true, apply: func(b *builder, v string) error {
		f, warns, err := ParseFallbackDir(v)
		b.warn(warns)
		b.c.FallbackDirs = append(b.c.FallbackDirs, f)
		return err
	}},
	boolOpt("UseDefaultFallbackDirs", "1", func(c *Config) *bool { return &c.UseDefaultFallbackDirs }),

	clientPortOpt("SocksPort", "9050", parseSocksPort, func(c *Config) *[]ClientPort { return &c.SocksPorts }),
	policyOpt("SocksPolicy", func(c *Config) *policy.Policy { return &c.SocksPolicy }),
	clientPortOpt("DNSPort", "", parseDNSPort, func(c *Config) *[]ClientPort { return &c.DNSPorts }),
	clientPortOpt("TransPort", "", parseTransPort, func(c *Config) *[]ClientPort { return &c.TransPorts }),
	{name: "TransProxyType", def: "default", apply: func(b *builder, v string) error {
		switch strings.ToLower(v) {
		case "default":
			b.c.TransProxyType = "default"
			return nil
		case "tproxy", "ipfw", "pf-divert":
			return fmt.Errorf("TransProxyType %s is not implemented in tinytor: use \"default\" (Linux netfilter: an nftables redirect or iptables REDIRECT rule)", v)
		}
		return fmt.Errorf("unrecognized value %q: must be default, TPROXY, ipfw or pf-divert", v)
	}},
	clientPortOpt("HTTPTunnelPort", "", parseHTTPTunnelPort, func(c *Config) *[]ClientPort { return &c.HTTPTunnelPorts }),
	boolOpt("AutomapHostsOnResolve", "0", func(c *Config) *bool { return &c.AutomapHostsOnResolve }),
	{name: "AutomapHostsSuffixes", def: ".onion,.exit", apply: func(b *builder, v string) error {
		b.c.AutomapHostsSuffixes = nil
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				b.c.AutomapHostsSuffixes = append(b.c.AutomapHostsSuffixes, f)
			}
		}
		return nil
	}},
	{name: "MapAddress", list: true, apply: func(b *builder, v string) error {
		f := fields(v)
		switch {
		case len(f) < 2:
			b.warnf("MapAddress '%s' has too few arguments. Ignoring.", v)
			return nil
		case strings.HasPrefix(f[0], ".") || strings.HasPrefix(f[1], "."):
			b.warnf("MapAddress '%s' is ambiguous - address starts with a'.'. Ignoring.", v)
			return nil
		case len(f) > 2:
			b.warnf("Ignoring extra arguments to MapAddress.")
		}
		b.c.MapAddresses = append(b.c.MapAddresses, AddressMapping{From: f[0], To: f[1]})
		return nil
	}},
	{name: "VirtualAddrNetworkIPv4", def: "127.192.0.0/10", apply: func(b *builder, v string) (err error) {
		b.c.VirtualAddrNetworkIPv4, err = parseVirtualNetwork(v, false)
		return err
	}},
	{name: "VirtualAddrNetworkIPv6", def: "[FE80::]/10", apply: func(b *builder, v string) (err error) {
		b.c.VirtualAddrNetworkIPv6, err = parseVirtualNetwork(v, true)
		return err
	}},
	boolOpt("SafeSocks", "0", func(c *Config) *bool { return &c.SafeSocks }),
	boolOpt("WarnUnsafeSocks", "1", func(c *Config) *bool { return &c.WarnUnsafeSocks }),
	boolOpt("TestSocks", "0", func(c *Config) *bool { return &c.TestSocks }),

	{name: "Log", list: true, def: "notice stdout", apply: func(b *builder, v string) error {
		t, err := parseLog(v)
		b.c.Logs = append(b.c.Logs, t)
		return err
	}},
	{name: "SafeLogging", def: "1", apply: func(b *builder, v string) error {
		switch strings.ToLower(v) {
		case "0":
			b.c.SafeLogging = SafeLoggingOff
		case "1":
			b.c.SafeLogging = SafeLoggingOn
		case "relay":
			b.c.SafeLogging = SafeLoggingRelay
		default:
			return fmt.Errorf("invalid value %q: must be 0, 1 or relay", v)
		}
		return nil
	}},

	{name: "EnforceDistinctSubnets", defFn: testingDefault("1", "0"), apply: func(b *builder, v string) error {
		x, err := parseBool(v)
		b.c.EnforceDistinctSubnets = x
		return err
	}},
	nodesOpt("EntryNodes", func(c *Config) *NodeList { return &c.EntryNodes }),
	nodesOpt("ExitNodes", func(c *Config) *NodeList { return &c.ExitNodes }),
	nodesOpt("ExcludeNodes", func(c *Config) *NodeList { return &c.ExcludeNodes }),
	nodesOpt("ExcludeExitNodes", func(c *Config) *NodeList { return &c.ExcludeExitNodes }),
	boolOpt("StrictNodes", "0", func(c *Config) *bool { return &c.StrictNodes }),
	{name: "NumEntryGuards", def: "0", apply: func(b *builder, v string) error {
		n, err := parseUint(v, 0, 65535)
		b.c.NumEntryGuards = int(n)
		return err
	}},
	boolOpt("UseEntryGuards", "1", func(c *Config) *bool { return &c.UseEntryGuards }),
	intervalOpt("CircuitBuildTimeout", "0", func(c *Config) *time.Duration { return &c.CircuitBuildTimeout }),
	boolOpt("LearnCircuitBuildTimeout", "1", func(c *Config) *bool { return &c.LearnCircuitBuildTimeout }),
	intervalOpt("MaxCircuitDirtiness", "10 minutes", func(c *Config) *time.Duration { return &c.MaxCircuitDirtiness }),
	intervalOpt("NewCircuitPeriod", "30 seconds", func(c *Config) *time.Duration { return &c.NewCircuitPeriod }),
	intervalOpt("CircuitStreamTimeout", "0", func(c *Config) *time.Duration { return &c.CircuitStreamTimeout }),
	boolOpt("ClientUseIPv4", "1", func(c *Config) *bool { return &c.ClientUseIPv4 }),
	boolOpt("ClientUseIPv6", "0", func(c *Config) *bool { return &c.ClientUseIPv6 }),
	{name: "ClientRejectInternalAddresses", defFn: testingDefault("1", "0"), apply: func(b *builder, v string) error {
		x, err := parseBool(v)
		b.c.ClientRejectInternalAddresses = x
		return err
	}},
	{name: "ExtendAllowPrivateAddresses", defFn: testingDefault("0", "1"), apply: func(b *builder, v string) error {
		x, err := parseBool(v)
		b.c.ExtendAllowPrivateAddresses = x
		return err
	}},
	{name: "MaxMemInQueues", def: "0", apply: func(b *builder, v string) error {
		n, err := parseMemory(v)
		b.c.MaxMemInQueues = n
		return err
	}},

	stringOpt("ClientOnionAuthDir", func(c *Config) *string { return &c.ClientOnionAuthDir }),
	{name: "HiddenServiceDir", list: true, group: "hiddenserviceoptions", apply: (*builder).hsDir},
	{name: "HiddenServicePort", list: true, group: "hiddenserviceoptions", apply: (*builder).hsPort},
	{name: "HiddenServiceVersion", list: true, group: "hiddenserviceoptions", apply: (*builder).hsVersion},
	{name: "HiddenServiceNumIntroductionPoints", list: true, group: "hiddenserviceoptions", apply: (*builder).hsNumIntro},
	{name: "HiddenServiceMaxStreams", list: true, group: "hiddenserviceoptions", apply: (*builder).hsMaxStreams},
	{name: "HiddenServiceMaxStreamsCloseCircuit", list: true, group: "hiddenserviceoptions",
		apply: hsBool("HiddenServiceMaxStreamsCloseCircuit", func(hs *HiddenService) *bool { return &hs.MaxStreamsCloseCircuit })},
	{name: "HiddenServiceDirGroupReadable", list: true, group: "hiddenserviceoptions",
		apply: hsBool("HiddenServiceDirGroupReadable", func(hs *HiddenService) *bool { return &hs.DirGroupReadable })},

	{name: "ControlPort", list: true, apply: func(b *builder, v string) error {
		p, off, err := parseControlPort(b, v)
		if err == nil && !off {
			b.c.ControlPorts = append(b.c.ControlPorts, p)
		}
		return err
	}},
	{name: "ControlSocket", list: true, apply: func(b *builder, v string) error {
		if v != "0" {
			b.c.ControlSockets = append(b.c.ControlSockets, v)
		}
		return nil
	}},
	boolOpt("CookieAuthentication", "0", func(c *Config) *bool { return &c.CookieAuthentication }),
	{name: "CookieAuthFile", defFn: func(b *builder) (string, error) {
		return filepath.Join(b.c.DataDirectory, "control_auth_cookie"), nil
	}, apply: func(b *builder, v string) error { b.c.CookieAuthFile = v; return nil }},
	boolOpt("CookieAuthFileGroupReadable", "0", func(c *Config) *bool { return &c.CookieAuthFileGroupReadable }),
	{name: "HashedControlPassword", list: true, apply: func(b *builder, v string) error {
		h, ok := strings.CutPrefix(v, "16:")
		if raw, err := hex.DecodeString(h); !ok || err != nil || len(raw) != 29 {
			return fmt.Errorf("bad HashedControlPassword %q: want \"16:\" and 58 hex digits, as printed by tor --hash-password", v)
		}
		b.c.HashedControlPasswords = append(b.c.HashedControlPasswords, v)
		return nil
	}},
	{name: "MetricsPort", list: true, apply: func(b *builder, v string) error {
		p, off, err := parseMetricsPort(v)
		if err == nil && !off {
			b.c.MetricsPorts = append(b.c.MetricsPorts, p)
		}
		return err
	}},
	policyOpt("MetricsPortPolicy", func(c *Config) *policy.Policy { return &c.MetricsPortPolicy }),

	stringOpt("User", func(c *Config) *string { return &c.User }),
	stringOpt("PidFile", func(c *Config) *string { return &c.PidFile }),
	{name: "RunAsDaemon", def: "0", apply: func(b *builder, v string) error {
		x, err := parseBool(v)
		if err == nil && x {
			return errors.New("RunAsDaemon 1 is not supported: tinytor runs in the foreground; let the init system (procd, systemd, runit, ...) run it in the background")
		}
		return err
	}},

	// Board options (board/watchdog, board/state): see README.md.
	{name: "HardwareWatchdog", def: "0", apply: func(b *builder, v string) error {
		switch {
		case v == "0":
			b.c.HardwareWatchdog = ""
		case v == "1":
			b.c.HardwareWatchdog = "/dev/watchdog"
		case filepath.IsAbs(v):
			b.c.HardwareWatchdog = filepath.Clean(v)
		default:
			return fmt.Errorf("invalid value %q: must be 0, 1 or the absolute path of a watchdog device such as /dev/watchdog", v)
		}
		return nil
	}},
	{name: "HardwareWatchdogTimeout", def: "30 seconds", apply: func(b *builder, v string) error {
		d, err := parseInterval(v)
		if err != nil {
			return err
		}
		if d < MinHardwareWatchdogTimeout || d > MaxHardwareWatchdogTimeout {
			return fmt.Errorf("interval %q is out of bounds: must be between %d seconds and %d minutes",
				v, int(MinHardwareWatchdogTimeout.Seconds()), int(MaxHardwareWatchdogTimeout.Minutes()))
		}
		b.c.HardwareWatchdogTimeout = d
		return nil
	}},
	boolOpt("AvoidDiskWrites", "0", func(c *Config) *bool { return &c.AvoidDiskWrites }),

	boolOpt("UseBridges", "0", func(c *Config) *bool { return &c.UseBridges }),
	{name: "Bridge", list: true, apply: func(b *builder, v string) error {
		br, err := ParseBridge(v)
		br.Where = b.l
		b.c.Bridges = append(b.c.Bridges, br)
		return err
	}},
	{name: "ClientTransportPlugin", list: true, apply: func(b *builder, v string) error {
		p, err := ParseTransportPlugin(v)
		p.Where = b.l
		b.c.TransportPlugins = append(b.c.TransportPlugins, p)
		return err
	}},
	proxyOpt("Socks4Proxy", 1080, func(c *Config) *netip.AddrPort { return &c.Socks4Proxy }),
	proxyOpt("Socks5Proxy", 1080, func(c *Config) *netip.AddrPort { return &c.Socks5Proxy }),
	stringOpt("Socks5ProxyUsername", func(c *Config) *string { return &c.Socks5ProxyUsername }),
	stringOpt("Socks5ProxyPassword", func(c *Config) *string { return &c.Socks5ProxyPassword }),
	proxyOpt("HTTPSProxy", 443, func(c *Config) *netip.AddrPort { return &c.HTTPSProxy }),
	stringOpt("HTTPSProxyAuthenticator", func(c *Config) *string { return &c.HTTPSProxyAuthenticator }),
}

// relayOptions are C tor options that only make sense on a relay, bridge
// or directory authority. Naming one is an error, not "unknown option", so
// that users understand why.
var relayOptions = []string{
	"AccountingMax", "AccountingRule", "AccountingStart", "Address", "AddressDisableIPv6",
	"AssumeReachable", "AssumeReachableIPv6", "AuthDirBadExit", "AuthDirInvalid", "AuthDirReject",
	"AuthoritativeDirectory", "BandwidthBurst", "BandwidthRate", "BridgeAuthoritativeDir",
	"BridgeDistribution", "BridgeRecordUsageByCountry", "BridgeRelay", "ContactInfo",
	"DirCache", "DirPolicy", "DirPort", "DirPortFrontPage", "DirReqStatistics",
	"DoSCircuitCreationEnabled", "DoSConnectionEnabled", "DoSRefuseSingleHopClientRendezvous",
	"ExitPolicy", "ExitPolicyRejectLocalInterfaces", "ExitPolicyRejectPrivate", "ExitPortStatistics",
	"ExitRelay", "ExtORPort", "ExtORPortCookieAuthFile", "ExtORPortCookieAuthFileGroupReadable",
	"ExtraInfoStatistics", "IPv6Exit", "KeyDirectory", "MainloopStats", "MaxAdvertisedBandwidth",
	"MaxOnionQueueDelay", "MyFamily", "Nickname", "NumCPUs", "OfflineMasterKey", "ORPort",
	"PublishServerDescriptor", "ReducedExitPolicy", "RelayBandwidthBurst", "RelayBandwidthRate",
	"ServerDNSAllowBrokenConfig", "ServerDNSDetectHijacking", "ServerDNSResolvConfFile",
	"ServerTransportListenAddr", "ServerTransportOptions", "ServerTransportPlugin",
	"ShutdownWaitLength", "SigningKeyLifetime", "V3AuthoritativeDirectory",
}

// lookup finds the table row for a key (case-insensitive, as in C tor).
func lookup(key string) (*option, error) {
	for i := range options {
		if strings.EqualFold(options[i].name, key) {
			return &options[i], nil
		}
	}
	for _, r := range relayOptions {
		if strings.EqualFold(r, key) {
			return nil, ErrRelayOption
		}
	}
	return nil, ErrUnknownOption
}

// canonicalName returns the table spelling of key, or key itself.
func canonicalName(key string) string {
	for _, r := range relayOptions {
		if strings.EqualFold(r, key) {
			return r
		}
	}
	if o, err := lookup(key); err == nil {
		return o.name
	}
	return key
}
