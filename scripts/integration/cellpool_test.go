package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCellPoolBackpressure downloads the 64 MiB file 50 times at once
// through tinytor with MaxMemInQueues 4 MB, on ten isolated circuits
// (SOCKS usernames), whose SOCKS clients first read slowly (64 KiB/s each
// for 20 s): the exits can then queue far more cells than the pool holds
// (ten circuit windows of 1000 cells against a capacity of 6990). The
// cell pool must stay at or under its capacity (MetricsPort), the
// process's peak resident memory (VmHWM: the Go heap and runtime, RssAnon,
// and the pages of the binary, RssFile) under the memory plan's process
// budget (the Go memory limit plus the program's code), and once the clients
// read at full speed every download must end with the right sha256.
func TestCellPoolBackpressure(t *testing.T) {
	n := RequireNetwork(t)
	metricsAddr := freePort(t)
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil, "MaxMemInQueues 4 MB", "MetricsPort "+metricsAddr.String())
	bootstrapped(t, p)
	pid := p.cmd.Process.Pid
	limit := budgetKiB(t, p)
	const (
		streams   = 50
		users     = 10
		slowRate  = 64 << 10 // bytes per second per client
		slowPhase = 20 * time.Second
	)
	wantCap := float64(4<<20) / 600
	u, err := url.Parse(n.File64M.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	fast := make(chan struct{}) // closed when the clients may read at full speed
	var slowBytes atomic.Int64
	errs := make([]error, streams)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = slowDownload(ctx, p, fmt.Sprintf("pool%d", i%users), u, uint16(port), n.File64M, slowRate, fast, &slowBytes)
		}()
	}

	// The slow phase: watch the pool while the exits run into it.
	var maxInUse, capacity, waits float64
	tick := time.NewTicker(500 * time.Millisecond) // polling gauges, which have no event
	end := time.After(slowPhase)
slow:
	for {
		select {
		case <-tick.C:
			m := scrape(t, metricsAddr)
			capacity = metricValue(t, m, "tinytor_cell_pool_capacity")
			maxInUse = max(maxInUse, metricValue(t, m, "tinytor_cell_pool_cells_in_use"))
			if peak := metricValue(t, m, "tinytor_cell_pool_cells_peak"); peak > capacity {
				t.Errorf("cell pool peak %v over its capacity %v", peak, capacity)
				break slow
			}
		case <-end:
			break slow
		}
	}
	tick.Stop()
	m := scrape(t, metricsAddr)
	peak := metricValue(t, m, "tinytor_cell_pool_cells_peak")
	waits = metricValue(t, m, "tinytor_cell_pool_waits_total")
	slowHWM, slowAnon, slowFile := vmStatus(t, pid, "VmHWM"), vmStatus(t, pid, "RssAnon"), vmStatus(t, pid, "RssFile")
	t.Logf("slow phase (%s at %d KiB/s per client): %.1f MiB read by the clients; pool capacity %.0f, peak %.0f, most in use seen %.0f, waits %.0f; VmHWM %d KiB; now RssAnon %d KiB, RssFile %d KiB",
		slowPhase, slowRate>>10, float64(slowBytes.Load())/(1<<20), capacity, peak, maxInUse, waits, slowHWM, slowAnon, slowFile)
	close(fast)
	fastStart := time.Now()
	wg.Wait()
	elapsed := time.Since(start)
	fastRate := (float64(streams*64) - float64(slowBytes.Load())/(1<<20)) / time.Since(fastStart).Seconds()

	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("download %d: %v", i, err)
			}
		}
	}
	m = scrape(t, metricsAddr)
	peak = metricValue(t, m, "tinytor_cell_pool_cells_peak")
	waits = metricValue(t, m, "tinytor_cell_pool_waits_total")
	reclaims := metricValue(t, m, "tinytor_cell_pool_reclaims_total")
	hwm, anon, file := vmStatus(t, pid, "VmHWM"), vmStatus(t, pid, "RssAnon"), vmStatus(t, pid, "RssFile")
	t.Logf("%d downloads of 64 MiB in %.1f s (%d failed; %.1f MiB/s in all once the clients read fast); pool capacity %.0f, peak %.0f, waits %.0f, reclaims %.0f; VmHWM %d KiB (%.1f MiB, %d KiB under the process budget of %d KiB); now RssAnon %d KiB, RssFile (the binary) %d KiB",
		streams, elapsed.Seconds(), failed, fastRate, capacity, peak, waits, reclaims, hwm, float64(hwm)/1024, limit-hwm, limit, anon, file)
	if int(capacity) != int(wantCap) {
		t.Errorf("pool capacity %v, want MaxMemInQueues/600 = %d", capacity, int(wantCap))
	}
	if peak > capacity {
		t.Errorf("cell pool peak %v over its capacity %v", peak, capacity)
	}
	if reclaims != 0 {
		t.Errorf("%v streams reclaimed: slow readers are not stopped readers", reclaims)
	}
	if hwm >= limit {
		t.Errorf("VmHWM %d KiB (RssAnon %d KiB, RssFile %d KiB now), want under the memory plan's process budget of %d KiB", hwm, anon, file, limit)
	}
}

// slowDownload fetches f as SOCKS user, reading the body at rate bytes per
// second until fast is closed, then at full speed, and checks its sha256.
func slowDownload(ctx context.Context, p *tinytorProc, user string, u *url.URL, port uint16, f File, rate int, fast <-chan struct{}, slowBytes *atomic.Int64) error {
	conn, err := dialSOCKS5Auth(ctx, p.socks, user, "x", u.Hostname(), port)
	if err != nil {
		return fmt.Errorf("SOCKS: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", u.RequestURI(), u.Host); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	// A small buffer, so that slow reading is slow on the socket too.
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("response: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %s", resp.Status)
	}
	h := sha256.New()
	const chunk = 4096
	interval := time.Second * chunk / time.Duration(rate)
	tick := time.NewTicker(interval) // the client's reading rate
	defer tick.Stop()
	buf := make([]byte, chunk)
	total := 0
slow:
	for {
		select {
		case <-fast:
			break slow
		case <-tick.C:
		}
		k, err := io.ReadFull(resp.Body, buf)
		h.Write(buf[:k])
		total += k
		slowBytes.Add(int64(k))
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("the download ended during the slow phase, after %d bytes", total)
		}
		if err != nil {
			return fmt.Errorf("slow read after %d bytes: %w", total, err)
		}
	}
	k, err := io.Copy(h, resp.Body)
	total += int(k)
	if err != nil {
		return fmt.Errorf("fast read after %d bytes: %w", total, err)
	}
	if got := h.Sum(nil); string(got) != string(f.SHA256[:]) {
		return fmt.Errorf("%d bytes with sha256 %x, want %x", total, got, f.SHA256)
	}
	return nil
}

// budgetKiB reads the process budget of the memory plan from tinytor's
// log ("Memory: ...; process budget 24.0 MiB: Go memory limit 15.8 MiB and
// 8.2 MiB for the program's code; GC 100%.").
func budgetKiB(t *testing.T, p *tinytorProc) int {
	t.Helper()
	re := regexp.MustCompile(`process budget ([0-9.]+) MiB`)
	for _, l := range p.log() {
		if m := re.FindStringSubmatch(l); m != nil {
			mib, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("tinytor: %s", l)
			return int(mib * 1024)
		}
	}
	t.Fatal("no memory plan in tinytor's log")
	return 0
}
