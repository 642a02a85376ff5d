// Package clientmetrics registers tinytor's client metrics on a
// metrics.Registry, for the MetricsPort.
//
// C tor's MetricsPort exports relay and onion-service metrics (tor_relay_*,
// tor_hs_*) and next to nothing for a client, so tinytor names its client
// metrics tinytor_*:
//
//	tinytor_bootstrap_percent              gauge    bootstrap progress, 0..100
//	tinytor_circuits_built_total           counter  circuits completed
//	tinytor_circuits_failed_total          counter  circuit builds that failed
//	tinytor_circuits_open                  gauge    circuits built and not closed
//	tinytor_circuits_building              gauge    circuits being built
//	tinytor_circuit_build_seconds          histogram time to build a circuit
//	tinytor_circuit_build_timeout_seconds  gauge    circuit build timeout in force (learned, or 60 s / CircuitBuildTimeout)
//	tinytor_streams_total{outcome}         counter  streams by outcome: succeeded, failed
//	tinytor_stream_failures_total{reason}  counter  failed streams by END reason (MISC, TIMEOUT, ...)
//	tinytor_streams_open                   gauge    streams open
//	tinytor_bytes_read_total               counter  bytes read from relays (TLS included)
//	tinytor_bytes_written_total            counter  bytes written to relays (TLS included)
//	tinytor_channels_open                  gauge    channels (TLS connections to relays) open
//	tinytor_channel_failures_total         counter  channel attempts that failed
//	tinytor_guards_sampled                 gauge    entry guards in the guard sample
//	tinytor_guards_confirmed               gauge    sampled guards used successfully
//	tinytor_guards_primary                 gauge    primary entry guards
//	tinytor_guards_unreachable             gauge    sampled guards marked unreachable
//	tinytor_circuits_cc                    gauge    open exit circuits with congestion control (proposal 324)
//	tinytor_circuits_fixed_window          gauge    open exit circuits with the fixed SENDME windows
//	tinytor_cc_cwnd_cells                  gauge    mean congestion window of the circuits with congestion control
//	tinytor_cc_rtt_seconds                 gauge    mean smoothed RTT of the circuits with congestion control
//	tinytor_cc_rtt_min_seconds             gauge    lowest RTT seen on them
//	tinytor_flow_xoff_sent                 gauge    XOFF cells sent on the open circuits (also _xon_sent,
//	                                                _xoff_received, _xon_received)
//	tinytor_bridges_configured             gauge    Bridge lines in use (UseBridges 1)
//	tinytor_bridges_usable                 gauge    bridges with a verified descriptor
//	tinytor_transports_running             gauge    pluggable transports whose method is usable
//	tinytor_transport_restarts_total       counter  managed transports restarted after they died
//	tinytor_dir_consensus_fetches_total    counter  consensus documents downloaded
//	tinytor_dir_microdesc_fetches_total    counter  microdescriptors downloaded
//	tinytor_dir_microdescs_rejected_total  counter  malformed microdescriptors skipped in downloads
//	tinytor_dir_cert_fetches_total         counter  authority certificates downloaded
//	tinytor_dir_consensus_diffs_total      counter  consensus diffs applied (instead of a full consensus)
//	tinytor_dir_diff_fallbacks_total       counter  consensus diffs refused; the full consensus was fetched instead
//	tinytor_cell_pool_capacity             gauge    cells the pool may ever hold (MaxMemInQueues / 600 on a board)
//	tinytor_cell_pool_cells_in_use         gauge    cells taken from the pool and not yet returned
//	tinytor_cell_pool_cells_peak           gauge    highest tinytor_cell_pool_cells_in_use so far
//	tinytor_cell_pool_waiting              gauge    reads and writes waiting for a free cell now
//	tinytor_cell_pool_waits_total          counter  reads and writes that had to wait for a free cell (back-pressure)
//	tinytor_cell_pool_reclaims_total       counter  streams closed because their readers held a full pool
//
// plus the Go runtime metrics of metrics.RegisterGoRuntime (memory,
// goroutines, GC).
package clientmetrics

import (
	"strings"
	"time"

	"tinytor/tor"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/guard"
	"tinytor/tor/metrics"
	"tinytor/tor/pt"
)

// BuildTimeBuckets are the upper bounds, in seconds, of
// tinytor_circuit_build_seconds.
var BuildTimeBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}

// scraped is a metric whose value the client keeps; it is read at scrape
// time (see value).
type scraped int

const (
	bootstrapPercent scraped = iota
	circuitsBuilt
	circuitsFailed
	circuitsOpen
	circuitsBuilding
	circuitBuildTimeout
	streamsOpen
	bytesRead
	bytesWritten
	channelsOpen
	guardsSampled
	guardsConfirmed
	guardsPrimary
	guardsUnreachable
	circuitsCC
	circuitsFixedWindow
	ccCwnd
	ccRTT
	ccMinRTT
	xoffSent
	xonSent
	xoffReceived
	xonReceived
	bridgesConfigured
	bridgesUsable
	transportsRunning
	transportRestarts
	consensusFetches
	microdescFetches
	microdescsRejected
	certFetches
	consensusBytes
	microdescBytes
	consensusDiffs
	diffFallbacks
	certBytes
	poolCapacity
	poolInUse
	poolPeak
	poolWaiting
	poolWaits
	poolReclaims
	numScraped
)

// scrapedInfo describes the scraped metrics: counter (else gauge), name
// and help text.
var scrapedInfo = [numScraped]struct {
	counter    bool
	name, help string
}{
	bootstrapPercent:    {false, "tinytor_bootstrap_percent", "Bootstrap progress in percent."},
	circuitsBuilt:       {true, "tinytor_circuits_built_total", "Circuits completed."},
	circuitsFailed:      {true, "tinytor_circuits_failed_total", "Circuit builds that failed."},
	circuitsOpen:        {false, "tinytor_circuits_open", "Circuits built and not yet closed."},
	circuitsBuilding:    {false, "tinytor_circuits_building", "Circuits being built."},
	circuitBuildTimeout: {false, "tinytor_circuit_build_timeout_seconds", "Circuit build timeout in force (learned from build times, or the initial or configured value)."},
	streamsOpen:         {false, "tinytor_streams_open", "Streams open."},
	bytesRead:           {true, "tinytor_bytes_read_total", "Bytes read from relays, TLS included."},
	bytesWritten:        {true, "tinytor_bytes_written_total", "Bytes written to relays, TLS included."},
	channelsOpen:        {false, "tinytor_channels_open", "Channels (TLS connections to relays) open."},
	guardsSampled:       {false, "tinytor_guards_sampled", "Entry guards in the guard sample."},
	guardsConfirmed:     {false, "tinytor_guards_confirmed", "Sampled guards that have been used successfully."},
	guardsPrimary:       {false, "tinytor_guards_primary", "Primary entry guards."},
	guardsUnreachable:   {false, "tinytor_guards_unreachable", "Sampled guards currently marked unreachable."},
	circuitsCC:          {false, "tinytor_circuits_cc", "Open exit circuits with congestion control (proposal 324)."},
	circuitsFixedWindow: {false, "tinytor_circuits_fixed_window", "Open exit circuits with the fixed SENDME windows."},
	ccCwnd:              {false, "tinytor_cc_cwnd_cells", "Mean congestion window of the open circuits with congestion control, in cells."},
	ccRTT:               {false, "tinytor_cc_rtt_seconds", "Mean smoothed RTT of the open circuits with congestion control."},
	ccMinRTT:            {false, "tinytor_cc_rtt_min_seconds", "Lowest RTT seen on the open circuits with congestion control."},
	xoffSent:            {false, "tinytor_flow_xoff_sent", "XOFF cells sent on the open circuits."},
	xonSent:             {false, "tinytor_flow_xon_sent", "XON cells sent on the open circuits."},
	xoffReceived:        {false, "tinytor_flow_xoff_received", "XOFF cells received on the open circuits."},
	xonReceived:         {false, "tinytor_flow_xon_received", "XON cells received on the open circuits."},
	bridgesConfigured:   {false, "tinytor_bridges_configured", "Bridge lines in use (UseBridges 1)."},
	bridgesUsable:       {false, "tinytor_bridges_usable", "Bridges with a verified descriptor."},
	transportsRunning:   {false, "tinytor_transports_running", "Pluggable transports whose method is usable."},
	transportRestarts:   {true, "tinytor_transport_restarts_total", "Managed pluggable transports restarted after they died."},
	consensusFetches:    {true, "tinytor_dir_consensus_fetches_total", "Consensus documents downloaded."},
	microdescFetches:    {true, "tinytor_dir_microdesc_fetches_total", "Microdescriptors downloaded."},
	microdescsRejected:  {true, "tinytor_dir_microdescs_rejected_total", "Malformed microdescriptors skipped in downloads (each logged at warn)."},
	certFetches:         {true, "tinytor_dir_cert_fetches_total", "Authority certificates downloaded."},
	consensusBytes:      {true, "tinytor_dir_consensus_bytes_total", "Bytes fetched for consensus documents (and diffs), HTTP headers and compression included."},
	microdescBytes:      {true, "tinytor_dir_microdesc_bytes_total", "Bytes fetched for microdescriptors, HTTP headers and compression included."},
	consensusDiffs:      {true, "tinytor_dir_consensus_diffs_total", "Consensus diffs applied instead of downloading the full consensus."},
	diffFallbacks:       {true, "tinytor_dir_diff_fallbacks_total", "Consensus diffs that could not be used; the full consensus was fetched instead."},
	certBytes:           {true, "tinytor_dir_cert_bytes_total", "Bytes fetched for authority certificates, HTTP headers and compression included."},
	poolCapacity:        {false, "tinytor_cell_pool_capacity", "Cells the cell pool may ever hold (the queued-cells cap)."},
	poolInUse:           {false, "tinytor_cell_pool_cells_in_use", "Cells taken from the cell pool and not yet returned."},
	poolPeak:            {false, "tinytor_cell_pool_cells_peak", "Highest number of cells in use so far."},
	poolWaiting:         {false, "tinytor_cell_pool_waiting", "Reads and writes waiting for a free cell now."},
	poolWaits:           {true, "tinytor_cell_pool_waits_total", "Reads and writes that had to wait for a free cell (back-pressure)."},
	poolReclaims:        {true, "tinytor_cell_pool_reclaims_total", "Streams closed because their readers held a full cell pool."},
}

// value reads m from c.
func (m scraped) value(c *tor.Client) float64 {
	switch m {
	case bootstrapPercent:
		return float64(c.Status().Phase.Percent)
	case circuitsOpen, circuitsBuilding:
		return countCircuits(c, m == circuitsOpen)
	case circuitBuildTimeout:
		d, _ := c.CircuitBuildTimeout()
		return d.Seconds()
	case streamsOpen:
		return float64(len(c.Streams()))
	case bytesRead, bytesWritten:
		r, w := c.Traffic()
		if m == bytesWritten {
			r = w
		}
		return float64(r)
	case channelsOpen:
		return countChannels(c)
	case guardsSampled, guardsConfirmed, guardsPrimary, guardsUnreachable:
		return countGuards(c, m)
	case circuitsFixedWindow:
		return float64(len(c.CongestionStats())) - ccStat(c, circuitsCC)
	case ccMinRTT:
		return minRTT(c)
	case circuitsCC, ccCwnd, ccRTT, xoffSent, xonSent, xoffReceived, xonReceived:
		return ccStat(c, m)
	case bridgesConfigured:
		return float64(len(c.Bridges()))
	case bridgesUsable:
		return countBridges(c)
	case transportsRunning, transportRestarts:
		return countTransports(c, m == transportRestarts)
	case poolCapacity, poolInUse, poolPeak, poolWaiting, poolWaits, poolReclaims:
		p := c.CellPool()
		return float64([...]int64{int64(p.Capacity), int64(p.InUse), int64(p.Peak), int64(p.Waiting), int64(p.Waits), int64(p.Reclaims)}[m-poolCapacity])
	}
	s := c.Stats()
	return float64([...]int64{
		circuitsBuilt:      s.CircuitsBuilt,
		circuitsFailed:     s.CircuitsFailed,
		consensusFetches:   s.ConsensusFetches,
		microdescFetches:   s.MicrodescFetches,
		microdescsRejected: s.MicrodescsRejected,
		certFetches:        s.CertFetches,
		consensusBytes:     s.ConsensusBytes,
		microdescBytes:     s.MicrodescBytes,
		consensusDiffs:     s.ConsensusDiffs,
		diffFallbacks:      s.ConsensusDiffFallbacks,
		certBytes:          s.CertBytes,
	}[m])
}

// Register adds the client's metrics to reg. Values kept by the client
// are read at scrape time; the others are counted from the client's
// events until stop is called.
func Register(reg *metrics.Registry, c *tor.Client) (stop func(), err error) {
	ec, err := register(reg, c)
	if err != nil {
		return nil, errfmt.Errorf("clientmetrics: %w", err)
	}
	return c.Events().Subscribe(ec.observe), nil
}

// register adds the metrics and returns the counters fed by events.
func register(reg *metrics.Registry, c *tor.Client) (*eventCounters, error) {
	for m, info := range scrapedInfo {
		fn := func() float64 { return scraped(m).value(c) }
		newFunc := reg.NewGaugeFunc
		if info.counter {
			newFunc = reg.NewCounterFunc
		}
		if err := newFunc(info.name, info.help, fn); err != nil {
			return nil, err
		}
	}
	ec := &eventCounters{}
	var err error
	if ec.buildTime, err = reg.NewHistogram("tinytor_circuit_build_seconds", "Time to build a circuit.", BuildTimeBuckets); err != nil {
		return nil, err
	}
	streams, err := reg.NewCounterVec("tinytor_streams_total", "Streams by outcome.", "outcome")
	if err != nil {
		return nil, err
	}
	if ec.streamFailures, err = reg.NewCounterVec("tinytor_stream_failures_total", "Failed streams by END reason.", "reason"); err != nil {
		return nil, err
	}
	if ec.chanFailures, err = reg.NewCounter("tinytor_channel_failures_total", "Channel attempts that failed."); err != nil {
		return nil, err
	}
	if ec.succeeded, err = streams.With("succeeded"); err != nil {
		return nil, err
	}
	if ec.failed, err = streams.With("failed"); err != nil {
		return nil, err
	}
	return ec, metrics.RegisterGoRuntime(reg)
}

// eventCounters are the metrics counted from client events.
type eventCounters struct {
	buildTime         *metrics.Histogram
	succeeded, failed *metrics.Counter
	streamFailures    *metrics.CounterVec
	chanFailures      *metrics.Counter
}

func (ec *eventCounters) observe(ev event.Event) {
	switch e := ev.(type) {
	case *event.Circuit:
		if e.Status == "BUILT" {
			ec.buildTime.Observe(e.BuildTime.Seconds())
		}
	case *event.Stream:
		if e.Resolve {
			break // lookups are counted by the DNSPort (tinytor_dns_queries_total)
		}
		switch e.Status {
		case "SUCCEEDED":
			ec.succeeded.Inc()
		case "FAILED":
			ec.failed.Inc()
			if r, err := ec.streamFailures.With(reasonLabel(e.Reason)); err == nil {
				r.Inc()
			}
		}
	case *event.Channel:
		if e.Status == "FAILED" {
			ec.chanFailures.Inc()
		}
	}
}

// reasonLabel keeps the label set small and valid: END reasons are upper
// case words.
func reasonLabel(r string) string {
	if r == "" || len(r) > 32 || strings.IndexFunc(r, func(c rune) bool { return !(c >= 'A' && c <= 'Z' || c == '_') }) >= 0 {
		return "OTHER"
	}
	return r
}

func countCircuits(c *tor.Client, built bool) float64 {
	n := 0
	for _, ci := range c.Circuits() {
		if (ci.Status == "BUILT") == built {
			n++
		}
	}
	return float64(n)
}

// countGuards counts the guards of the sample that m counts.
func countGuards(c *tor.Client, m scraped) float64 {
	n := 0
	for _, g := range c.Guards() {
		switch {
		case m == guardsSampled,
			m == guardsConfirmed && g.ConfirmedIdx >= 0,
			m == guardsPrimary && g.Primary,
			m == guardsUnreachable && g.Reachable == guard.No:
			n++
		}
	}
	return float64(n)
}

func countChannels(c *tor.Client) float64 {
	n := 0
	for _, ch := range c.Channels() {
		if ch.Status == "CONNECTED" {
			n++
		}
	}
	return float64(n)
}

func countBridges(c *tor.Client) float64 {
	n := 0
	for _, b := range c.Bridges() {
		if b.HaveDescriptor {
			n++
		}
	}
	return float64(n)
}

// countTransports counts the running transports, or with restarts the
// restarts of the managed programs (one program may provide several
// transports).
func countTransports(c *tor.Client, restarts bool) float64 {
	n := 0
	seen := map[string]bool{}
	for _, t := range c.Transports() {
		switch {
		case restarts && t.Managed && !seen[t.Path]:
			seen[t.Path] = true
			n += t.Restarts
		case !restarts && t.State == pt.Running:
			n++
		}
	}
	return float64(n)
}

// ccStat sums the value m counts over the open circuits with congestion
// control (1 each for circuitsCC), or, for the mean window and RTT, their
// average (0 with none).
func ccStat(c *tor.Client, m scraped) float64 {
	sum, n := 0.0, 0
	for _, s := range c.CongestionStats() {
		if !s.Enabled {
			continue
		}
		n++
		switch m {
		case circuitsCC:
			sum++
		case ccCwnd:
			sum += float64(s.Cwnd)
		case ccRTT:
			sum += s.EWMARTT.Seconds()
		case xoffSent:
			sum += float64(s.XoffSent)
		case xonSent:
			sum += float64(s.XonSent)
		case xoffReceived:
			sum += float64(s.XoffReceived)
		case xonReceived:
			sum += float64(s.XonReceived)
		}
	}
	if (m == ccCwnd || m == ccRTT) && n > 0 {
		return sum / float64(n)
	}
	return sum
}

// minRTT is the lowest RTT seen on the open circuits with congestion
// control (0 with none).
func minRTT(c *tor.Client) float64 {
	var low time.Duration
	for _, s := range c.CongestionStats() {
		if s.Enabled && s.MinRTT > 0 && (low == 0 || s.MinRTT < low) {
			low = s.MinRTT
		}
	}
	return low.Seconds()
}
