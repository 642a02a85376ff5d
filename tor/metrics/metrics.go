// Package metrics is a small Prometheus registry and exposition server
// (text format 0.0.4) with no global state: counters, gauges and
// histograms, optionally labelled, updated with atomics, plus values read
// at scrape time. The HTTP side answers GET /metrics without net/http.
package metrics

import (
	"errors"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"tinytor/tor/lock"
)

// Kind is a metric family type.
type Kind int

// Metric family types.
const (
	KindCounter Kind = iota
	KindGauge
	KindHistogram
)

func (k Kind) String() string {
	if k < 0 || k > KindHistogram {
		return "untyped"
	}
	return [...]string{"counter", "gauge", "histogram"}[k]
}

// Registry holds metric families. It is safe for concurrent use.
type Registry struct {
	mu    lock.Mutex
	fams  map[string]*family
	taken map[string]bool // every series name, including histogram suffixes
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{fams: map[string]*family{}, taken: map[string]bool{}}
}

// family is one metric name with its children (one per label set).
type family struct {
	name, help string
	kind       Kind
	labels     []string
	buckets    []float64

	mu       sync.RWMutex
	children map[string]*child // key: label values joined by 0xff
	fn       func() float64    // for GaugeFunc/CounterFunc
}

// child is one series (or histogram) of a family.
type child struct {
	values []string
	bits   atomic.Uint64 // counter: integer count; gauge: float64 bits
	hist   *Histogram
}

// ErrDuplicate is returned when a metric name is registered twice.
var ErrDuplicate = errors.New("metric already registered")

// Error reports a metric that cannot be registered, or label values that
// do not fit it: "metric <Metric>: <Msg>[: <Err>]".
type Error struct {
	Metric string
	Msg    string
	Err    error // ErrDuplicate or nil
}

func (e *Error) Error() string {
	s := "metric " + e.Metric + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

func validName(s string, label bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case c == ':' && !label:
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return !label || !strings.HasPrefix(s, "__")
}

// seriesSuffixes name the series of a family: the name itself, and for
// histograms the name with these suffixes too.
var seriesSuffixes = [...]string{"", "_bucket", "_sum", "_count"}

func (r *Registry) register(f *family) error {
	if msg := f.check(); msg != "" {
		return &Error{Metric: f.name, Msg: msg}
	}
	f.children = map[string]*child{}
	r.mu.Lock()
	defer r.mu.Unlock()
	suffixes := seriesSuffixes[:1]
	if f.kind == KindHistogram {
		suffixes = seriesSuffixes[:]
	}
	for _, sfx := range suffixes {
		if r.taken[f.name+sfx] {
			return &Error{f.name, "series " + f.name + sfx, ErrDuplicate}
		}
	}
	for _, sfx := range suffixes {
		r.taken[f.name+sfx] = true
	}
	r.fams[f.name] = f
	return nil
}

// check validates the names, help text and buckets of f, and drops an
// explicit +Inf bucket. It returns what is wrong, or "".
func (f *family) check() string {
	if !validName(f.name, false) {
		return "name must match [a-zA-Z_:][a-zA-Z0-9_:]*"
	}
	if strings.TrimSpace(f.help) == "" {
		return "help text is required"
	}
	for i, l := range f.labels {
		switch {
		case !validName(l, true):
			return `label name "` + l + `": must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __`
		case f.kind == KindHistogram && l == "le":
			return `label name "le" is reserved for histograms`
		case slices.Contains(f.labels[:i], l):
			return `label "` + l + `" given twice`
		}
	}
	if f.kind != KindHistogram {
		return ""
	}
	if len(f.buckets) == 0 {
		return "histogram needs at least one bucket"
	}
	for i, b := range f.buckets {
		if math.IsNaN(b) || (i > 0 && b <= f.buckets[i-1]) {
			return "buckets must be increasing, got " + formatFloats(f.buckets)
		}
	}
	if math.IsInf(f.buckets[len(f.buckets)-1], +1) {
		f.buckets = f.buckets[:len(f.buckets)-1] // +Inf is implicit
	}
	return ""
}

// formatFloats formats s as %v does: "[0.1 1 +Inf]".
func formatFloats(s []float64) string {
	b := []byte{'['}
	for i, v := range s {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	return string(append(b, ']'))
}

// with returns the child for the label values, creating it.
func (f *family) with(values []string) (*child, error) {
	if len(values) != len(f.labels) {
		return nil, &Error{Metric: f.name, Msg: "got " + strconv.Itoa(len(values)) + " label values for labels [" + strings.Join(f.labels, " ") + "]"}
	}
	key := strings.Join(values, "\xff")
	f.mu.RLock()
	c := f.children[key]
	f.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c = f.children[key]; c == nil {
		c = &child{values: slices.Clone(values)}
		if f.kind == KindHistogram {
			c.hist = newHistogram(f.buckets)
		}
		f.children[key] = c
	}
	return c, nil
}

// Counter is a monotonically increasing integer counter.
type Counter struct{ c *child }

// Inc adds 1.
func (c *Counter) Inc() { c.c.bits.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.c.bits.Add(n) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.c.bits.Load() }

// Gauge is a value that goes up and down.
type Gauge struct{ c *child }

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.c.bits.Store(math.Float64bits(v)) }

// Add adds d (which may be negative).
func (g *Gauge) Add(d float64) {
	for {
		old := g.c.bits.Load()
		if g.c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Inc adds 1.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.Add(-1) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.c.bits.Load()) }

// Histogram counts observations in fixed buckets.
type Histogram struct {
	upper  []float64
	counts []atomic.Uint64 // per bucket, non-cumulative; last is +Inf
	sum    atomic.Uint64   // float64 bits
}

func newHistogram(b []float64) *Histogram {
	return &Histogram{upper: b, counts: make([]atomic.Uint64, len(b)+1)}
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v) // first bucket with upper >= v
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			break
		}
	}
}

// NewCounter registers an unlabelled counter. Counter names should end in
// "_total".
func (r *Registry) NewCounter(name, help string) (*Counter, error) {
	v, err := r.NewCounterVec(name, help)
	if err != nil {
		return nil, err
	}
	return v.With()
}

// NewGauge registers an unlabelled gauge.
func (r *Registry) NewGauge(name, help string) (*Gauge, error) {
	v, err := r.NewGaugeVec(name, help)
	if err != nil {
		return nil, err
	}
	return v.With()
}

// NewHistogram registers an unlabelled histogram with the given bucket
// upper bounds (increasing; +Inf is implicit).
func (r *Registry) NewHistogram(name, help string, buckets []float64) (*Histogram, error) {
	v, err := r.NewHistogramVec(name, help, buckets)
	if err != nil {
		return nil, err
	}
	return v.With()
}

// CounterVec is a counter family with labels.
type CounterVec struct{ f *family }

// GaugeVec is a gauge family with labels.
type GaugeVec struct{ f *family }

// HistogramVec is a histogram family with labels.
type HistogramVec struct{ f *family }

// NewCounterVec registers a counter family with the given label names.
func (r *Registry) NewCounterVec(name, help string, labels ...string) (*CounterVec, error) {
	f := &family{name: name, help: help, kind: KindCounter, labels: labels}
	if err := r.register(f); err != nil {
		return nil, err
	}
	return &CounterVec{f}, nil
}

// NewGaugeVec registers a gauge family with the given label names.
func (r *Registry) NewGaugeVec(name, help string, labels ...string) (*GaugeVec, error) {
	f := &family{name: name, help: help, kind: KindGauge, labels: labels}
	if err := r.register(f); err != nil {
		return nil, err
	}
	return &GaugeVec{f}, nil
}

// NewHistogramVec registers a histogram family with the given buckets and
// label names.
func (r *Registry) NewHistogramVec(name, help string, buckets []float64, labels ...string) (*HistogramVec, error) {
	f := &family{name: name, help: help, kind: KindHistogram, labels: labels, buckets: slices.Clone(buckets)}
	if err := r.register(f); err != nil {
		return nil, err
	}
	return &HistogramVec{f}, nil
}

// With returns the counter for the label values (in label-name order),
// creating it at zero. Callers on hot paths keep the result.
func (v *CounterVec) With(values ...string) (*Counter, error) {
	c, err := v.f.with(values)
	if err != nil {
		return nil, err
	}
	return &Counter{c}, nil
}

// With returns the gauge for the label values, creating it at zero.
func (v *GaugeVec) With(values ...string) (*Gauge, error) {
	c, err := v.f.with(values)
	if err != nil {
		return nil, err
	}
	return &Gauge{c}, nil
}

// With returns the histogram for the label values, creating it empty.
func (v *HistogramVec) With(values ...string) (*Histogram, error) {
	c, err := v.f.with(values)
	if err != nil {
		return nil, err
	}
	return c.hist, nil
}

// Delete removes the series with the given label values (e.g. a closed
// circuit's), reporting whether it existed.
func (v *GaugeVec) Delete(values ...string) bool { return v.f.delete(values) }

// Delete removes the series with the given label values.
func (v *CounterVec) Delete(values ...string) bool { return v.f.delete(values) }

func (f *family) delete(values []string) bool {
	key := strings.Join(values, "\xff")
	f.mu.Lock()
	_, ok := f.children[key]
	delete(f.children, key)
	f.mu.Unlock()
	return ok
}

// NewGaugeFunc registers a gauge whose value fn returns at scrape time. fn
// must be safe to call concurrently and must not block.
func (r *Registry) NewGaugeFunc(name, help string, fn func() float64) error {
	return r.registerFunc(KindGauge, name, help, fn)
}

// NewCounterFunc registers a counter whose value fn returns at scrape time.
func (r *Registry) NewCounterFunc(name, help string, fn func() float64) error {
	return r.registerFunc(KindCounter, name, help, fn)
}

func (r *Registry) registerFunc(kind Kind, name, help string, fn func() float64) error {
	if fn == nil {
		return &Error{Metric: name, Msg: "nil function"}
	}
	return r.register(&family{name: name, help: help, kind: kind, fn: fn})
}
