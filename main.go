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

	"github.com/spf13/pflag"

	"tinytor/tor/config"
	"tinytor/tor/control"
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

// parseCommandLine separates tinytor's own flags, parsed with pflag, from
// torrc overrides, which keep their order and go to config.ParseArgs.
func parseCommandLine(args []string) (*commandLine, error) {
	cl := &commandLine{}
	fs := pflag.NewFlagSet("tinytor", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.StringVarP(&cl.torrc, "torrc-file", "f", "", "read the torrc from `FILE` (default "+config.DefaultTorrc+"; if that is absent, built-in defaults apply)")
	fs.StringVar(&cl.defaults, "defaults-torrc", "", "read defaults from `FILE` before the torrc (default "+config.DefaultDefaultsTorrc+", if present)")
	fs.BoolVar(&cl.verify, "verify-config", false, "check the configuration and exit")
	fs.BoolVar(&cl.version, "version", false, "print the version and exit")
	hashPW := fs.String("hash-password", "", "print a HashedControlPassword value for `PW` and exit")
	fs.BoolVarP(&cl.help, "help", "h", false, "print this help and exit")

	var own, overrides []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var f *pflag.Flag
		switch {
		case strings.HasPrefix(a, "--"):
			f = fs.Lookup(name)
		case strings.HasPrefix(a, "-") && len(name) == 1:
			f = fs.ShorthandLookup(name)
		}
		if f != nil {
			own = append(own, a)
			if f.Value.Type() != "bool" && !hasValue && i+1 < len(args) {
				own = append(own, args[i+1])
				i++
			}
			continue
		}
		// A torrc override: "--Option value", or "--/Option" alone.
		overrides = append(overrides, a)
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(strings.TrimLeft(a, "-"), "/") && i+1 < len(args) {
			overrides = append(overrides, args[i+1])
			i++
		}
	}
	if err := fs.Parse(own); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if fs.Changed("hash-password") {
		cl.hashPW = hashPW
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
