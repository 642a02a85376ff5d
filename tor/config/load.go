package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Default file locations.
const (
	DefaultTorrc         = "/etc/tinytor/torrc"
	DefaultDefaultsTorrc = "/etc/tinytor/torrc-defaults"
)

// Env is what defaults depend on outside the configuration files.
type Env struct {
	Root bool   // running as root (euid 0)
	Home string // $HOME
}

// Sources says where to read the configuration from.
type Sources struct {
	// Torrc is the -f file. Empty means DefaultTorrc, which may be absent
	// (then built-in defaults apply); a file named here must exist.
	Torrc string
	// Defaults is the --defaults-torrc file, read before the torrc. Empty
	// means DefaultDefaultsTorrc, which may be absent.
	Defaults string
	// Args are command-line overrides (see ParseArgs), applied last.
	Args []Line
	Env  Env
}

// Load reads the defaults file, the torrc and the command-line overrides,
// in that order of precedence (later wins), and builds the Config.
func Load(s Sources) (*Config, error) {
	defaults, _, err := readLayer(s.Defaults, DefaultDefaultsTorrc)
	if err != nil {
		return nil, err
	}
	torrc, missing, err := readLayer(s.Torrc, DefaultTorrc)
	if err != nil {
		return nil, err
	}
	c, err := Build(s.Env, defaults, torrc, s.Args)
	if err != nil {
		return nil, err
	}
	if missing {
		c.Notices = append(c.Notices, fmt.Sprintf("Configuration file %q not present, using reasonable defaults.", DefaultTorrc))
	}
	return c, nil
}

// readLayer reads path, or def if path is empty. A missing def file is no
// error (missing reports it); a missing named file is.
func readLayer(path, def string) (lines []Line, missing bool, err error) {
	explicit := path != ""
	if !explicit {
		path = def
	}
	lines, err = ReadFile(path)
	if err == nil {
		return lines, false, nil
	}
	var ce *Error
	if errors.As(err, &ce) { // a syntax or %include error inside the file
		return nil, false, err
	}
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return nil, true, nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return nil, false, &Error{File: path, Err: fmt.Errorf("unable to open configuration file: %w", err)}
}

// Parse builds a Config from one torrc text (no %include, no other
// layers). It is meant for tests and tools.
func Parse(data []byte, name string, env Env) (*Config, error) {
	lines, err := Lex(data, name)
	if err != nil {
		return nil, err
	}
	return Build(env, lines)
}

// ParseArgs turns command-line arguments into override lines, as C tor's
// config_parse_commandline: "--Key value" or "-Key value" sets Key,
// "--+Key value" appends, "--/Key" clears (and takes no value).
func ParseArgs(args []string) ([]Line, error) {
	var out []Line
	for i := 0; i < len(args); i++ {
		a := args[i]
		key := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if key == a || key == "" {
			return nil, &Error{File: CommandLine, Err: fmt.Errorf("unexpected argument %q: options are written --Option value", a)}
		}
		l := Line{Key: key, File: CommandLine}
		switch {
		case strings.HasPrefix(key, "+"):
			l.Key, l.Command = key[1:], Append
		case strings.HasPrefix(key, "/"):
			l.Key, l.Command = key[1:], Clear
			out = append(out, l)
			continue
		}
		if i+1 >= len(args) {
			return nil, &Error{File: CommandLine, Option: l.Key, Err: fmt.Errorf("command-line option '%s' with no value", a)}
		}
		i++
		l.Value = args[i]
		out = append(out, l)
	}
	return out, nil
}

// builder holds the state of one Build.
type builder struct {
	c         *Config
	env       Env
	l         Line              // the line being applied
	where     map[string]Line   // option name -> last line that set it
	hsLines   []Line            // the HiddenServiceDir line of each service
	hsSeen    []map[string]bool // per service: single-valued options given so far
	zeroPorts map[string]bool   // client port options with a "0" line (SocksPort 0)
}

func (b *builder) warnf(format string, args ...any) {
	b.warn([]string{fmt.Sprintf(format, args...)})
}

func (b *builder) warn(msgs []string) {
	for _, m := range msgs {
		loc := b.l.File
		if b.l.Line > 0 {
			loc = fmt.Sprintf("%s:%d", b.l.File, b.l.Line)
		}
		if loc != "" {
			m = fmt.Sprintf("%s: %s: %s", loc, b.l.Key, m)
		}
		b.c.Warnings = append(b.c.Warnings, m)
	}
}

// Build merges layers of lines (lowest precedence first: defaults file,
// torrc, command line) and builds the Config.
//
// Within a layer, lines of a list option accumulate and the last line of
// a single-valued option wins. The first plain line of a list option in a
// layer replaces what lower layers set; "+Key" appends to it instead and
// "/Key" clears it. An empty value resets a single-valued option to its
// default.
func Build(env Env, layers ...[]Line) (*Config, error) {
	b := &builder{c: &Config{}, env: env, where: map[string]Line{}, zeroPorts: map[string]bool{}}
	merged := map[string][]Line{}
	for _, layer := range layers {
		touched := map[string]bool{}
		seen := map[string]bool{}
		for _, l := range layer {
			if l.Key == "%include" {
				return nil, errAt(l, l.Key, errors.New("%include is only allowed in configuration files"))
			}
			opt, err := lookup(l.Key)
			if err != nil {
				return nil, errAt(l, canonicalName(l.Key), err)
			}
			slot := opt.slot()
			b.l = l
			switch {
			case l.Command == Clear:
				merged[slot] = nil
				touched[slot] = true
			case l.Value == "" && opt.list:
				b.warnf("Linelist option '%s' has no value. Skipping.", opt.name)
			case l.Value == "":
				merged[slot] = nil // back to the default
			case opt.list:
				if !touched[slot] && l.Command != Append {
					merged[slot] = nil
				}
				touched[slot] = true
				merged[slot] = append(merged[slot], l)
			default:
				if seen[slot] {
					b.warnf("Option '%s' used more than once; all but the last value will be ignored.", opt.name)
				}
				seen[slot] = true
				merged[slot] = append(merged[slot], l)
			}
		}
	}
	for i := range options {
		opt := &options[i]
		if opt.group != "" {
			if !firstOfGroup(i) {
				continue
			}
			for _, l := range merged[opt.slot()] {
				o, _ := lookup(l.Key)
				if err := b.apply(o, l); err != nil {
					return nil, err
				}
			}
			continue
		}
		lines := merged[opt.slot()]
		if len(lines) == 0 {
			def := opt.def
			if opt.defFn != nil {
				d, err := opt.defFn(b)
				if err != nil {
					return nil, &Error{Option: opt.name, Err: err}
				}
				def = d
			}
			if def != "" {
				if err := b.apply(opt, Line{Key: opt.name, Value: def, File: "built-in default"}); err != nil {
					return nil, err
				}
			}
			continue
		}
		for _, l := range lines {
			if err := b.apply(opt, l); err != nil {
				return nil, err
			}
		}
	}
	if err := b.finish(); err != nil {
		return nil, err
	}
	return b.c, nil
}

func firstOfGroup(i int) bool {
	return i == 0 || options[i-1].group != options[i].group
}

func (b *builder) apply(opt *option, l Line) error {
	b.l = l
	b.where[opt.name] = l
	if err := opt.apply(b, l.Value); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			return err
		}
		return errAt(l, opt.name, err)
	}
	return nil
}

// finish checks rules that involve several options.
func (b *builder) finish() error {
	c := b.c
	if c.TestingTorNetwork && len(c.DirAuthorities) == 0 {
		return errAt(b.where["TestingTorNetwork"], "TestingTorNetwork",
			errors.New("TestingTorNetwork may only be configured in combination with a non-default set of DirAuthority"))
	}
	clientPorts := []struct {
		name  string
		ports []ClientPort
	}{{"SocksPort", c.SocksPorts}, {"DNSPort", c.DNSPorts}, {"TransPort", c.TransPorts}, {"HTTPTunnelPort", c.HTTPTunnelPorts}}
	for _, cp := range clientPorts {
		if b.zeroPorts[cp.name] && len(cp.ports) > 0 {
			return errAt(b.where[cp.name], cp.name, fmt.Errorf("you specified a nonzero %s along with '%s 0' in the same configuration; did you mean to disable %s or not?", cp.name, cp.name, cp.name))
		}
	}
	// Listeners reachable from elsewhere, as C tor's
	// warn_nonlocal_client_ports and warn_nonlocal_controller_ports.
	for _, cp := range clientPorts {
		for _, p := range cp.ports {
			a := p.Addr.Addr()
			if p.Unix != "" || !a.IsValid() {
				continue
			}
			b.l = b.where[cp.name]
			switch {
			case isPublic(a):
				b.warnf("You specified a public address '%s' for %s. Other people on the Internet might find your computer and use it as an open proxy. Please don't allow this unless you have a good reason.", p.Addr, cp.name)
			case a.IsUnspecified() && (cp.name == "TransPort" || cp.name == "HTTPTunnelPort"):
				// C tor counts 0.0.0.0 as internal; on a router it is the
				// WAN side too.
				b.warnf("You specified the address '%s' for %s: it listens on every interface, a public one (the WAN) included, and may serve the Internet as an open proxy. Bind it to the LAN address instead.", p.Addr, cp.name)
			}
		}
	}
	if len(c.SocksPolicy) > 0 && !c.SocksPolicy.CoversAll() {
		b.l = b.where["SocksPolicy"]
		b.warnf("SocksPolicy has no rule for every address (such as 'reject *'), so a client no rule matches is accepted, as in C tor.")
	}
	for _, p := range c.ControlPorts {
		if a := p.Addr.Addr(); p.Unix != "" || !a.IsValid() || a.IsLoopback() {
			continue
		}
		b.l = b.where["ControlPort"]
		if !c.CookieAuthentication && len(c.HashedControlPasswords) == 0 {
			return errAt(b.l, "ControlPort", fmt.Errorf("ControlPort %s accepts connections from a non-local address without authentication; set CookieAuthentication or HashedControlPassword, or listen on 127.0.0.1", p.Listener))
		}
		b.warnf("You have a ControlPort set to accept connections from a non-local address (%s). The control protocol isn't encrypted; prefer 127.0.0.1 with ssh or stunnel for remote access.", p.Listener)
	}

	// Clamps and warnings as in C tor's options_validate.
	const minDirty, maxDirty = 10 * time.Second, 30 * 24 * time.Hour
	switch l := b.where["MaxCircuitDirtiness"]; {
	case c.MaxCircuitDirtiness < minDirty:
		b.l = l
		b.warnf("MaxCircuitDirtiness option is too short; raising to %d seconds.", int(minDirty.Seconds()))
		c.MaxCircuitDirtiness = minDirty
	case c.MaxCircuitDirtiness > maxDirty:
		b.l = l
		b.warnf("MaxCircuitDirtiness option is too high; setting to %d days.", int(maxDirty.Hours()/24))
		c.MaxCircuitDirtiness = maxDirty
	}
	if !c.LearnCircuitBuildTimeout && c.CircuitBuildTimeout > 0 && c.CircuitBuildTimeout < 10*time.Second {
		b.l = b.where["CircuitBuildTimeout"]
		b.warnf("CircuitBuildTimeout is shorter (%d seconds) than the recommended minimum (10 seconds), and LearnCircuitBuildTimeout is disabled.  If tor isn't working, raise this value or enable LearnCircuitBuildTimeout.", int(c.CircuitBuildTimeout.Seconds()))
	}
	if err := b.checkBridges(); err != nil {
		return err
	}
	return b.checkServices()
}

// isPublic reports whether a listening address is reachable from the
// Internet: not loopback, private, link-local or unspecified.
func isPublic(a netip.Addr) bool {
	a = a.Unmap()
	return !(a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() ||
		a.Is4() && a.As4()[0] == 100 && a.As4()[1]&0xc0 == 64) // 100.64/10, carrier-grade NAT
}

// defaultDataDirectory is /var/lib/tinytor for root, else $HOME/.tinytor.
func defaultDataDirectory(b *builder) (string, error) {
	if b.env.Root {
		return "/var/lib/tinytor", nil
	}
	if b.env.Home == "" {
		return "", errors.New("no default: not running as root and $HOME is unset; set DataDirectory")
	}
	return filepath.Join(b.env.Home, ".tinytor"), nil
}

// CurrentEnv returns the Env of this process.
func CurrentEnv() Env {
	return Env{Root: os.Geteuid() == 0, Home: os.Getenv("HOME")}
}
