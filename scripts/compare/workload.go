package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// session is one client's workload instance.
type session struct {
	c     *client
	w     *watcher
	r     *results
	owner map[string]string // circuit -> the SOCKS username whose stream used it first
	// target is the HTTP server's address as STREAM events name it.
	target string
}

// workload starts one instance of each client (with a control port) and
// runs the same steps on both, interleaved so that load changes on the
// shared machine hit both alike: TTFB rounds (both idle at the same
// time), the downloads alternately (CPU counted per download, so the
// other client's turn is not charged), peak RSS, then the onion.
func workload(ctx context.Context, o options, env map[string]string, fragment []byte, impls []*impl, work string, dirName []string, res []*results) error {
	var ss []*session
	defer func() {
		for _, s := range ss {
			s.w.close()
			s.c.stop()
		}
	}()
	for i, im := range impls {
		c, err := startClient(ctx, im, fragment, filepath.Join(work, dirName[i]+"-work"), true, o.timeout)
		if err != nil {
			return fmt.Errorf("workload: %w", err)
		}
		w, err := watch(c.control, c.cookie)
		if err != nil {
			c.stop()
			return fmt.Errorf("%s: %w", im.name, err)
		}
		ss = append(ss, &session{c: c, w: w, r: res[i], owner: map[string]string{}, target: env["TESTNET_HTTP_ADDR"]})
		logf("%s: workload instance bootstrapped in %.3f s", im.name, c.bootstrap.Seconds())
	}
	nonce := time.Now().UnixNano()

	// (4) TTFB.
	for round := 0; round < o.rounds; round++ {
		select {
		case <-time.After(o.idle):
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, s := range ss {
			s.ttfbRound(ctx, o, env, nonce, round)
		}
	}

	// Throughput: -tput-runs single downloads of -size bytes, each on a
	// new isolation, then as many runs of -parallel downloads at once;
	// the clients alternate, and which one goes first alternates too.
	if o.tputRuns > 0 {
		src, err := newTputSource(env, o.size)
		if err != nil {
			return err
		}
		order := func(k int) []*session {
			if k%2 == 1 {
				return []*session{ss[1], ss[0]}
			}
			return ss
		}
		for k := 0; k < o.tputRuns; k++ {
			for _, s := range order(k) {
				if s.r.TputErr == "" && ctx.Err() == nil {
					s.tputSingle(ctx, src, nonce, k)
				}
			}
		}
		if o.parallel > 1 {
			for k := 0; k < o.tputRuns; k++ {
				for _, s := range order(k) {
					if s.r.ParErr == "" && ctx.Err() == nil {
						s.tputParallel(ctx, src, o.parallel, o.parallelMode, nonce, k)
					}
				}
			}
		}
	}

	// (3) CPU per GiB.
	for k := 0; k < o.downloads; k++ {
		for _, s := range ss {
			if s.r.DLErr == "" {
				s.download(ctx, env, nonce, k)
			}
		}
	}

	// (2) Peak RSS after the fixed workload (the TTFB rounds and the
	// downloads); read before the onion request, which not every client
	// supports.
	for _, s := range ss {
		var err error
		if s.r.PeakRSS, s.r.RSS, err = memStatus(s.c.pid()); err != nil {
			s.r.RSSErr = s.c.explain(err).Error()
		}
		logf("%s: VmHWM %.1f MiB, VmRSS %.1f MiB, download CPU %.2f s for %d bytes", s.r.Name, mib(s.r.PeakRSS), mib(s.r.RSS), s.r.DLCPU, s.r.DLBytes)
	}

	// (5) Onion, cold: neither client has contacted the service before.
	for _, s := range ss {
		if !o.onion {
			break
		}
		s.onion(ctx, env, nonce)
	}
	return ctx.Err()
}

// get fetches the marker page as user and checks the marker.
func (s *session) get(ctx context.Context, o options, env map[string]string, user string) (*fetchResult, error) {
	rctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	f, err := fetch(rctx, s.c.socks, env["TESTNET_URL_MARKER"], user)
	if err == nil && !strings.Contains(string(f.small), env["TESTNET_MARKER"]) {
		err = fmt.Errorf("marker page without the marker: %q", f.small)
	}
	return f, err
}

// use fetches the marker page as user and finds the circuit its stream
// used, checking that no other username's stream used that circuit.
func (s *session) use(ctx context.Context, o options, env map[string]string, user string) (*fetchResult, string, bool, error) {
	f, err := s.get(ctx, o, env, user)
	if err != nil {
		return nil, "", false, s.c.explain(err)
	}
	circ, built, err := s.w.next(env["TESTNET_HTTP_ADDR"], f.start, 10*time.Second)
	if err != nil {
		return nil, "", false, s.c.explain(err)
	}
	if u, ok := s.owner[circ]; ok && u != user {
		msg := fmt.Sprintf("circuit %s carried streams of SOCKS users %s and %s", circ, u, user)
		s.r.IsolationViolations = append(s.r.IsolationViolations, msg)
		logf("%s: ISOLATION: %s", s.r.Name, msg)
	} else {
		s.owner[circ] = user
	}
	return f, circ, built, nil
}

// ttfbRound makes o.burst requests, each with a new SOCKS username, then
// one more with the last username.
func (s *session) ttfbRound(ctx context.Context, o options, env map[string]string, nonce int64, round int) {
	r := s.r
	var user, lastCirc string
	for j := 0; j < o.burst; j++ {
		user = fmt.Sprintf("compare-%d-%d-%d", nonce, round, j)
		f, circ, built, err := s.use(ctx, o, env, user)
		if err != nil {
			r.TTFBErrors = append(r.TTFBErrors, err.Error())
			logf("%s: TTFB request failed: %v", r.Name, err)
			continue
		}
		kind := "prebuilt"
		if built {
			kind = "built"
			r.TTFBBuilt = append(r.TTFBBuilt, f.ttfb.Seconds())
		} else {
			r.TTFBPre = append(r.TTFBPre, f.ttfb.Seconds())
		}
		lastCirc = circ
		logf("%s: round %d request %d: TTFB %.1f ms on circuit %s (%s)", r.Name, round+1, j+1, ms(f.ttfb.Seconds()), circ, kind)
	}
	if user == "" {
		return
	}
	f, circ, _, err := s.use(ctx, o, env, user)
	if err != nil {
		r.TTFBErrors = append(r.TTFBErrors, err.Error())
		logf("%s: TTFB request failed: %v", r.Name, err)
		return
	}
	r.TTFBReuse = append(r.TTFBReuse, f.ttfb.Seconds())
	note := ""
	if circ != lastCirc {
		note = " (not the previous circuit " + lastCirc + ")"
	}
	logf("%s: round %d reuse: TTFB %.1f ms on circuit %s%s", r.Name, round+1, ms(f.ttfb.Seconds()), circ, note)
}

// download fetches the 64 MiB file once, checks its sha256 and adds the
// client's CPU time during the download to r.DLCPU.
func (s *session) download(ctx context.Context, env map[string]string, nonce int64, k int) {
	r := s.r
	cpu0, err := cpuTime(s.c.pid())
	if err != nil {
		r.DLErr = s.c.explain(err).Error()
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	f, err := fetch(dctx, s.c.socks, env["TESTNET_URL_64M"], fmt.Sprintf("compare-dl-%d", nonce))
	cancel()
	if err == nil && f.sum != env["TESTNET_SHA256_64M"] {
		err = fmt.Errorf("sha256 %s, want %s", f.sum, env["TESTNET_SHA256_64M"])
	}
	if err != nil {
		r.DLErr = s.c.explain(err).Error()
		logf("%s: download %d: %s", r.Name, k+1, r.DLErr)
		return
	}
	cpu1, err := cpuTime(s.c.pid())
	if err != nil {
		r.DLErr = s.c.explain(err).Error()
		return
	}
	r.DLBytes += f.body
	r.DLCPU += (cpu1 - cpu0).Seconds()
	rate := float64(f.body) / (1 << 20) / f.total.Seconds()
	r.DLRates = append(r.DLRates, rate)
	logf("%s: download %d: %d bytes in %.2f s (%.1f MiB/s), %.2f s CPU, sha256 ok", r.Name, k+1, f.body, f.total.Seconds(), rate, (cpu1 - cpu0).Seconds())
}

// onion makes the client's first request to the onion service.
func (s *session) onion(ctx context.Context, env map[string]string, nonce int64) {
	r := s.r
	onion := env["TESTNET_ONION"]
	switch {
	case onion == "":
		r.OnionErr = "no TESTNET_ONION in the environment"
		return
	case s.c.exited() != nil:
		r.OnionErr = s.c.exited().Error()
		return
	}
	octx, cancel := context.WithTimeout(ctx, 90*time.Second)
	f, err := fetch(octx, s.c.socks, "http://"+onion+"/", fmt.Sprintf("compare-onion-%d", nonce))
	cancel()
	switch {
	case err != nil:
		r.OnionErr = s.c.explain(err).Error()
	case !strings.Contains(string(f.small), env["TESTNET_MARKER"]):
		r.OnionErr = "onion page without the marker"
	default:
		r.Onion = f.ttfb.Seconds()
	}
	logf("%s: onion cold TTFB %.1f ms %s", r.Name, ms(r.Onion), r.OnionErr)
}
