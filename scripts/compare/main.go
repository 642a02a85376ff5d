// Command compare measures tinytor against a fresh C tor client on the
// same private test network (scripts/testnet), side by side, and runs the
// hot-path Go benchmarks.
//
//	go run ./scripts/compare -env DIR/testnet.env [flags]
//	scripts/compare/run -env DIR/testnet.env [flags]
//
// Both clients get the same torrc: the network's torrc-fragment, a fresh
// DataDirectory, a SocksPort on 127.0.0.1 and "Log notice stdout" (C tor
// also gets an empty --defaults-torrc). The bootstrap runs alternate
// between the two clients. Then one workload instance of each runs at the
// same time, with a ControlPort with cookie authentication (used only to
// watch CIRC and STREAM events), and every step below alternates between
// them so that the load of the shared machine hits both alike. Measured:
//
//   - bootstrap: process start to the "Bootstrapped 100%" log line, -runs
//     fresh starts of each, interleaved; median, min and max;
//   - TTFB: SOCKS connect to the first byte of the HTTP response for the
//     marker page. Each round waits -idle (the clients prebuild), then makes
//     -burst requests back to back, each with a new SOCKS username (a new
//     isolation, so no circuit that already carried a stream may be used),
//     then one more with the last username (reuse). Each request is
//     classified from the control events: "prebuilt" if its stream went on
//     a circuit launched before the request, "built" if on one launched
//     after it (the request waited for a circuit build);
//   - CPU: utime+stime (from /proc/PID/stat) spent during each download of
//     the 64 MiB file (-downloads times on one isolation, each
//     sha256-checked), summed and scaled to one GiB;
//   - peak RSS: VmHWM from /proc/PID/status after the TTFB rounds and the
//     downloads (the fixed workload);
//   - onion, last: the first request to the network's onion service (cold:
//     descriptor fetch, introduction, rendezvous). A client that fails or
//     dies here is reported, and the other measurements stand;
//   - throughput (-tput-runs N, after the TTFB rounds; issue 12's latency
//     measurement, all of it with -only tput): N downloads of the first
//     -size bytes of the 64 MiB file (an HTTP Range request, sha256 of the
//     prefix checked against the network's www/64M), each on a new SOCKS
//     username, the clients alternating and the first of them alternating
//     too; the rate counts from the first response byte to the last, the
//     TTFB (new isolation: circuit and stream setup) is reported apart.
//     Then N runs of -parallel such downloads at once, on one username
//     (-parallel-mode circuit: one circuit, several streams) or one
//     username each (isolation: a circuit each), with the aggregate rate
//     from the first stream's first byte to the last stream's last byte.
//     CPU (utime+stime) is read around each run and reported per GiB.
//     -latency-ms labels the table (default: the network's
//     TESTNET_LATENCY_MS); scripts/compare/latency-sweep starts a network
//     per latency and runs this on each.
//
// Every process it starts listens on 127.0.0.1 and is stopped before it
// exits (also on SIGINT/SIGTERM).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	env       string
	tinytor   string
	tor       string
	src       string
	work      string
	keep      bool
	runs      int
	downloads int
	rounds    int
	burst     int
	idle      time.Duration
	timeout   time.Duration
	bench     bool
	benchtime string
	jsonOut   string
	only      string
	onion     bool
	// Throughput (the latency test of issue 12).
	tputRuns     int
	sizeArg      string
	size         int64
	parallel     int
	parallelMode string
	latency      string // label for the report; default TESTNET_LATENCY_MS
}

func main() {
	var o options
	flag.StringVar(&o.env, "env", "", "the running network's testnet.env (required)")
	flag.StringVar(&o.tinytor, "tinytor", "", "tinytor binary (default: build it from -src)")
	flag.StringVar(&o.tor, "tor", "tor", "C tor binary")
	flag.StringVar(&o.src, "src", ".", "tinytor source tree (module root) to build and benchmark")
	flag.StringVar(&o.work, "work", "", "work directory for torrcs, data directories and logs (default: a new temporary one)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.IntVar(&o.runs, "runs", 5, "bootstrap runs per client")
	flag.IntVar(&o.downloads, "downloads", 4, "64 MiB downloads per client")
	flag.IntVar(&o.rounds, "rounds", 3, "TTFB rounds")
	flag.IntVar(&o.burst, "burst", 5, "new-isolation requests per TTFB round")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "idle wait before each TTFB round (lets the clients prebuild)")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "bootstrap and per-request timeout")
	flag.BoolVar(&o.bench, "bench", true, "also run the Go benchmarks (tor/cell, tor/circuit, relaycrypto, tor/dir)")
	flag.StringVar(&o.benchtime, "benchtime", "1s", "go test -benchtime for the benchmarks")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.only, "only", "", "run only this part: net, bench, or tput (throughput, TTFB on new circuits and CPU per GiB only: no bootstrap runs, 64 MiB downloads, onion or benchmarks, unless given explicitly)")
	flag.BoolVar(&o.onion, "onion", true, "make the cold onion request at the end of the workload")
	flag.IntVar(&o.tputRuns, "tput-runs", 0, "throughput runs per client: single downloads of -size, then as many runs of -parallel downloads (0: none; -only tput: 5)")
	flag.StringVar(&o.sizeArg, "size", "16M", "throughput download size (K, M, G suffixes; at most 64M: the first bytes of /64M by an HTTP Range request)")
	flag.IntVar(&o.parallel, "parallel", 4, "streams at once in a parallel throughput run (1: no parallel runs)")
	flag.StringVar(&o.parallelMode, "parallel-mode", parallelOneCircuit, "parallel streams on one SOCKS username, so one circuit (circuit), or one username each, so a circuit each (isolation)")
	flag.StringVar(&o.latency, "latency-ms", "", "the network's one-way ORPort delay, for the report's label (default: TESTNET_LATENCY_MS from -env)")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.only == "tput" {
		// The latency measurement alone: throughput, TTFB rounds (TTFB
		// on new circuits) and CPU per GiB.
		for name, p := range map[string]*int{"runs": &o.runs, "downloads": &o.downloads} {
			if !set[name] {
				*p = 0
			}
		}
		if !set["tput-runs"] {
			o.tputRuns = 5
		}
		if !set["burst"] {
			// More new isolations than C tor keeps prebuilt circuits
			// for, so both clients also wait for builds.
			o.burst = 8
		}
		if !set["onion"] {
			o.onion = false
		}
		if !set["bench"] {
			o.bench = false
		}
	}
	var err error
	if o.size, err = parseSize(o.sizeArg); err != nil {
		fmt.Fprintln(os.Stderr, "compare: -size:", err)
		os.Exit(2)
	}
	if o.parallelMode != parallelOneCircuit && o.parallelMode != parallelIsolated {
		fmt.Fprintf(os.Stderr, "compare: -parallel-mode %q: want %s or %s\n", o.parallelMode, parallelOneCircuit, parallelIsolated)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

// results is everything measured for one client.
type results struct {
	Name       string
	Version    string
	Bootstrap  []float64 // seconds
	BootHWM    []int64   // VmHWM right after bootstrap, bytes
	TTFBPre    []float64 // seconds: stream on a circuit launched before the request
	TTFBBuilt  []float64 // seconds: stream on a circuit launched after the request
	TTFBReuse  []float64 // seconds: same isolation as the previous request
	TTFBErrors []string
	// IsolationViolations lists circuits that carried streams of two
	// SOCKS usernames (IsolateSOCKSAuth forbids it).
	IsolationViolations []string
	Onion               float64 // seconds, 0 if failed
	OnionErr            string
	DLBytes             int64
	DLCPU               float64   // seconds
	DLRates             []float64 // MiB/s per download
	DLErr               string
	// Throughput runs (-tput-runs): single downloads of -size on a new
	// isolation each, rate from the first response byte to the last.
	TputRates []float64 // MiB/s
	TputTTFB  []float64 // seconds
	TputCPU   float64   // seconds over all single downloads
	TputBytes int64
	TputErr   string
	// Parallel runs: -parallel downloads at once, aggregate rate.
	ParRates    []float64 // MiB/s
	ParCircuits []int     // circuits the streams of each run used
	ParCPU      float64
	ParBytes    int64
	ParErr      string
	PeakRSS     int64 // VmHWM after the workload
	RSS         int64 // VmRSS after the workload
	RSSErr      string
}

func run(o options) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if o.only != "" && o.only != "net" && o.only != "bench" && o.only != "tput" {
		return fmt.Errorf("-only %q: want net, bench or tput", o.only)
	}
	src, err := filepath.Abs(o.src)
	if err != nil {
		return err
	}
	var all []*results
	var benches []benchLine
	if o.only != "bench" {
		if o.env == "" {
			return errors.New("-env is required (DIR/testnet.env of a running scripts/testnet network)")
		}
		env, err := readEnv(o.env)
		if err != nil {
			return err
		}
		work := o.work
		if work != "" {
			if err := os.MkdirAll(work, 0o700); err != nil {
				return err
			}
		} else {
			if work, err = os.MkdirTemp("", "tinytor-compare-"); err != nil {
				return err
			}
			if !o.keep {
				defer os.RemoveAll(work)
			}
		}
		if o.latency == "" {
			o.latency = env["TESTNET_LATENCY_MS"]
		}
		if all, err = measureNet(ctx, o, env, src, work); err != nil {
			return err
		}
		printTable(os.Stdout, all[0], all[1], o)
	}
	if o.bench && o.only != "net" && o.only != "tput" {
		if benches, err = runBenches(ctx, src, o.benchtime); err != nil {
			return err
		}
		if err := printBenches(os.Stdout, benches); err != nil {
			return err
		}
	}
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(map[string]any{"clients": all, "benchmarks": benches}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// readEnv reads the KEY=VALUE lines of testnet.env.
func readEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the network environment: %w", err)
	}
	env := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: no '=' in %q", path, i+1, line)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[k] = v
	}
	for _, k := range []string{"TESTNET_TORRC_FRAGMENT", "TESTNET_URL_MARKER", "TESTNET_MARKER", "TESTNET_URL_64M", "TESTNET_SHA256_64M", "TESTNET_HTTP_ADDR"} {
		if env[k] == "" {
			return nil, fmt.Errorf("%s: no %s", path, k)
		}
	}
	return env, nil
}

func measureNet(ctx context.Context, o options, env map[string]string, src, work string) ([]*results, error) {
	fragment, err := os.ReadFile(env["TESTNET_TORRC_FRAGMENT"])
	if err != nil {
		return nil, fmt.Errorf("reading the torrc fragment: %w", err)
	}
	tinyBin := o.tinytor
	if tinyBin == "" {
		// make build: the flags of the shipped binary (stripped, cold
		// packages without inlining), so CPU figures are the router's.
		tinyBin = filepath.Join(src, "bin", "tinytor")
		logf("building tinytor from %s (make build)", src)
		cmd := exec.CommandContext(ctx, "make", "-s", "build")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building tinytor: %v\n%s", err, out)
		}
	} else if tinyBin, err = filepath.Abs(tinyBin); err != nil {
		return nil, err
	}
	torBin, err := exec.LookPath(o.tor)
	if err != nil {
		return nil, fmt.Errorf("C tor: %w", err)
	}
	empty := filepath.Join(work, "empty-defaults-torrc")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		return nil, err
	}
	impls := []*impl{
		{name: "tinytor", args: func(torrc string) []string { return []string{tinyBin, "-f", torrc} }},
		{name: "C tor", args: func(torrc string) []string {
			return []string{torBin, "--defaults-torrc", empty, "-f", torrc}
		}},
	}
	res := []*results{{Name: impls[0].name}, {Name: impls[1].name}}
	for i, bin := range []string{tinyBin, torBin} {
		out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%s --version: %v: %s", bin, err, out)
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		res[i].Version = line + " (" + bin + ")"
	}
	dirName := []string{"tinytor", "ctor"}

	// (1) Bootstrap, interleaved so both see the same load.
	for r := 0; r < o.runs; r++ {
		for i, im := range impls {
			dir := filepath.Join(work, fmt.Sprintf("%s-boot%d", dirName[i], r))
			c, err := startClient(ctx, im, fragment, dir, false, o.timeout)
			if err != nil {
				return nil, fmt.Errorf("bootstrap run %d: %w", r+1, err)
			}
			hwm, _, merr := memStatus(c.pid())
			c.stop()
			if merr != nil {
				return nil, merr
			}
			res[i].Bootstrap = append(res[i].Bootstrap, c.bootstrap.Seconds())
			res[i].BootHWM = append(res[i].BootHWM, hwm)
			logf("bootstrap %d/%d %-7s %.3f s (VmHWM %.1f MiB)", r+1, o.runs, im.name, c.bootstrap.Seconds(), mib(hwm))
		}
	}

	// (2)-(5) The workload, both clients running, steps interleaved.
	if err := workload(ctx, o, env, fragment, impls, work, dirName, res); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return res, nil
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s compare: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func ms(s float64) float64 { return s * 1000 }

// median returns the median of v, or NaN for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianInt(v []int64) float64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return median(f)
}
