package metrics

import (
	"bufio"
	"io"
	"math"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
)

// ContentType is the media type of the exposition format WriteTo writes.
const ContentType = "text/plain; version=0.0.4"

// countingWriter counts bytes and keeps the first error.
type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) str(s string) {
	if c.err != nil {
		return
	}
	n, err := c.w.WriteString(s)
	c.n += int64(n)
	c.err = err
}

// sample writes one line of f: the series of c, the name suffix
// ("_bucket", "_sum", "_count" for histograms), le for buckets, and value.
func (w *countingWriter) sample(f *family, c *child, suffix, le, value string) {
	w.str(f.name + suffix + labelSet(f.labels, c.values, le) + " " + value + "\n")
}

// WriteTo writes every family in the Prometheus text format 0.0.4, sorted
// by metric name and then by label values, so output is stable.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := make([]*family, 0, len(r.fams))
	for _, f := range r.fams {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })

	cw := &countingWriter{w: bufio.NewWriter(w)}
	for _, f := range fams {
		f.write(cw)
	}
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	return cw.n, cw.err
}

func (f *family) write(w *countingWriter) {
	w.str("# HELP " + f.name + " " + escapeHelp(f.help) + "\n# TYPE " + f.name + " " + f.kind.String() + "\n")
	if f.fn != nil {
		w.str(f.name + " " + formatFloat(f.fn()) + "\n")
		return
	}
	f.mu.RLock()
	kids := make([]*child, 0, len(f.children))
	for _, c := range f.children {
		kids = append(kids, c)
	}
	f.mu.RUnlock()
	sort.Slice(kids, func(i, j int) bool {
		a, b := kids[i].values, kids[j].values
		for k := range a {
			if a[k] != b[k] {
				return a[k] < b[k]
			}
		}
		return false
	})
	for _, c := range kids {
		switch f.kind {
		case KindCounter:
			w.sample(f, c, "", "", strconv.FormatUint(c.bits.Load(), 10))
		case KindGauge:
			w.sample(f, c, "", "", formatFloat(math.Float64frombits(c.bits.Load())))
		case KindHistogram:
			h := c.hist
			// _count is the +Inf bucket, so the two always agree even
			// while observations race with the scrape.
			var cum uint64
			for i := range h.counts {
				cum += h.counts[i].Load()
				le := "+Inf"
				if i < len(h.upper) {
					le = formatFloat(h.upper[i])
				}
				w.sample(f, c, "_bucket", le, strconv.FormatUint(cum, 10))
			}
			w.sample(f, c, "_sum", "", formatFloat(math.Float64frombits(h.sum.Load())))
			w.sample(f, c, "_count", "", strconv.FormatUint(cum, 10))
		}
	}
}

// labelSet renders {a="x",b="y"} (with le last when given), or "".
func labelSet(names, values []string, le string) string {
	if le != "" {
		names = append(names[:len(names):len(names)], "le")
		values = append(values[:len(values):len(values)], le)
	}
	if len(names) == 0 {
		return ""
	}
	s := "{"
	for i, n := range names {
		if i > 0 {
			s += ","
		}
		s += n + `="` + escapeLabel(values[i]) + `"`
	}
	return s + "}"
}

// escapeHelp escapes backslash and line feed (text format 0.0.4).
func escapeHelp(s string) string { return escape(s, false) }

// escapeLabel escapes backslash, double quote and line feed.
func escapeLabel(s string) string { return escape(s, true) }

func escape(s string, quote bool) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' && c != '\n' && (c != '"' || !quote) {
			if b != nil {
				b = append(b, c)
			}
			continue
		}
		if b == nil {
			b = append(make([]byte, 0, len(s)+8), s[:i]...)
		}
		if c == '\n' {
			c = 'n'
		}
		b = append(b, '\\', c)
	}
	if b == nil {
		return s // the common case: no allocation
	}
	return string(b)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// RegisterGoRuntime adds gauges and counters for the Go runtime, read at
// scrape time through runtime/metrics: goroutines, memory mapped from the
// OS, live heap objects, heap goal and GC cycles.
func RegisterGoRuntime(r *Registry) error {
	for _, g := range goRuntimeMetrics {
		name := g.sample
		fn := func() float64 {
			if name == "" {
				return float64(runtime.NumGoroutine())
			}
			s := []metrics.Sample{{Name: name}}
			metrics.Read(s)
			switch s[0].Value.Kind() {
			case metrics.KindUint64:
				return float64(s[0].Value.Uint64())
			case metrics.KindFloat64:
				return s[0].Value.Float64()
			}
			return math.NaN()
		}
		if err := r.registerFunc(g.kind, g.name, g.help, fn); err != nil {
			return err
		}
	}
	return nil
}

// goRuntimeMetrics are the metrics of RegisterGoRuntime and the
// runtime/metrics samples they read ("" for the goroutine count).
var goRuntimeMetrics = []struct {
	kind               Kind
	name, help, sample string
}{
	{KindGauge, "go_memory_total_bytes", "All memory mapped by the Go runtime into the process.", "/memory/classes/total:bytes"},
	{KindGauge, "go_memory_heap_objects_bytes", "Memory occupied by live and not-yet-swept heap objects.", "/memory/classes/heap/objects:bytes"},
	{KindGauge, "go_gc_heap_goal_bytes", "Heap size target for the end of the GC cycle.", "/gc/heap/goal:bytes"},
	{KindGauge, "go_goroutines", "Number of goroutines that currently exist.", ""},
	{KindCounter, "go_gc_cycles_total", "Completed GC cycles.", "/gc/cycles/total:gc-cycles"},
}
