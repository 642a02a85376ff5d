package clientmetrics

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"tinytor/tor"
	"tinytor/tor/config"
	"tinytor/tor/event"
	"tinytor/tor/metrics"
)

func newClient(t *testing.T) *tor.Client {
	t.Helper()
	cfg, err := config.Parse([]byte("DataDirectory "+t.TempDir()+"\n"), "torrc", config.Env{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tor.New(tor.Config{Torrc: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func scrape(t *testing.T, reg *metrics.Registry) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := reg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestRegister(t *testing.T) {
	c := newClient(t)
	reg := metrics.NewRegistry()
	stop, err := Register(reg, c)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	out := scrape(t, reg)
	for _, want := range []string{
		"# TYPE tinytor_bootstrap_percent gauge\ntinytor_bootstrap_percent 0\n",
		"# TYPE tinytor_circuits_built_total counter\ntinytor_circuits_built_total 0\n",
		"tinytor_circuits_failed_total 0\n",
		"tinytor_circuits_open 0\n",
		"tinytor_streams_open 0\n",
		"tinytor_bytes_read_total 0\n",
		"tinytor_bytes_written_total 0\n",
		"tinytor_channels_open 0\n",
		"tinytor_dir_consensus_fetches_total 0\n",
		"tinytor_dir_microdesc_fetches_total 0\n",
		"# TYPE tinytor_dir_microdescs_rejected_total counter\ntinytor_dir_microdescs_rejected_total 0\n",
		"tinytor_dir_cert_fetches_total 0\n",
		"# TYPE tinytor_dir_consensus_diffs_total counter\ntinytor_dir_consensus_diffs_total 0\n",
		"# TYPE tinytor_dir_diff_fallbacks_total counter\ntinytor_dir_diff_fallbacks_total 0\n",
		"# TYPE tinytor_cell_pool_capacity gauge\ntinytor_cell_pool_capacity 8192\n",
		"tinytor_cell_pool_cells_in_use 0\n",
		"tinytor_cell_pool_cells_peak 0\n",
		"tinytor_cell_pool_waiting 0\n",
		"# TYPE tinytor_cell_pool_waits_total counter\ntinytor_cell_pool_waits_total 0\n",
		"tinytor_cell_pool_reclaims_total 0\n",
		"tinytor_guards_sampled 0\n",
		"tinytor_guards_primary 0\n",
		"tinytor_streams_total{outcome=\"succeeded\"} 0\n",
		"tinytor_streams_total{outcome=\"failed\"} 0\n",
		"# TYPE tinytor_circuit_build_seconds histogram\n",
		"tinytor_circuit_build_seconds_count 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "go_") {
		t.Errorf("no Go runtime metrics:\n%s", out)
	}
	if _, err := Register(reg, c); !errors.Is(err, metrics.ErrDuplicate) {
		t.Errorf("second Register: %v, want ErrDuplicate", err)
	}
}

func TestObserve(t *testing.T) {
	reg := metrics.NewRegistry()
	c := newClient(t)
	stop, err := Register(reg, c)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	// Reach the counters through a second registry's fresh families.
	reg2 := metrics.NewRegistry()
	bt, _ := reg2.NewHistogram("b_seconds", "h", BuildTimeBuckets)
	sv, _ := reg2.NewCounterVec("s_total", "h", "outcome")
	fv, _ := reg2.NewCounterVec("f_total", "h", "reason")
	cf, _ := reg2.NewCounter("c_total", "h")
	ok, _ := sv.With("succeeded")
	bad, _ := sv.With("failed")
	ec := &eventCounters{buildTime: bt, succeeded: ok, failed: bad, streamFailures: fv, chanFailures: cf}
	ec.observe(&event.Circuit{Status: "BUILT", BuildTime: 1500 * time.Millisecond})
	ec.observe(&event.Circuit{Status: "LAUNCHED"})
	ec.observe(&event.Stream{Status: "SUCCEEDED"})
	ec.observe(&event.Stream{Status: "SUCCEEDED"})
	ec.observe(&event.Stream{Status: "FAILED", Reason: "TIMEOUT"})
	ec.observe(&event.Stream{Status: "FAILED", Reason: "bad\"label"})
	ec.observe(&event.Channel{Status: "FAILED"})
	ec.observe(event.Bootstrap{})
	out := scrape(t, reg2)
	for _, want := range []string{
		"b_seconds_bucket{le=\"1\"} 0\n", "b_seconds_bucket{le=\"2\"} 1\n", "b_seconds_count 1\n", "b_seconds_sum 1.5\n",
		"s_total{outcome=\"succeeded\"} 2\n", "s_total{outcome=\"failed\"} 2\n",
		"f_total{reason=\"TIMEOUT\"} 1\n", "f_total{reason=\"OTHER\"} 1\n", "c_total 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q:\n%s", want, out)
		}
	}
}
