package config

import (
	"encoding/hex"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"tinytor/tor/policy"
)

// option is one row of the table of known options. To support a new
// option, add a Config field and a row; most rows need no code beyond a
// parse function of the value's kind (boolValue, intervalValue, ...).
type option struct {
	name  string // canonical name
	list  bool   // lines accumulate (else the last one wins)
	group string // options that merge as one ordered list (HiddenService*)
	// field is the Config field the parsed values go to (for the
	// HiddenService* options: the HiddenService field); "" means the
	// field named as the option.
	field string
	// def is the default, applied through parse when no line sets the
	// option; defFn, if set, computes it from the options before it.
	def   string
	defFn func(b *builder) (string, error)
	// parse checks one value and returns what to store in the field: a
	// list option's value is appended to its slice field (element by
	// element if it is of the field's own type), any other is set. nil
	// stores nothing.
	parse func(b *builder, v string) (any, error)
}

// slot is the key under which an option's lines are merged.
func (o *option) slot() string {
	if o.group != "" {
		return o.group
	}
	return strings.ToLower(o.name)
}

// hsGroup is the group of the HiddenService* options: C tor reads them as
// one list in which each HiddenServiceDir starts a service.
const hsGroup = "hiddenserviceoptions"

// options is the table of known options, in the order they are applied
// (an option's computed default may read the options above it).
var options = []option{
	{name: "DataDirectory", defFn: defaultDataDirectory, parse: stringValue},
	{name: "CacheDirectory", defFn: dataDirectory, parse: stringValue},
	{name: "TestingTorNetwork", def: "0", parse: boolValue},
	{name: "DirAuthority", list: true, field: "DirAuthorities", parse: dirAuthorityValue},
	{name: "FallbackDir", list: true, field: "FallbackDirs", parse: fallbackDirValue},
	{name: "UseDefaultFallbackDirs", def: "1", parse: boolValue},

	{name: "SocksPort", list: true, field: "SocksPorts", def: "9050", parse: clientPortValue},
	{name: "SocksPolicy", list: true, parse: policyValue},
	{name: "DNSPort", list: true, field: "DNSPorts", parse: clientPortValue},
	{name: "TransPort", list: true, field: "TransPorts", parse: clientPortValue},
	{name: "TransProxyType", def: "default", parse: transProxyTypeValue},
	{name: "HTTPTunnelPort", list: true, field: "HTTPTunnelPorts", parse: clientPortValue},
	{name: "AutomapHostsOnResolve", def: "0", parse: boolValue},
	{name: "AutomapHostsSuffixes", def: ".onion,.exit", parse: suffixesValue},
	{name: "MapAddress", list: true, field: "MapAddresses", parse: mapAddressValue},
	{name: "VirtualAddrNetworkIPv4", def: "127.192.0.0/10", parse: virtualNetworkValue},
	{name: "VirtualAddrNetworkIPv6", def: "[FE80::]/10", parse: virtualNetworkValue},
	{name: "SafeSocks", def: "0", parse: boolValue},
	{name: "WarnUnsafeSocks", def: "1", parse: boolValue},
	{name: "TestSocks", def: "0", parse: boolValue},

	{name: "Log", list: true, field: "Logs", def: "notice stdout", parse: logValue},
	{name: "SafeLogging", def: "1", parse: safeLoggingValue},

	{name: "EnforceDistinctSubnets", defFn: unlessTesting, parse: boolValue},
	{name: "EntryNodes", parse: nodesValue},
	{name: "ExitNodes", parse: nodesValue},
	{name: "ExcludeNodes", parse: nodesValue},
	{name: "ExcludeExitNodes", parse: nodesValue},
	{name: "StrictNodes", def: "0", parse: boolValue},
	{name: "NumEntryGuards", def: "0", parse: countValue},
	{name: "UseEntryGuards", def: "1", parse: boolValue},
	{name: "CircuitBuildTimeout", def: "0", parse: intervalValue},
	{name: "LearnCircuitBuildTimeout", def: "1", parse: boolValue},
	{name: "MaxCircuitDirtiness", def: "10 minutes", parse: intervalValue},
	{name: "NewCircuitPeriod", def: "30 seconds", parse: intervalValue},
	{name: "CircuitStreamTimeout", def: "0", parse: intervalValue},
	{name: "ClientUseIPv4", def: "1", parse: boolValue},
	{name: "ClientUseIPv6", def: "0", parse: boolValue},
	{name: "ClientRejectInternalAddresses", defFn: unlessTesting, parse: boolValue},
	{name: "ExtendAllowPrivateAddresses", defFn: ifTesting, parse: boolValue},
	{name: "MaxMemInQueues", def: "0", parse: memoryValue},

	{name: "ClientOnionAuthDir", parse: stringValue},
	{name: "HiddenServiceDir", list: true, group: hsGroup, parse: hsDirValue},
	{name: "HiddenServicePort", list: true, group: hsGroup, field: "Ports", parse: hsPortValue},
	{name: "HiddenServiceVersion", list: true, group: hsGroup, field: "Version", parse: hsVersionValue},
	{name: "HiddenServiceNumIntroductionPoints", list: true, group: hsGroup, field: "NumIntroductionPoints", parse: introPointsValue},
	{name: "HiddenServiceMaxStreams", list: true, group: hsGroup, field: "MaxStreams", parse: countValue},
	{name: "HiddenServiceMaxStreamsCloseCircuit", list: true, group: hsGroup, field: "MaxStreamsCloseCircuit", parse: boolValue},
	{name: "HiddenServiceDirGroupReadable", list: true, group: hsGroup, field: "DirGroupReadable", parse: boolValue},
	{name: "HiddenServicePoWDefensesEnabled", list: true, group: hsGroup, field: "PoWDefensesEnabled", parse: boolValue},
	{name: "HiddenServicePoWQueueRate", list: true, group: hsGroup, field: "PoWQueueRate", parse: posIntValue},
	{name: "HiddenServicePoWQueueBurst", list: true, group: hsGroup, field: "PoWQueueBurst", parse: posIntValue},

	{name: "ControlPort", list: true, field: "ControlPorts", parse: controlPortValue},
	{name: "ControlSocket", list: true, field: "ControlSockets", parse: controlSocketValue},
	{name: "CookieAuthentication", def: "0", parse: boolValue},
	{name: "CookieAuthFile", defFn: defaultCookieAuthFile, parse: stringValue},
	{name: "CookieAuthFileGroupReadable", def: "0", parse: boolValue},
	{name: "HashedControlPassword", list: true, field: "HashedControlPasswords", parse: hashedPasswordValue},
	{name: "MetricsPort", list: true, field: "MetricsPorts", parse: metricsPortValue},
	{name: "MetricsPortPolicy", list: true, parse: policyValue},

	{name: "User", parse: stringValue},
	{name: "PidFile", parse: stringValue},
	{name: "RunAsDaemon", def: "0", parse: runAsDaemonValue},

	// Board options (board/watchdog, board/state): see README.md.
	{name: "HardwareWatchdog", def: "0", parse: watchdogValue},
	{name: "HardwareWatchdogTimeout", def: "30 seconds", parse: watchdogTimeoutValue},
	{name: "AvoidDiskWrites", def: "0", parse: boolValue},

	{name: "UseBridges", def: "0", parse: boolValue},
	{name: "Bridge", list: true, field: "Bridges", parse: bridgeValue},
	{name: "ClientTransportPlugin", list: true, field: "TransportPlugins", parse: transportPluginValue},
	{name: "Socks4Proxy", parse: proxyValue},
	{name: "Socks5Proxy", parse: proxyValue},
	{name: "Socks5ProxyUsername", parse: stringValue},
	{name: "Socks5ProxyPassword", parse: stringValue},
	{name: "HTTPSProxy", parse: proxyValue},
	{name: "HTTPSProxyAuthenticator", parse: stringValue},
}

// The parse functions of the table, one per kind of value. The option
// being read is b.opt, its line b.l.

func stringValue(_ *builder, v string) (any, error) { return v, nil }

func boolValue(_ *builder, v string) (any, error) {
	x, err := parseBool(v)
	return x, err
}

func intervalValue(_ *builder, v string) (any, error) {
	d, err := parseInterval(v)
	return d, err
}

func memoryValue(_ *builder, v string) (any, error) {
	n, err := parseMemory(v)
	return n, err
}

// countValue is a number of things (guards, streams), 0..65535.
func countValue(_ *builder, v string) (any, error) {
	n, err := parseUint(v, 0, 65535)
	return int(n), err
}

func nodesValue(_ *builder, v string) (any, error) {
	n, err := parseNodeList(v)
	return n, err
}

// policyValue is a line of an address policy (SocksPolicy,
// MetricsPortPolicy). As C tor, ports are kept but do not count: a
// warning says they are ignored.
func policyValue(b *builder, v string) (any, error) {
	p, err := policy.Parse(v)
	if err != nil {
		return nil, err
	}
	if p.HasPorts() {
		b.warn("Ignoring ports in " + b.opt.name + " option.")
	}
	return p, nil
}

// clientPortValue is a client listener (SocksPort, DNSPort, TransPort,
// HTTPTunnelPort). "Name 0" opens none, and may not be mixed with other
// lines (see finish).
func clientPortValue(b *builder, v string) (any, error) {
	p, off, err := parseClientPort(b, strings.TrimSuffix(b.opt.name, "Port"), v)
	if err != nil {
		return nil, err
	}
	if off {
		b.zeroPorts[b.opt.name] = true
		return nil, nil
	}
	return p, nil
}

func controlPortValue(b *builder, v string) (any, error) {
	p, off, err := parseControlPort(b, v)
	if err != nil || off {
		return nil, err
	}
	return p, nil
}

func metricsPortValue(_ *builder, v string) (any, error) {
	p, off, err := parseMetricsPort(v)
	if err != nil || off {
		return nil, err
	}
	return p, nil
}

func controlSocketValue(_ *builder, v string) (any, error) {
	if v == "0" {
		return nil, nil
	}
	return v, nil
}

func dirAuthorityValue(b *builder, v string) (any, error) {
	a, warns, err := ParseDirAuthority(v)
	b.warn(warns...)
	return a, err
}

func fallbackDirValue(b *builder, v string) (any, error) {
	f, warns, err := ParseFallbackDir(v)
	b.warn(warns...)
	return f, err
}

func bridgeValue(b *builder, v string) (any, error) {
	br, err := ParseBridge(v)
	br.Where = b.l
	return br, err
}

func transportPluginValue(b *builder, v string) (any, error) {
	p, err := ParseTransportPlugin(v)
	p.Where = b.l
	return p, err
}

func logValue(_ *builder, v string) (any, error) {
	t, err := parseLog(v)
	return t, err
}

func virtualNetworkValue(b *builder, v string) (any, error) {
	p, err := parseVirtualNetwork(v, strings.HasSuffix(b.opt.name, "6"))
	return p, err
}

func transProxyTypeValue(_ *builder, v string) (any, error) {
	switch strings.ToLower(v) {
	case "default":
		return "default", nil
	case "tproxy", "ipfw", "pf-divert":
		return nil, errors.New("TransProxyType " + v + ` is not implemented in tinytor: use "default" (Linux netfilter: an nftables redirect or iptables REDIRECT rule)`)
	}
	return nil, badValue("unrecognized value %q: must be default, TPROXY, ipfw or pf-divert", v)
}

func suffixesValue(_ *builder, v string) (any, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out, nil
}

// mapAddressValue is a MapAddress line; C tor ignores bad ones with a
// warning.
func mapAddressValue(b *builder, v string) (any, error) {
	f := fields(v)
	switch {
	case len(f) < 2:
		b.warn("MapAddress '" + v + "' has too few arguments. Ignoring.")
		return nil, nil
	case strings.HasPrefix(f[0], ".") || strings.HasPrefix(f[1], "."):
		b.warn("MapAddress '" + v + "' is ambiguous - address starts with a'.'. Ignoring.")
		return nil, nil
	case len(f) > 2:
		b.warn("Ignoring extra arguments to MapAddress.")
	}
	return AddressMapping{From: f[0], To: f[1]}, nil
}

func safeLoggingValue(_ *builder, v string) (any, error) {
	switch strings.ToLower(v) {
	case "0":
		return SafeLoggingOff, nil
	case "1":
		return SafeLoggingOn, nil
	case "relay":
		return SafeLoggingRelay, nil
	}
	return nil, badValue("invalid value %q: must be 0, 1 or relay", v)
}

func hashedPasswordValue(_ *builder, v string) (any, error) {
	h, ok := strings.CutPrefix(v, "16:")
	if raw, err := hex.DecodeString(h); !ok || err != nil || len(raw) != 29 {
		return nil, badValue(`bad HashedControlPassword %q: want "16:" and 58 hex digits, as printed by tor --hash-password`, v)
	}
	return v, nil
}

func runAsDaemonValue(_ *builder, v string) (any, error) {
	x, err := parseBool(v)
	if err == nil && x {
		return nil, errors.New("RunAsDaemon 1 is not supported: tinytor runs in the foreground; let the init system (procd, systemd, runit, ...) run it in the background")
	}
	return x, err
}

func watchdogValue(_ *builder, v string) (any, error) {
	switch {
	case v == "0":
		return "", nil
	case v == "1":
		return "/dev/watchdog", nil
	case filepath.IsAbs(v):
		return filepath.Clean(v), nil
	}
	return nil, badValue("invalid value %q: must be 0, 1 or the absolute path of a watchdog device such as /dev/watchdog", v)
}

func watchdogTimeoutValue(_ *builder, v string) (any, error) {
	d, err := parseInterval(v)
	if err != nil {
		return nil, err
	}
	if d < MinHardwareWatchdogTimeout || d > MaxHardwareWatchdogTimeout {
		return nil, badValue("interval %q is out of bounds: must be between "+
			strconv.Itoa(int(MinHardwareWatchdogTimeout.Seconds()))+" seconds and "+
			strconv.Itoa(int(MaxHardwareWatchdogTimeout.Minutes()))+" minutes", v)
	}
	return d, nil
}

// dataDirectory is the default of CacheDirectory.
func dataDirectory(b *builder) (string, error) { return b.c.DataDirectory, nil }

// defaultCookieAuthFile is DataDirectory/control_auth_cookie.
func defaultCookieAuthFile(b *builder) (string, error) {
	return filepath.Join(b.c.DataDirectory, "control_auth_cookie"), nil
}

// unlessTesting and ifTesting are boolean defaults that C tor flips when
// TestingTorNetwork is set.
func unlessTesting(b *builder) (string, error) {
	if b.c.TestingTorNetwork {
		return "0", nil
	}
	return "1", nil
}

func ifTesting(b *builder) (string, error) {
	if b.c.TestingTorNetwork {
		return "1", nil
	}
	return "0", nil
}

// store puts x, the parsed value of option opt, into its field of dst
// (the Config, or the HiddenService of a HiddenService* line).
func store(dst reflect.Value, opt *option, x any) {
	name := opt.field
	if name == "" {
		name = opt.name
	}
	f := fieldByName(dst, name)
	v := reflect.ValueOf(x)
	switch {
	case !opt.list || f.Kind() != reflect.Slice:
		f.Set(v)
	case v.Type() == f.Type():
		for i := range v.Len() {
			f.Set(reflect.Append(f, v.Index(i)))
		}
	default:
		f.Set(reflect.Append(f, v))
	}
}

// fieldByName returns the field of the struct v named name. (reflect's
// own FieldByName also searches embedded structs, which is not needed
// here.) A name that is not a field is a bug of the table: TestOptionFields
// checks every row.
func fieldByName(v reflect.Value, name string) reflect.Value {
	t := v.Type()
	for i := range t.NumField() {
		if t.Field(i).Name == name {
			return v.Field(i)
		}
	}
	panic("config: no field " + name + " in " + t.Name())
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
