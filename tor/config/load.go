package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
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
		c.Notices = append(c.Notices, "Configuration file "+strconv.Quote(DefaultTorrc)+" not present, using reasonable defaults.")
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
	return nil, false, &Error{File: path, Err: wrapErr("unable to open configuration file", "", err)}
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
			return nil, &Error{File: CommandLine, Err: badValue("unexpected argument %q: options are written --Option value", a)}
		}
		l := Line{File: CommandLine}
		if l.Key, l.Command = cutCommand(key); l.Command == Clear {
			out = append(out, l)
			continue
		}
		if i+1 >= len(args) {
			return nil, &Error{File: CommandLine, Option: l.Key, Err: errors.New("command-line option '" + a + "' with no value")}
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
	opt       *option           // the option being applied
	l         Line              // the line being applied
	where     map[string]Line   // option name -> last line that set it
	hsLines   []Line            // the HiddenServiceDir line of each service
	hsSeen    []map[string]bool // per service: single-valued options given so far
	zeroPorts map[string]bool   // client port options with a "0" line (SocksPort 0)
}

// warn records warnings about the line being applied.
func (b *builder) warn(msgs ...string) {
	loc := where(b.l.File, b.l.Line)
	if loc != "" {
		loc += b.l.Key + ": "
	}
	for _, m := range msgs {
		b.c.Warnings = append(b.c.Warnings, loc+m)
	}
}

// merge combines layers of lines (lowest precedence first: defaults file,
// torrc, command line) into the lines in force for each option slot; a
// slot absent from the result is at its default.
//
// Within a layer, lines of a list option accumulate. The first plain line
// of a list option in a layer replaces what lower layers set; "+Key"
// appends to it instead and "/Key" clears it. Every line of a
// single-valued option is kept, in order, and the last one wins. An empty
// value resets a single-valued option to its default. If b is not nil, it
// receives the warnings about lines skipped or overridden.
func merge(layers [][]Line, b *builder) (map[string][]Line, error) {
	merged := map[string][]Line{}
	for _, layer := range layers {
		touched := map[string]bool{} // list slots set in this layer
		seen := map[string]bool{}    // single-valued slots set in this layer
		for _, l := range layer {
			if l.Key == "%include" {
				return nil, errAt(l, l.Key, errors.New("%include is only allowed in configuration files"))
			}
			opt, err := lookup(l.Key)
			if err != nil {
				return nil, errAt(l, canonicalName(l.Key), err)
			}
			slot := opt.slot()
			var warning string
			switch {
			case l.Command == Clear:
				delete(merged, slot)
				touched[slot] = true
			case l.Value == "" && opt.list:
				warning = "Linelist option '" + opt.name + "' has no value. Skipping."
			case l.Value == "":
				delete(merged, slot) // back to the default
			case opt.list:
				if !touched[slot] && l.Command != Append {
					delete(merged, slot)
				}
				touched[slot] = true
				merged[slot] = append(merged[slot], l)
			default:
				if seen[slot] {
					warning = "Option '" + opt.name + "' used more than once; all but the last value will be ignored."
				}
				seen[slot] = true
				merged[slot] = append(merged[slot], l)
			}
			if warning != "" && b != nil {
				b.l = l
				b.warn(warning)
			}
		}
	}
	return merged, nil
}

// Build merges layers of lines (lowest precedence first: defaults file,
// torrc, command line) as merge describes and builds the Config.
func Build(env Env, layers ...[]Line) (*Config, error) {
	b := &builder{c: &Config{}, env: env, where: map[string]Line{}, zeroPorts: map[string]bool{}}
	merged, err := merge(layers, b)
	if err != nil {
		return nil, err
	}
	for i := range options {
		opt := &options[i]
		if opt.group != "" && !firstOfGroup(i) {
			continue
		}
		lines := merged[opt.slot()]
		if len(lines) == 0 && opt.group == "" {
			def, err := opt.defaultValue(b)
			if err != nil {
				return nil, err
			}
			if def != "" {
				lines = []Line{{Key: opt.name, Value: def, File: "built-in default"}}
			}
		}
		for _, l := range lines {
			o := opt
			if opt.group != "" {
				o, _ = lookup(l.Key)
			}
			if err := b.apply(o, l); err != nil {
				return nil, err
			}
		}
	}
	if err := b.finish(); err != nil {
		return nil, err
	}
	return b.c, nil
}

// defaultValue is the option's default in the configuration b builds.
func (o *option) defaultValue(b *builder) (string, error) {
	if o.defFn == nil {
		return o.def, nil
	}
	def, err := o.defFn(b)
	if err != nil {
		return "", &Error{Option: o.name, Err: err}
	}
	return def, nil
}

func firstOfGroup(i int) bool {
	return i == 0 || options[i-1].group != options[i].group
}

// apply parses line l of option opt and stores its value.
func (b *builder) apply(opt *option, l Line) error {
	b.opt, b.l = opt, l
	b.where[opt.name] = l
	dst := reflect.ValueOf(b.c).Elem()
	if opt.group == hsGroup && opt.field != "" {
		hs, err := b.service(opt)
		if err != nil {
			return errAt(l, opt.name, err)
		}
		dst = reflect.ValueOf(hs).Elem()
	}
	x, err := opt.parse(b, l.Value)
	if err != nil {
		return errAt(l, opt.name, err)
	}
	if x != nil {
		store(dst, opt, x)
	}
	return nil
}

// errorAt returns the error msg about the option name, at the last line
// that set it.
func (b *builder) errorAt(name, msg string) error { return b.report(name, msg, true) }

// warnAt records the warning msg about the option name, at the last line
// that set it.
func (b *builder) warnAt(name, msg string) { b.report(name, msg, false) }

// report is errorAt if fatal, else warnAt.
func (b *builder) report(name, msg string, fatal bool) error {
	l := b.where[name]
	if fatal {
		return errAt(l, name, errors.New(msg))
	}
	b.l = l
	b.warn(msg)
	return nil
}

// finish checks rules that involve several options.
func (b *builder) finish() error {
	c := b.c
	if c.TestingTorNetwork && len(c.DirAuthorities) == 0 {
		return b.errorAt("TestingTorNetwork",
			"TestingTorNetwork may only be configured in combination with a non-default set of DirAuthority")
	}
	clientPorts := [...]struct {
		name  string
		ports []ClientPort
	}{{"SocksPort", c.SocksPorts}, {"DNSPort", c.DNSPorts}, {"TransPort", c.TransPorts}, {"HTTPTunnelPort", c.HTTPTunnelPorts}}
	for _, cp := range clientPorts {
		n := cp.name
		if b.zeroPorts[n] && len(cp.ports) > 0 {
			return b.errorAt(n, "you specified a nonzero "+n+" along with '"+n+
				" 0' in the same configuration; did you mean to disable "+n+" or not?")
		}
		// Listeners reachable from elsewhere, as C tor's
		// warn_nonlocal_client_ports and warn_nonlocal_controller_ports.
		for _, p := range cp.ports {
			a := p.Addr.Addr()
			switch {
			case p.Unix != "" || !a.IsValid():
			case isPublic(a):
				b.warnAt(n, "You specified a public address '"+p.Addr.String()+"' for "+n+
					". Other people on the Internet might find your computer and use it as an open proxy. Please don't allow this unless you have a good reason.")
			case a.IsUnspecified() && (n == "TransPort" || n == "HTTPTunnelPort"):
				// C tor counts 0.0.0.0 as internal; on a router it is the
				// WAN side too.
				b.warnAt(n, "You specified the address '"+p.Addr.String()+"' for "+n+
					": it listens on every interface, a public one (the WAN) included, and may serve the Internet as an open proxy. Bind it to the LAN address instead.")
			}
		}
	}
	if len(c.SocksPolicy) > 0 && !c.SocksPolicy.CoversAll() {
		b.warnAt("SocksPolicy", "SocksPolicy has no rule for every address (such as 'reject *'), so a client no rule matches is accepted, as in C tor.")
	}
	for _, p := range c.ControlPorts {
		if a := p.Addr.Addr(); p.Unix != "" || !a.IsValid() || a.IsLoopback() {
			continue
		}
		if !c.CookieAuthentication && len(c.HashedControlPasswords) == 0 {
			return b.errorAt("ControlPort", "ControlPort "+p.Listener.String()+
				" accepts connections from a non-local address without authentication; set CookieAuthentication or HashedControlPassword, or listen on 127.0.0.1")
		}
		b.warnAt("ControlPort", "You have a ControlPort set to accept connections from a non-local address ("+p.Listener.String()+
			"). The control protocol isn't encrypted; prefer 127.0.0.1 with ssh or stunnel for remote access.")
	}

	// Clamps and warnings as in C tor's options_validate.
	const minDirty, maxDirty = 10 * time.Second, 30 * 24 * time.Hour
	switch {
	case c.MaxCircuitDirtiness < minDirty:
		b.warnAt("MaxCircuitDirtiness", "MaxCircuitDirtiness option is too short; raising to 10 seconds.")
		c.MaxCircuitDirtiness = minDirty
	case c.MaxCircuitDirtiness > maxDirty:
		b.warnAt("MaxCircuitDirtiness", "MaxCircuitDirtiness option is too high; setting to 30 days.")
		c.MaxCircuitDirtiness = maxDirty
	}
	if t := c.CircuitBuildTimeout; !c.LearnCircuitBuildTimeout && t > 0 && t < 10*time.Second {
		b.warnAt("CircuitBuildTimeout", "CircuitBuildTimeout is shorter ("+strconv.Itoa(int(t.Seconds()))+
			" seconds) than the recommended minimum (10 seconds), and LearnCircuitBuildTimeout is disabled.  If tor isn't working, raise this value or enable LearnCircuitBuildTimeout.")
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
