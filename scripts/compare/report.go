package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// printTable writes the side-by-side table; the ratio is tinytor / C tor.
func printTable(w io.Writer, t, c *results, o options) {
	fmt.Fprintf(w, "%s: %s\n%s: %s\n", t.Name, t.Version, c.Name, c.Version)
	if o.latency != "" {
		fmt.Fprintf(w, "network: one-way ORPort delay %s ms (a 3-hop circuit's round trip %s)\n", o.latency, rttLabel(o.latency))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "metric\t%s\t%s\tratio\t\n", t.Name, c.Name)
	row := func(name string, tv, cv float64, unit string, format string, extra func(*results) string) {
		cell := func(v float64, r *results) string {
			if math.IsNaN(v) {
				return "n/a"
			}
			s := fmt.Sprintf(format, v) + " " + unit
			if extra != nil {
				s += " " + extra(r)
			}
			return s
		}
		ratio := "n/a"
		if !math.IsNaN(tv) && !math.IsNaN(cv) && cv != 0 {
			ratio = fmt.Sprintf("%.2f", tv/cv)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, cell(tv, t), cell(cv, c), ratio)
	}
	rangeOf := func(v []float64, scale float64, f string) string {
		if len(v) == 0 {
			return ""
		}
		return fmt.Sprintf("("+f+"-"+f+")", slices.Min(v)*scale, slices.Max(v)*scale)
	}
	if len(t.Bootstrap)+len(c.Bootstrap) > 0 {
		row(fmt.Sprintf("bootstrap to 100%%, median of %d (min-max)", len(t.Bootstrap)),
			median(t.Bootstrap), median(c.Bootstrap), "s", "%.3f",
			func(r *results) string { return rangeOf(r.Bootstrap, 1, "%.2f") })
		row("VmHWM right after bootstrap, median", mib(int64(medianInt(t.BootHWM))), mib(int64(medianInt(c.BootHWM))), "MiB", "%.1f", nil)
	}
	if o.tputRuns > 0 {
		size := fmt.Sprintf("%.0f MiB", mib(o.size))
		if o.size < 1<<20 {
			size = fmt.Sprintf("%d B", o.size)
		}
		runs := func(get func(*results) []float64) func(*results) string {
			return func(r *results) string {
				v := get(r)
				return fmt.Sprintf("n=%d %s", len(v), rangeOf(v, 1, "%.2f"))
			}
		}
		row(fmt.Sprintf("throughput, one %s download, median", size), median(t.TputRates), median(c.TputRates), "MiB/s", "%.2f",
			runs(func(r *results) []float64 { return r.TputRates }))
		if o.parallel > 1 {
			how := "on one circuit (one SOCKS username)"
			if o.parallelMode == parallelIsolated {
				how = "on separate circuits (a SOCKS username each)"
			}
			row(fmt.Sprintf("throughput, %d x %s at once %s, aggregate, median", o.parallel, size, how),
				median(t.ParRates), median(c.ParRates), "MiB/s", "%.2f",
				runs(func(r *results) []float64 { return r.ParRates }))
		}
		row(fmt.Sprintf("TTFB of the %s downloads (new isolation), median", size), ms(median(t.TputTTFB)), ms(median(c.TputTTFB)), "ms", "%.0f",
			func(r *results) string {
				return fmt.Sprintf("n=%d %s", len(r.TputTTFB), rangeOf(r.TputTTFB, 1000, "%.0f"))
			})
		cpuPer := func(cpu float64, bytes int64) float64 {
			if bytes == 0 {
				return math.NaN()
			}
			return cpu / (float64(bytes) / (1 << 30))
		}
		row(fmt.Sprintf("CPU (utime+stime) per GiB, %s downloads", size), cpuPer(t.TputCPU, t.TputBytes), cpuPer(c.TputCPU, c.TputBytes), "s", "%.2f", nil)
		if o.parallel > 1 {
			row(fmt.Sprintf("CPU (utime+stime) per GiB, %d parallel", o.parallel), cpuPer(t.ParCPU, t.ParBytes), cpuPer(c.ParCPU, c.ParBytes), "s", "%.2f", nil)
		}
	}
	mem := func(r *results, v int64) float64 {
		if r.RSSErr != "" {
			return math.NaN()
		}
		return mib(v)
	}
	row("peak RSS (VmHWM) after the workload", mem(t, t.PeakRSS), mem(c, c.PeakRSS), "MiB", "%.1f", nil)
	row("VmRSS after the workload", mem(t, t.RSS), mem(c, c.RSS), "MiB", "%.1f", nil)
	perGiB := func(r *results) float64 {
		if r.DLBytes == 0 {
			return math.NaN()
		}
		return r.DLCPU / (float64(r.DLBytes) / (1 << 30))
	}
	if o.downloads > 0 {
		row(fmt.Sprintf("CPU (utime+stime) per GiB downloaded (%d x 64 MiB)", o.downloads), perGiB(t), perGiB(c), "s", "%.2f", nil)
		row("download rate per 64 MiB, median", median(t.DLRates), median(c.DLRates), "MiB/s", "%.1f", nil)
	}
	cnt := func(get func(*results) []float64) func(*results) string {
		return func(r *results) string {
			v := get(r)
			return fmt.Sprintf("n=%d %s", len(v), rangeOf(v, 1000, "%.0f"))
		}
	}
	if o.rounds > 0 && o.burst > 0 {
		newCirc := func(r *results) []float64 { return append(slices.Clone(r.TTFBPre), r.TTFBBuilt...) }
		row("TTFB, new isolation (first stream on its circuit), median", ms(median(newCirc(t))), ms(median(newCirc(c))), "ms", "%.1f",
			cnt(newCirc))
		row("TTFB, new isolation, prebuilt circuit, median", ms(median(t.TTFBPre)), ms(median(c.TTFBPre)), "ms", "%.1f",
			cnt(func(r *results) []float64 { return r.TTFBPre }))
		row("TTFB, new isolation, circuit built for it, median", ms(median(t.TTFBBuilt)), ms(median(c.TTFBBuilt)), "ms", "%.1f",
			cnt(func(r *results) []float64 { return r.TTFBBuilt }))
		row("TTFB, same isolation again (circuit reuse), median", ms(median(t.TTFBReuse)), ms(median(c.TTFBReuse)), "ms", "%.1f",
			cnt(func(r *results) []float64 { return r.TTFBReuse }))
	}
	onion := func(r *results) float64 {
		if r.OnionErr != "" {
			return math.NaN()
		}
		return ms(r.Onion)
	}
	if o.onion {
		row("onion, first request (cold) TTFB", onion(t), onion(c), "ms", "%.1f", nil)
	}
	tw.Flush()
	for _, r := range []*results{t, c} {
		if r.OnionErr != "" {
			fmt.Fprintf(w, "%s onion: not available: %s\n", r.Name, r.OnionErr)
		}
		if r.RSSErr != "" {
			fmt.Fprintf(w, "%s memory: %s\n", r.Name, r.RSSErr)
		}
		if r.TputErr != "" {
			fmt.Fprintf(w, "%s throughput download failed: %s\n", r.Name, r.TputErr)
		}
		if r.ParErr != "" {
			fmt.Fprintf(w, "%s parallel download failed: %s\n", r.Name, r.ParErr)
		}
		if len(r.ParCircuits) > 0 {
			fmt.Fprintf(w, "%s parallel runs: circuits used per run %v\n", r.Name, r.ParCircuits)
		}
		if r.DLErr != "" {
			fmt.Fprintf(w, "%s download failed: %s\n", r.Name, r.DLErr)
		}
		for _, e := range r.IsolationViolations {
			fmt.Fprintf(w, "%s ISOLATION VIOLATION: %s\n", r.Name, e)
		}
		for _, e := range r.TTFBErrors {
			fmt.Fprintf(w, "%s TTFB request failed: %s\n", r.Name, e)
		}
	}
	fmt.Fprintln(w)
}

// rttLabel gives a 3-hop circuit's round trip for a one-way delay of ms
// milliseconds on every ORPort connection (client-guard, guard-middle,
// middle-exit: 6 crossings).
func rttLabel(ms string) string {
	n, err := strconv.Atoi(ms)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%d ms", 6*n)
}

// benchLine is one result line of go test -bench.
type benchLine struct {
	Pkg     string
	Name    string
	Metrics map[string]float64 // unit -> value (ns/op, B/op, allocs/op, MB/s, custom)
	Line    string
}

// benchSpecs are the benchmarks the issue notes quote.
var benchSpecs = []struct{ pkg, pattern string }{
	{"./tor/cell/", "^BenchmarkReadCell$"},
	{"./tor/circuit/", "^BenchmarkCircuitReceive$"},
	{"./tor/circuit/relaycrypto/", "^BenchmarkRelay(De|En)crypt$"},
	{"./tor/dir/", "."},
}

// zeroAlloc lists the receive-path benchmarks that must not allocate.
var zeroAlloc = []string{"BenchmarkReadCell", "BenchmarkCircuitReceive", "BenchmarkRelayDecrypt"}

func runBenches(ctx context.Context, src, benchtime string) ([]benchLine, error) {
	var out []benchLine
	for _, s := range benchSpecs {
		logf("go test -run '^$' -bench '%s' -benchmem -benchtime %s %s", s.pattern, benchtime, s.pkg)
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", s.pattern, "-benchmem", "-benchtime", benchtime, s.pkg)
		cmd.Dir = src
		b, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go test -bench %s %s: %v\n%s", s.pattern, s.pkg, err, b)
		}
		lines, err := parseBench(s.pkg, b)
		if err != nil {
			return nil, err
		}
		if len(lines) == 0 {
			return nil, fmt.Errorf("go test -bench %s %s: no benchmark ran\n%s", s.pattern, s.pkg, b)
		}
		out = append(out, lines...)
	}
	return out, nil
}

// parseBench reads the Benchmark lines of go test output: a name, an
// iteration count, then value-unit pairs.
func parseBench(pkg string, b []byte) ([]benchLine, error) {
	var out []benchLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue // a log line that starts with a benchmark's name
		}
		bl := benchLine{Pkg: pkg, Name: f[0], Metrics: map[string]float64{}, Line: line}
		if i := strings.LastIndexByte(bl.Name, '-'); i > 0 {
			if _, err := strconv.Atoi(bl.Name[i+1:]); err == nil {
				bl.Name = bl.Name[:i] // the GOMAXPROCS suffix
			}
		}
		if (len(f)-2)%2 != 0 {
			return nil, fmt.Errorf("benchmark line %q: odd number of value/unit fields", line)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: value %q: %w", line, f[i], err)
			}
			bl.Metrics[f[i+1]] = v
		}
		out = append(out, bl)
	}
	return out, sc.Err()
}

// printBenches writes the benchmark lines and fails if a receive-path
// benchmark allocates.
func printBenches(w io.Writer, lines []benchLine) error {
	fmt.Fprintln(w, "Go benchmarks (go test -bench -benchmem):")
	pkg := ""
	for _, l := range lines {
		if l.Pkg != pkg {
			fmt.Fprintf(w, "%s\n", l.Pkg)
			pkg = l.Pkg
		}
		fmt.Fprintf(w, "  %s\n", l.Line)
	}
	var bad []string
	for _, name := range zeroAlloc {
		if !slices.ContainsFunc(lines, func(l benchLine) bool { return l.Name == name }) {
			bad = append(bad, name+" did not run")
		}
	}
	for _, l := range lines {
		if slices.Contains(zeroAlloc, l.Name) {
			a, ok := l.Metrics["allocs/op"]
			if !ok || a != 0 {
				bad = append(bad, fmt.Sprintf("%s: %v allocs/op", l.Name, a))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("receive path allocates: %s", strings.Join(bad, "; "))
	}
	fmt.Fprintf(w, "receive path (%s): 0 allocs per cell\n", strings.Join(zeroAlloc, ", "))
	return nil
}
