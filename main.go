// Command tinytor is a Tor client for embedded Linux routers.
//
// Usage:
//
//	tinytor [-f FILE] [--defaults-torrc FILE] [--verify-config] [--Option value ...]
//
// As with C tor, any "--Option value" argument after the known flags
// overrides the torrc ("--+Option value" appends to a list option,
// "--/Option" clears it).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"tinytor/tor/config"
	"tinytor/tor/control"
	"tinytor/tor/errfmt"
	"tinytor/tor/torlog"
)

// version is the tinytor version; release builds set it with
// -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes.
const (
	exitOK      = 0 // success
	exitConfig  = 1 // bad command line or configuration
	exitRuntime = 2 // failure while running
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// commandLine is what the arguments ask for.
type commandLine struct {
	torrc     string        // -f
	defaults  string        // --defaults-torrc
	verify    bool          // --verify-config
	version   bool          // --version
	help      bool          // --help
	hashPW    *string       // --hash-password PW
	overrides []config.Line // --Option value ...
}

const usage = `Usage: tinytor [options] [--Option value ...]

  -f, --torrc-file FILE    read the torrc from FILE (default ` + config.DefaultTorrc + `;
                           if that is absent, built-in defaults apply)
  --defaults-torrc FILE    read defaults from FILE before the torrc
                           (default ` + config.DefaultDefaultsTorrc + `, if present)
  --verify-config          check the configuration and exit
  --hash-password PW       print a HashedControlPassword value for PW and exit
  --version                print the version and exit
  -h, --help               print this help and exit

Any other --Option value pair overrides the torrc option of that name
(--+Option value appends to a list option, --/Option clears it).
`

// run is the whole program; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cl, err := parseCommandLine(args)
	if err != nil {
		fmt.Fprintf(stderr, "tinytor: %v\nTry 'tinytor --help'.\n", err)
		return exitConfig
	}
	switch {
	case cl.help:
		fmt.Fprint(stdout, usage)
		return exitOK
	case cl.version:
		fmt.Fprintf(stdout, "tinytor %s (Tor protocol client)\n", version)
		return exitOK
	case cl.hashPW != nil:
		h, err := control.HashPassword(*cl.hashPW, nil)
		if err != nil {
			fmt.Fprintf(stderr, "tinytor: %v\n", err)
			return exitRuntime
		}
		fmt.Fprintln(stdout, h)
		return exitOK
	}

	log := torlog.New(torlog.Sink{Min: torlog.Notice, Max: torlog.Err, W: stderr})
	cfg, err := loadConfig(cl, log)
	if err != nil {
		fmt.Fprintf(stderr, "tinytor: invalid configuration: %v\n", err)
		return exitConfig
	}
	if cl.verify {
		fmt.Fprintln(stdout, "Configuration was valid")
		return exitOK
	}

	return runTor(cfg, cl.sources(), func(l *torlog.Logger) (*config.Config, error) { return loadConfig(cl, l) }, stdout, stderr)
}

// loadConfig is the configuration step: read the defaults file, the
// torrc and the overrides, and log what loading had to say.
func loadConfig(cl *commandLine, log *torlog.Logger) (*config.Config, error) {
	cfg, err := config.Load(cl.sources())
	if err != nil {
		return nil, err
	}
	for _, m := range cfg.Notices {
		log.Noticef("%s", m)
	}
	for _, m := range cfg.Warnings {
		log.Warnf("%s", m)
	}
	return cfg, nil
}

// sources says where the configuration comes from.
func (cl *commandLine) sources() config.Sources {
	return config.Sources{Torrc: cl.torrc, Defaults: cl.defaults, Args: cl.overrides, Env: config.CurrentEnv()}
}

// ownFlag is one of tinytor's own command-line flags; everything else
// on the command line is a torrc override.
type ownFlag struct {
	long, short string
	value       func(cl *commandLine) *string // nil for a switch
	on          func(cl *commandLine)         // a switch's effect
}

var ownFlags = [...]ownFlag{
	{long: "torrc-file", short: "f", value: func(cl *commandLine) *string { return &cl.torrc }},
	{long: "defaults-torrc", value: func(cl *commandLine) *string { return &cl.defaults }},
	{long: "hash-password", value: func(cl *commandLine) *string { cl.hashPW = new(string); return cl.hashPW }},
	{long: "verify-config", on: func(cl *commandLine) { cl.verify = true }},
	{long: "version", on: func(cl *commandLine) { cl.version = true }},
	{long: "help", short: "h", on: func(cl *commandLine) { cl.help = true }},
}

// lookupFlag finds the own flag arg names ("--name", "--name=v" or "-x").
func lookupFlag(arg string) (f *ownFlag, value string, hasValue bool) {
	name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	long := strings.HasPrefix(arg, "--")
	if !long && (!strings.HasPrefix(arg, "-") || len(name) != 1) {
		return nil, "", false
	}
	for i := range ownFlags {
		if long && ownFlags[i].long == name || !long && ownFlags[i].short != "" && ownFlags[i].short == name {
			return &ownFlags[i], value, hasValue
		}
	}
	return nil, "", false
}

// parseCommandLine separates tinytor's own flags from torrc overrides,
// which keep their order and go to config.ParseArgs.
func parseCommandLine(args []string) (*commandLine, error) {
	cl := &commandLine{}
	var overrides []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if f, v, hasValue := lookupFlag(a); f != nil {
			switch {
			case f.value == nil && hasValue:
				return nil, errfmt.Errorf("flag %s takes no value", a)
			case f.value == nil:
				f.on(cl)
			case !hasValue && i+1 >= len(args):
				return nil, errfmt.Errorf("flag needs an argument: %s", a)
			case !hasValue:
				i++
				v = args[i]
				fallthrough
			default:
				*f.value(cl) = v
			}
			continue
		}
		if !strings.HasPrefix(a, "-") {
			return nil, errfmt.Errorf("unexpected argument %q", a)
		}
		// A torrc override: "--Option value", or "--/Option" alone.
		overrides = append(overrides, a)
		if !strings.HasPrefix(strings.TrimLeft(a, "-"), "/") && i+1 < len(args) {
			overrides = append(overrides, args[i+1])
			i++
		}
	}
	lines, err := config.ParseArgs(overrides)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, err
	}
	cl.overrides = lines
	return cl, nil
}
