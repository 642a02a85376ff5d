// Package config reads tinytor's configuration: C tor's torrc syntax (see
// Lex), %include, the defaults-torrc / torrc / command-line layering, and
// a table of known options (see options.go) that turns the lines into a
// typed Config.
package config

import (
	"net/netip"
	"time"

	"tinytor/tor/policy"
)

// Config is a loaded, validated configuration. Each field documents its
// torrc option.
type Config struct {
	// DataDirectory (path): where tinytor keeps its state (keys, guards).
	// Default: /var/lib/tinytor when running as root, else $HOME/.tinytor.
	DataDirectory string
	// CacheDirectory (path): where directory documents are cached.
	// Default: DataDirectory.
	CacheDirectory string

	// SocksPort ([addr:]port|auto|unix:path|0 [flags]), repeatable: the
	// SOCKS listeners. A bare port binds 127.0.0.1. Default 127.0.0.1:9050;
	// "SocksPort 0" leaves this empty.
	SocksPorts []SocksPort
	// SocksPolicy (accept|reject addr[/mask][:port], ...), repeatable: which
	// SOCKS clients may connect; a client no rule matches is accepted, as
	// in C tor, and ports are ignored. Empty (no SocksPolicy line): tinytor
	// accepts loopback clients only.
	SocksPolicy policy.Policy
	// DNSPort ([addr:]port|auto|0 [flags]), repeatable: DNS servers (UDP
	// and TCP) answering A, AAAA and PTR queries through Tor. A bare port
	// binds 127.0.0.1. SocksPolicy decides who may use them. Default:
	// none.
	DNSPorts []DNSPort
	// TransPort ([addr:]port|auto|0 [flags]), repeatable: transparent
	// proxy ports for connections the packet filter redirects (nftables
	// redirect, iptables REDIRECT). A bare port binds 127.0.0.1; the
	// isolation flags and SessionGroup apply. SocksPolicy decides who may
	// use them. Default: none.
	TransPorts []TransPort
	// TransProxyType (default): how TransPort learns a connection's
	// original destination. Only "default" (netfilter's SO_ORIGINAL_DST
	// on Linux) is implemented; TPROXY, ipfw and pf-divert are refused.
	TransProxyType string
	// HTTPTunnelPort ([addr:]port|auto|0 [flags]), repeatable: HTTP
	// CONNECT tunnel ports, with SocksPort's flags. A bare port binds
	// 127.0.0.1. SocksPolicy decides who may use them. Default: none.
	HTTPTunnelPorts []HTTPTunnelPort
	// AutomapHostsOnResolve (0|1): answer lookups of names with an
	// AutomapHostsSuffixes suffix with a virtual address from
	// VirtualAddrNetworkIPv4/IPv6 that connections map back to the name.
	// Default 0.
	AutomapHostsOnResolve bool
	// AutomapHostsSuffixes (suffix,suffix,...): the names automapped; "."
	// means all. Default .onion,.exit.
	AutomapHostsSuffixes []string
	// VirtualAddrNetworkIPv4 (addr/bits, at most /16) and
	// VirtualAddrNetworkIPv6 (addr/bits, at most /104): where virtual
	// addresses come from. Defaults 127.192.0.0/10 and [FE80::]/10.
	VirtualAddrNetworkIPv4, VirtualAddrNetworkIPv6 netip.Prefix
	// MapAddress (old new), repeatable: rewrite connections and lookups of
	// old to new ("*.a.b" patterns too), as MAPADDRESS does. Lines with
	// too few arguments or starting with '.' are ignored with a warning,
	// as in C tor.
	MapAddresses []AddressMapping
	// SafeSocks (0|1): refuse SOCKS requests that carry a bare IP address
	// (possible DNS leak). Default 0.
	SafeSocks bool
	// WarnUnsafeSocks (0|1): warn about such requests. Default 1.
	WarnUnsafeSocks bool
	// TestSocks (0|1): log whether each SOCKS request was safe. Default 0.
	TestSocks bool

	// Log (minSeverity[-maxSeverity] stderr|stdout|syslog|file PATH),
	// repeatable. Default "notice stdout".
	Logs []LogTarget
	// SafeLogging (0|1|relay): scrub addresses from logs. Default 1.
	SafeLogging SafeLogging

	// DirAuthority ([nickname] [flags] address:dirport fingerprint),
	// repeatable: the directory authorities. Empty means the built-in list;
	// use Authorities().
	DirAuthorities []DirAuthority
	// FallbackDir (address[:dirport] orport=N id=HEX [ipv6=..] [weight=..]),
	// repeatable. Empty means the built-in list; use Fallbacks().
	FallbackDirs []FallbackDir
	// UseDefaultFallbackDirs (0|1): use the built-in fallback list when no
	// FallbackDir and no DirAuthority is set. Default 1.
	UseDefaultFallbackDirs bool
	// TestingTorNetwork (0|1): settings for a private test network; needs
	// DirAuthority lines. Default 0.
	TestingTorNetwork bool

	// EnforceDistinctSubnets (0|1): never put two relays of the same /16
	// (IPv4) or /32 (IPv6) in one circuit. Default 1, or 0 with
	// TestingTorNetwork.
	EnforceDistinctSubnets bool
	// EntryNodes, ExitNodes, ExcludeNodes, ExcludeExitNodes (comma lists of
	// $fingerprint, nickname, address/mask): constrain path selection.
	EntryNodes, ExitNodes, ExcludeNodes, ExcludeExitNodes NodeList
	// StrictNodes (0|1): treat ExcludeNodes as a hard rule even when that
	// breaks functionality. Default 0.
	StrictNodes bool
	// NumEntryGuards (N): primary guards to use; 0 lets the consensus
	// decide. Default 0.
	NumEntryGuards int
	// UseEntryGuards (0|1): use long-term entry guards. Default 1.
	UseEntryGuards bool
	// CircuitBuildTimeout (interval): give up on a circuit build after this
	// long; the starting value when LearnCircuitBuildTimeout is 1. 0 (the
	// default, as in C tor) lets tinytor pick a plausible value.
	CircuitBuildTimeout time.Duration
	// LearnCircuitBuildTimeout (0|1): adapt the timeout to observed build
	// times. Default 1.
	LearnCircuitBuildTimeout bool
	// MaxCircuitDirtiness (interval): reuse a circuit for new streams for at
	// most this long after its first use. Default 10 minutes; clamped to
	// 10 seconds .. 30 days as in C tor.
	MaxCircuitDirtiness time.Duration
	// NewCircuitPeriod (interval): consider building a new circuit this
	// often. Default 30 seconds.
	NewCircuitPeriod time.Duration
	// CircuitStreamTimeout (interval): how long a stream waits for the
	// exit's (or onion service's) answer to its BEGIN before it is tried
	// on another circuit. 0 (the default, as in C tor) means C tor's
	// rule: 10 seconds for the first two tries, 15 seconds after.
	CircuitStreamTimeout time.Duration
	// ClientUseIPv4 (0|1): connect to relays over IPv4. Default 1.
	ClientUseIPv4 bool
	// ClientUseIPv6 (0|1): connect to relays over IPv6. Default 0.
	ClientUseIPv6 bool
	// ClientRejectInternalAddresses (0|1): refuse to connect to private
	// addresses through Tor. Default 1, or 0 with TestingTorNetwork.
	ClientRejectInternalAddresses bool
	// ExtendAllowPrivateAddresses (0|1): allow circuits through relays on
	// private addresses. Default 0, or 1 with TestingTorNetwork.
	ExtendAllowPrivateAddresses bool
	// MaxMemInQueues (memory, e.g. "64 MB"): cap on memory for queued cells;
	// 0 chooses automatically. Default 0.
	MaxMemInQueues uint64

	// ClientOnionAuthDir (path): client authorization keys for onion
	// services (*.auth_private files).
	ClientOnionAuthDir string
	// HiddenServiceDir and the HiddenService* options that follow it.
	HiddenServices []HiddenService

	// ControlPort ([addr:]port|auto|unix:path|0 [flags]), repeatable.
	// Default: none.
	ControlPorts []ControlPort
	// ControlSocket (path|0), repeatable: control port on a Unix socket.
	ControlSockets []string
	// CookieAuthentication (0|1): accept cookie authentication on the
	// control port. Default 0.
	CookieAuthentication bool
	// CookieAuthFile (path): where to write the cookie. Default
	// DataDirectory/control_auth_cookie.
	CookieAuthFile string
	// CookieAuthFileGroupReadable (0|1): make the cookie group-readable.
	CookieAuthFileGroupReadable bool
	// HashedControlPassword (16:HEX), repeatable: accepted control
	// passwords, as printed by tor --hash-password.
	HashedControlPasswords []string
	// MetricsPort ([addr:]port [prometheus]), repeatable. Default: none.
	MetricsPorts []MetricsPort
	// MetricsPortPolicy (accept|reject addr[/mask][:port], ...),
	// repeatable: who may read the metrics; a client no rule matches is
	// rejected, as in C tor, and ports are ignored. Empty: tinytor accepts
	// loopback clients only.
	MetricsPortPolicy policy.Policy

	// User (name): switch to this user after opening listeners.
	User string
	// PidFile (path): write the process id here.
	PidFile string
	// RunAsDaemon (0): only 0 is accepted; tinytor runs in the foreground
	// and leaves supervision to the init system.
	RunAsDaemon bool

	// HardwareWatchdog (0|1|path): keep the hardware watchdog at this
	// device fed while the client is healthy; 1 means /dev/watchdog.
	// Default 0 (none).
	HardwareWatchdog string
	// HardwareWatchdogTimeout (interval): the timeout asked of the
	// hardware watchdog; if the client stalls this long the board reboots.
	// Between MinHardwareWatchdogTimeout and MaxHardwareWatchdogTimeout.
	// Default 30 seconds.
	HardwareWatchdogTimeout time.Duration
	// AvoidDiskWrites (0|1): write routine state to flash at most once an
	// hour instead of every 10 minutes, as in C tor. Default 0.
	AvoidDiskWrites bool

	// UseBridges (0|1): make every first hop a bridge from the Bridge lines
	// and contact nothing else directly (no authorities, fallbacks or
	// relays). Default 0.
	UseBridges bool
	// Bridges are the Bridge lines.
	Bridges []Bridge
	// TransportPlugins are the ClientTransportPlugin lines.
	TransportPlugins []TransportPlugin
	// Socks4Proxy, Socks5Proxy, HTTPSProxy (IP[:PORT]): reach relays and
	// bridges through this proxy. At most one.
	Socks4Proxy, Socks5Proxy, HTTPSProxy netip.AddrPort
	// Socks5ProxyUsername, Socks5ProxyPassword authenticate to Socks5Proxy.
	Socks5ProxyUsername, Socks5ProxyPassword string
	// HTTPSProxyAuthenticator (user:password): Basic auth to HTTPSProxy.
	HTTPSProxyAuthenticator string

	// Warnings are the non-fatal complaints met while loading, each naming
	// its file and line, for the caller to log.
	Warnings []string
	// Notices are informational messages from loading, for the caller to
	// log at notice level.
	Notices []string
}

// AddressMapping is one MapAddress line.
type AddressMapping struct{ From, To string }

// Bounds of HardwareWatchdogTimeout. Drivers commonly accept 1 to 60 or
// up to a few hundred seconds; the watchdog is checked every third of the
// timeout, so it must be long enough for a check or two to run late.
const (
	MinHardwareWatchdogTimeout = 3 * time.Second
	MaxHardwareWatchdogTimeout = 10 * time.Minute
)

// SafeLogging is the value of the SafeLogging option.
type SafeLogging int

// SafeLogging values.
const (
	SafeLoggingOff   SafeLogging = iota // "0": log addresses
	SafeLoggingOn                       // "1": scrub addresses
	SafeLoggingRelay                    // "relay": scrub only what would identify clients of a relay
)

// Authorities returns the directory authorities to use: the DirAuthority
// lines if there are any, else the built-in list of the live network
// (parsed on each call; keep the result).
func (c *Config) Authorities() []DirAuthority {
	if len(c.DirAuthorities) > 0 {
		return c.DirAuthorities
	}
	return defaultAuthorities()
}

// Fallbacks returns the fallback directories to use. As in C tor
// (consider_adding_dir_servers): FallbackDir lines if there are any; else,
// if DirAuthority lines are set, none; else the built-in list, unless
// UseDefaultFallbackDirs is 0. The built-in list is parsed on each call.
func (c *Config) Fallbacks() []FallbackDir {
	switch {
	case len(c.FallbackDirs) > 0:
		return c.FallbackDirs
	case len(c.DirAuthorities) > 0 || !c.UseDefaultFallbackDirs:
		return nil
	}
	return defaultFallbacks()
}
