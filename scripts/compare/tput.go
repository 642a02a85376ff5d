package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Parallel modes: how the -parallel streams of one run are isolated.
const (
	parallelOneCircuit = "circuit"   // one SOCKS username: the streams share a circuit
	parallelIsolated   = "isolation" // one username per stream: a circuit each
)

// parseSize reads a byte count: a number with an optional binary suffix
// K, M or G (KiB, MiB, GiB; "16M", "16MiB", "512K", "1048576").
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'K', 'k':
			shift = 10
		case 'M', 'm':
			shift = 20
		case 'G', 'g':
			shift = 30
		}
		if shift != 0 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > 1<<40>>shift {
		return 0, fmt.Errorf("size %q: want a positive number of bytes with an optional K, M or G suffix", s)
	}
	return n << shift, nil
}

// tputSource is what a throughput download fetches: the first size bytes
// of the network's 64 MiB file (a Range request unless size is all of
// it) and the sha256 they must have.
type tputSource struct {
	url   string
	limit int64 // 0: the whole file
	size  int64
	sum   string // "" if the file was not readable here (length checked only)
}

// newTputSource finds the expected hash of the first size bytes of the
// 64 MiB file, reading the file the network serves (TESTNET_DIR/www/64M).
func newTputSource(env map[string]string, size int64) (*tputSource, error) {
	src := &tputSource{url: env["TESTNET_URL_64M"], size: size}
	const whole = 64 << 20
	switch {
	case size > whole:
		return nil, fmt.Errorf("-size %d: the network serves at most %d bytes (/64M)", size, int64(whole))
	case size == whole:
		src.sum = env["TESTNET_SHA256_64M"]
		return src, nil
	}
	src.limit = size
	dir := env["TESTNET_DIR"]
	if dir == "" {
		logf("no TESTNET_DIR: the %d-byte downloads are checked by length only", size)
		return src, nil
	}
	f, err := os.Open(filepath.Join(dir, "www", "64M"))
	if err != nil {
		logf("%v: the %d-byte downloads are checked by length only", err, size)
		return src, nil
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, size); err != nil {
		return nil, fmt.Errorf("hashing the first %d bytes of %s: %w", size, f.Name(), err)
	}
	src.sum = hex.EncodeToString(h.Sum(nil))
	return src, nil
}

// get downloads the source once as user and checks it.
func (t *tputSource) get(ctx context.Context, proxy, user string) (*fetchResult, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	f, err := fetchPrefix(dctx, proxy, t.url, user, t.limit)
	if err != nil {
		return nil, err
	}
	if f.body != t.size {
		return nil, fmt.Errorf("%d bytes, want %d", f.body, t.size)
	}
	if t.sum != "" && f.sum != t.sum {
		return nil, fmt.Errorf("sha256 %s, want %s", f.sum, t.sum)
	}
	return f, nil
}

// rate is body bytes per second from the first response byte to the last,
// in MiB/s (the circuit build and stream setup are in the TTFB).
func (f *fetchResult) rate() float64 {
	d := (f.total - f.ttfb).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(f.body) / (1 << 20) / d
}

// tputSingle downloads the source once on a new isolation (so a clean
// circuit carries it) and records its rate, TTFB and CPU.
func (s *session) tputSingle(ctx context.Context, src *tputSource, nonce int64, k int) {
	r := s.r
	cpu0, err := cpuTime(s.c.pid())
	if err != nil {
		r.TputErr = s.c.explain(err).Error()
		return
	}
	f, err := src.get(ctx, s.c.socks, fmt.Sprintf("compare-tput-%d-%d", nonce, k))
	if err != nil {
		r.TputErr = s.c.explain(fmt.Errorf("single download %d: %w", k+1, err)).Error()
		logf("%s: %s", r.Name, r.TputErr)
		return
	}
	cpu1, err := cpuTime(s.c.pid())
	if err != nil {
		r.TputErr = s.c.explain(err).Error()
		return
	}
	circ, built, err := s.w.next(s.target, f.start, 10*time.Second)
	kind := "prebuilt"
	switch {
	case err != nil:
		circ, kind = "?", err.Error()
	case built:
		kind = "built for it"
	}
	cpu := (cpu1 - cpu0).Seconds()
	r.TputRates = append(r.TputRates, f.rate())
	r.TputTTFB = append(r.TputTTFB, f.ttfb.Seconds())
	r.TputCPU += cpu
	r.TputBytes += f.body
	logf("%s: single %d: %d bytes, TTFB %.0f ms, then %.2f s (%.2f MiB/s), %.2f s CPU, circuit %s (%s)", r.Name, k+1, f.body,
		ms(f.ttfb.Seconds()), (f.total - f.ttfb).Seconds(), f.rate(), cpu, circ, kind)
}

// tputParallel downloads the source n times at once (mode: one SOCKS
// username for all, or one each) and records the aggregate rate: all
// bytes over the time from the first stream's first response byte to the
// last stream's last byte.
func (s *session) tputParallel(ctx context.Context, src *tputSource, n int, mode string, nonce int64, k int) {
	r := s.r
	cpu0, err := cpuTime(s.c.pid())
	if err != nil {
		r.ParErr = s.c.explain(err).Error()
		return
	}
	res := make([]*fetchResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		user := fmt.Sprintf("compare-par-%d-%d", nonce, k)
		if mode == parallelIsolated {
			user += fmt.Sprintf("-%d", i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = src.get(ctx, s.c.socks, user)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		r.ParErr = s.c.explain(fmt.Errorf("parallel run %d: %w", k+1, err)).Error()
		logf("%s: %s", r.Name, r.ParErr)
		return
	}
	cpu1, err := cpuTime(s.c.pid())
	if err != nil {
		r.ParErr = s.c.explain(err).Error()
		return
	}
	var first, last time.Time
	var bytes int64
	for i, f := range res {
		fb, end := f.start.Add(f.ttfb), f.start.Add(f.total)
		if i == 0 || fb.Before(first) {
			first = fb
		}
		if i == 0 || end.After(last) {
			last = end
		}
		bytes += f.body
	}
	circs := map[string]bool{}
	for range n {
		c, _, err := s.w.next(s.target, first, 10*time.Second)
		if err != nil {
			logf("%s: parallel run %d: circuits not known: %v", r.Name, k+1, err)
			break
		}
		circs[c] = true
	}
	cpu := (cpu1 - cpu0).Seconds()
	rate := float64(bytes) / (1 << 20) / last.Sub(first).Seconds()
	r.ParRates = append(r.ParRates, rate)
	r.ParCircuits = append(r.ParCircuits, len(circs))
	r.ParCPU += cpu
	r.ParBytes += bytes
	logf("%s: parallel %d: %d x %d bytes on %d circuit(s) in %.2f s (%.2f MiB/s aggregate), %.2f s CPU", r.Name, k+1, n, src.size,
		len(circs), last.Sub(first).Seconds(), rate, cpu)
}
