package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one benchmark run.
type Config struct {
	Proxy         string        // SOCKS5 proxy address
	URL           string        // http:// URL to GET
	Workers       int           // concurrent streams
	Count         int           // total requests (0: until Duration)
	Duration      time.Duration // run time (0: until Count)
	Timeout       time.Duration // per request
	UserPerWorker bool          // distinct SOCKS username per worker (isolation)
}

// Result is what a run measured.
type Result struct {
	Config   Config
	Elapsed  time.Duration
	OK       int
	Bytes    int64 // all bytes received, headers included
	Errors   map[string]int
	Connect  Latency // SOCKS handshake done, from start of request
	First    Latency // first response byte, from start of request
	Complete Latency // last byte, from start of request
}

// target is a parsed http:// URL.
type target struct {
	host string
	port uint16
	path string // request target, with query
	hdr  string // Host header value
}

func parseTarget(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("parsing URL: %w", err)
	}
	if u.Scheme != "http" {
		return target{}, fmt.Errorf("URL scheme %q: only http is supported", u.Scheme)
	}
	t := target{host: u.Hostname(), port: 80, path: u.RequestURI(), hdr: u.Host}
	if t.host == "" {
		return target{}, fmt.Errorf("URL %q has no host", raw)
	}
	if p := u.Port(); p != "" {
		if t.port, err = splitPort(p); err != nil {
			return target{}, fmt.Errorf("URL %q: %w", raw, err)
		}
	}
	return t, nil
}

// Run drives cfg.Workers concurrent streams until cfg.Count requests were
// made or cfg.Duration passed (whichever comes first), or ctx is done.
// Requests in flight at the end of the duration are finished and counted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	tgt, err := parseTarget(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Workers <= 0 {
		return nil, errors.New("need at least one worker")
	}
	if cfg.Count <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("need a request count or a duration")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	res := &Result{Config: cfg, Errors: map[string]int{}}
	var (
		mu      sync.Mutex // guards res.OK, res.Errors
		bytes   atomic.Int64
		started atomic.Int64
	)
	var until time.Time
	if cfg.Duration > 0 {
		until = time.Now().Add(cfg.Duration)
	}
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, pass := "", ""
			if cfg.UserPerWorker {
				user, pass = fmt.Sprintf("bench-%d-%d", os.Getpid(), w), "x"
			}
			for ctx.Err() == nil {
				if cfg.Count > 0 && started.Add(1) > int64(cfg.Count) {
					return
				}
				if !until.IsZero() && !time.Now().Before(until) {
					return
				}
				n, err := fetch(ctx, cfg, tgt, user, pass, res)
				bytes.Add(n)
				mu.Lock()
				if err != nil {
					res.Errors[errorKind(err)]++
				} else {
					res.OK++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(begin)
	res.Bytes = bytes.Load()
	return res, nil
}

// fetch makes one HTTP/1.0 GET through the proxy, recording latencies.
func fetch(ctx context.Context, cfg Config, tgt target, user, pass string, res *Result) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	start := time.Now()
	c, err := dialSOCKS5(ctx, cfg.Proxy, tgt.host, tgt.port, user, pass)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	res.Connect.Add(time.Since(start))
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := "GET " + tgt.path + " HTTP/1.0\r\nHost: " + tgt.hdr +
		"\r\nUser-Agent: tinytor-bench\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return 0, ctxErr(ctx, fmt.Errorf("writing request: %w", err))
	}
	br := bufio.NewReaderSize(c, 4096)
	if _, err := br.Peek(1); err != nil {
		return 0, ctxErr(ctx, fmt.Errorf("waiting for first byte: %w", err))
	}
	res.First.Add(time.Since(start))
	status, err := br.ReadString('\n')
	n := int64(len(status))
	if err != nil {
		return n, ctxErr(ctx, fmt.Errorf("reading status line: %w", err))
	}
	m, err := io.Copy(io.Discard, br)
	n += m
	if err != nil {
		return n, ctxErr(ctx, fmt.Errorf("reading response: %w", err))
	}
	res.Complete.Add(time.Since(start))
	if code := statusCode(status); code < 200 || code > 299 {
		return n, &statusError{code: code, line: strings.TrimSpace(status)}
	}
	return n, nil
}

// statusError is a non-2xx HTTP answer.
type statusError struct {
	code int
	line string
}

// Error returns the status line.
func (e *statusError) Error() string { return "HTTP status: " + e.line }

// statusCode extracts the code from "HTTP/1.x NNN reason" (0 if malformed).
func statusCode(line string) int {
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return 0
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return 0
	}
	return n
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// errorKind groups errors for the report.
func errorKind(err error) string {
	var re *ReplyError
	var se *statusError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return re.Error()
	case errors.As(err, &se):
		if se.code == 0 {
			return "HTTP: malformed status line"
		}
		return "HTTP status " + strconv.Itoa(se.code)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case strings.Contains(err.Error(), "dialing proxy"):
		return "proxy unreachable"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection closed early"
	}
	return "other: " + err.Error()
}

// Print writes the report.
func (r *Result) Print(w io.Writer) {
	failed := 0
	for _, n := range r.Errors {
		failed += n
	}
	secs := r.Elapsed.Seconds()
	mib := float64(r.Bytes) / (1 << 20)
	fmt.Fprintf(w, "%d requests for %s via %s, %d workers, in %.2fs\n",
		r.OK+failed, r.Config.URL, r.Config.Proxy, r.Config.Workers, secs)
	fmt.Fprintf(w, "ok %d, failed %d\n", r.OK, failed)
	rate := 0.0
	if secs > 0 {
		rate = mib / secs
	}
	fmt.Fprintf(w, "received %d bytes (%.2f MiB), %.3f MiB/s, %.1f requests/s\n",
		r.Bytes, mib, rate, float64(r.OK)/max(secs, 1e-9))
	if failed > 0 {
		fmt.Fprintln(w, "errors:")
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		slices.SortFunc(kinds, func(a, b string) int { return r.Errors[b] - r.Errors[a] })
		for _, k := range kinds {
			fmt.Fprintf(w, "  %6d  %s\n", r.Errors[k], k)
		}
	}
	fmt.Fprintf(w, "%-22s %7s %10s %10s %10s %10s\n", "latency (from start)", "n", "p50", "p95", "p99", "max")
	for _, row := range []struct {
		name string
		l    *Latency
	}{{"socks connect", &r.Connect}, {"first byte", &r.First}, {"complete", &r.Complete}} {
		fmt.Fprintf(w, "%-22s %7d %10s %10s %10s %10s\n", row.name, row.l.Count(),
			round(row.l.Percentile(50)), round(row.l.Percentile(95)), round(row.l.Percentile(99)), round(row.l.Max()))
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
