package metrics

import (
	"bytes"
	"errors"
	"math"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// must unwraps a registration result; registration errors are test bugs.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func testRegistry(t *testing.T) *Registry {
	r := NewRegistry()
	c := must(r.NewCounter("tinytor_circuits_built_total", "Circuits built."))
	c.Add(41)
	c.Inc()
	g := must(r.NewGauge("tinytor_bootstrap_percent", "Bootstrap progress.\nIn percent, with a \\ backslash."))
	g.Set(85)
	g.Add(-0.5)
	v := must(r.NewCounterVec("tinytor_streams_total", "Streams by result.", "result", "port"))
	must(v.With("ok", "443")).Add(3)
	must(v.With("failed", "80")).Inc()
	must(v.With("odd \"q\"\n\\", "1")).Inc()
	h := must(r.NewHistogram("tinytor_circuit_build_seconds", "Circuit build time.", []float64{0.5, 1, 2.5}))
	for _, x := range []float64{0.1, 0.5, 0.7, 3, 10} {
		h.Observe(x)
	}
	hv := must(r.NewHistogramVec("tinytor_rtt_seconds", "RTT.", []float64{0.1, math.Inf(1)}, "hop"))
	must(hv.With("1")).Observe(0.05)
	if err := r.NewGaugeFunc("tinytor_up", "Always 1.", func() float64 { return 1 }); err != nil {
		t.Fatal(err)
	}
	if err := r.NewCounterFunc("tinytor_ticks_total", "Ticks.", func() float64 { return 7 }); err != nil {
		t.Fatal(err)
	}
	return r
}

const wantExposition = `# HELP tinytor_bootstrap_percent Bootstrap progress.\nIn percent, with a \\ backslash.
# TYPE tinytor_bootstrap_percent gauge
tinytor_bootstrap_percent 84.5
# HELP tinytor_circuit_build_seconds Circuit build time.
# TYPE tinytor_circuit_build_seconds histogram
tinytor_circuit_build_seconds_bucket{le="0.5"} 2
tinytor_circuit_build_seconds_bucket{le="1"} 3
tinytor_circuit_build_seconds_bucket{le="2.5"} 3
tinytor_circuit_build_seconds_bucket{le="+Inf"} 5
tinytor_circuit_build_seconds_sum 14.3
tinytor_circuit_build_seconds_count 5
# HELP tinytor_circuits_built_total Circuits built.
# TYPE tinytor_circuits_built_total counter
tinytor_circuits_built_total 42
# HELP tinytor_rtt_seconds RTT.
# TYPE tinytor_rtt_seconds histogram
tinytor_rtt_seconds_bucket{hop="1",le="0.1"} 1
tinytor_rtt_seconds_bucket{hop="1",le="+Inf"} 1
tinytor_rtt_seconds_sum{hop="1"} 0.05
tinytor_rtt_seconds_count{hop="1"} 1
# HELP tinytor_streams_total Streams by result.
# TYPE tinytor_streams_total counter
tinytor_streams_total{result="failed",port="80"} 1
tinytor_streams_total{result="odd \"q\"\n\\",port="1"} 1
tinytor_streams_total{result="ok",port="443"} 3
# HELP tinytor_ticks_total Ticks.
# TYPE tinytor_ticks_total counter
tinytor_ticks_total 7
# HELP tinytor_up Always 1.
# TYPE tinytor_up gauge
tinytor_up 1
`

func TestExposition(t *testing.T) {
	r := testRegistry(t)
	var b bytes.Buffer
	n, err := r.WriteTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Errorf("WriteTo returned %d, wrote %d", n, b.Len())
	}
	if b.String() != wantExposition {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), wantExposition)
	}
}

func TestRegistrationErrors(t *testing.T) {
	r := NewRegistry()
	must(r.NewCounter("a_total", "help"))
	if _, err := r.NewGauge("a_total", "help"); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate: %v", err)
	}
	must(r.NewHistogram("h", "help", []float64{1}))
	if _, err := r.NewGauge("h_bucket", "help"); !errors.Is(err, ErrDuplicate) {
		t.Errorf("clash with histogram series: %v", err)
	}
	for _, bad := range []func() error{
		func() error { _, err := r.NewCounter("9bad", "help"); return err },
		func() error { _, err := r.NewCounter("bad-name", "help"); return err },
		func() error { _, err := r.NewCounterVec("x1", "help", "__reserved"); return err },
		func() error { _, err := r.NewCounterVec("x2", "help", "a", "a"); return err },
		func() error { _, err := r.NewHistogramVec("x3", "help", []float64{1}, "le"); return err },
		func() error { _, err := r.NewHistogram("x4", "help", []float64{2, 1}); return err },
		func() error { _, err := r.NewHistogram("x5", "help", nil); return err },
		func() error { return r.NewGaugeFunc("x6", "help", nil) },
		func() error { _, err := r.NewGauge("x7", " "); return err },
	} {
		if bad() == nil {
			t.Error("invalid registration accepted")
		}
	}
	v := must(r.NewCounterVec("v_total", "help", "a"))
	if _, err := v.With(); err == nil {
		t.Error("wrong number of label values accepted")
	}
}

func TestConcurrentUpdates(t *testing.T) {
	r := NewRegistry()
	c := must(r.NewCounter("c_total", "help"))
	g := must(r.NewGauge("g", "help"))
	h := must(r.NewHistogram("h", "help", []float64{1}))
	v := must(r.NewGaugeVec("gv", "help", "k"))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				c.Inc()
				g.Add(1)
				h.Observe(2)
				must(v.With("x")).Inc()
				if j%100 == 0 {
					r.WriteTo(&bytes.Buffer{})
				}
			}
		}()
	}
	wg.Wait()
	if c.Value() != 8000 || g.Value() != 8000 || must(v.With("x")).Value() != 8000 {
		t.Fatalf("lost updates: %d %v", c.Value(), g.Value())
	}
	var b bytes.Buffer
	r.WriteTo(&b)
	if !strings.Contains(b.String(), "h_count 8000\n") || !strings.Contains(b.String(), "h_sum 16000\n") {
		t.Fatalf("histogram lost updates:\n%s", b.String())
	}
	if !v.Delete("x") || v.Delete("x") {
		t.Fatal("Delete")
	}
}

func TestGoRuntime(t *testing.T) {
	r := NewRegistry()
	if err := RegisterGoRuntime(r); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	r.WriteTo(&b)
	for _, want := range []string{"go_goroutines ", "go_memory_total_bytes ", "go_gc_cycles_total ", "go_memory_heap_objects_bytes ", "go_gc_heap_goal_bytes "} {
		if !strings.Contains(b.String(), "\n"+want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "NaN") {
		t.Errorf("runtime metric unavailable:\n%s", b.String())
	}
}

// TestPromtool validates the exposition with Prometheus's own checker.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	r := testRegistry(t)
	if err := RegisterGoRuntime(r); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	r.WriteTo(&b)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &b
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	// And promtool must catch a broken exposition, so the check means something.
	cmd = exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader("# TYPE x counter\nx{a=\"1} 1\n")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted broken input: %s", out)
	}
}
