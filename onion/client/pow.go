package client

import (
	"context"
	"crypto/ed25519"
	"io"
	"time"

	"tinytor/onion/desc"
	"tinytor/onion/hscell"
	"tinytor/onion/pow"
	"tinytor/tor/errfmt"
)

// Client proof-of-work policy, as C tor's hs_client.c (proposal 327).
const (
	// MaxPoWEffort is the highest effort the client solves at
	// (CLIENT_MAX_POW_EFFORT): a higher suggested effort is solved at this
	// value. C tor has no option for it.
	MaxPoWEffort = 10000
	// minRetryPoWEffort is the least effort after a failure
	// (CLIENT_MIN_RETRY_POW_EFFORT).
	minRetryPoWEffort = 8
	// powEffortDoubleUntil: below it the effort doubles on each failure
	// (CLIENT_POW_EFFORT_DOUBLE_UNTIL), above it it grows by
	// half (CLIENT_POW_RETRY_MULTIPLIER is 1.5).
	powEffortDoubleUntil = 1000
	// defaultPoWSolvers bounds concurrent solves when Config.PoWSolvers
	// is 0.
	defaultPoWSolvers = 1
)

// PoWEffort is the effort C tor's client solves at for an introduction
// point that was found unreachable `unreachable` times: the suggested
// effort capped at MaxPoWEffort, then for each failure doubled below
// 1000 or multiplied by 1.5 above, at least 8 and at most MaxPoWEffort.
// Effort 0 means no proof of work.
func PoWEffort(suggested uint32, unreachable int) uint32 {
	e := uint64(min(suggested, MaxPoWEffort))
	for range unreachable {
		if e >= MaxPoWEffort {
			break
		}
		if e < powEffortDoubleUntil {
			e <<= 1
		} else {
			// C tor multiplies by CLIENT_POW_RETRY_MULTIPLIER (1.5) in
			// floating point and truncates: exactly e*3/2 at these sizes.
			e = e * 3 / 2
		}
		e = min(max(e, minRetryPoWEffort), MaxPoWEffort)
	}
	return uint32(e)
}

// solverPool runs at most cap(slots) solves at a time, each with a
// pow.Solver (about 1.5 MB) made on first use and kept for later solves.
type solverPool struct {
	slots chan *pow.Solver
}

func newSolverPool(n int) *solverPool {
	p := &solverPool{slots: make(chan *pow.Solver, n)}
	for range n {
		p.slots <- nil
	}
	return p
}

// solve waits for a free solver (or ctx) and solves in from start. took
// is the solving time, without the wait.
func (p *solverPool) solve(ctx context.Context, in pow.Input, start [pow.NonceLen]byte) (sol pow.Solution, took time.Duration, err error) {
	var s *pow.Solver
	select {
	case s = <-p.slots:
	case <-ctx.Done():
		return pow.Solution{}, 0, errfmt.Errorf("waiting for a proof-of-work solver: %w", ctx.Err())
	}
	if s == nil {
		s = pow.NewSolver()
	}
	defer func() { p.slots <- s }()
	t0 := time.Now()
	sol, err = s.Solve(ctx, in, start)
	return sol, time.Since(t0), err
}

// powResult is the outcome of a background solve.
type powResult struct {
	ext hscell.Extension
	err error
}

// unreachable returns how often the introduction point auth of svc was
// found unreachable lately (C tor's unreachable_count, from the client's
// memory of failures, which forgets them after introFailureMaxAge).
func (c *Client) unreachable(svc [32]byte, auth ed25519.PublicKey) int {
	m := c.fails
	k := ipKey{svc: svc}
	copy(k.auth[:], auth)
	m.mu.Lock()
	m.expireLocked(m.now())
	n := 0
	if s := m.intros[k]; s != nil {
		n = s.unreachable
	}
	m.mu.Unlock()
	return n
}

// powInput returns the puzzle for an introduction through ip, or false
// when none is to be solved: the descriptor has no pow-params v1, or the
// effort (suggested, capped, raised after this introduction point's
// failures) is 0.
func (c *Client) powInput(svc [32]byte, d *desc.Descriptor, ip *desc.IntroPoint) (pow.Input, bool) {
	p := d.Inner.PoW
	if p == nil {
		return pow.Input{}, false
	}
	if p.SuggestedEffort > MaxPoWEffort {
		c.log.Noticef("Onion service suggested effort %d which is higher than we want to solve. Solving at %d instead.",
			p.SuggestedEffort, MaxPoWEffort)
	}
	n := c.unreachable(svc, ip.AuthKey)
	e := PoWEffort(p.SuggestedEffort, n)
	if e != min(p.SuggestedEffort, MaxPoWEffort) {
		c.log.Infof("Increasing PoW effort from %d to %d after intro point unreachable_count=%d",
			min(p.SuggestedEffort, MaxPoWEffort), e, n)
	}
	if e == 0 {
		return pow.Input{}, false
	}
	in := pow.Input{Seed: p.Seed, Effort: e}
	copy(in.BlindedID[:], d.Outer.BlindedKey)
	return in, true
}

// solvePoW solves in with one of the client's bounded solvers from a
// random nonce and returns the INTRODUCE1 extension carrying the
// solution.
func (c *Client) solvePoW(ctx context.Context, host string, in pow.Input) (hscell.Extension, error) {
	var nonce [pow.NonceLen]byte
	if _, err := io.ReadFull(c.cfg.Rand, nonce[:]); err != nil {
		return hscell.Extension{}, errfmt.Errorf("proof-of-work nonce: %w", err)
	}
	sol, took, err := c.solvers.solve(ctx, in, nonce)
	if err != nil {
		return hscell.Extension{}, err
	}
	c.log.Infof("Solved PoW with effort %d in %d ms for %s.", in.Effort, took.Milliseconds(), host)
	return hscell.Extension{Type: pow.ExtensionType, Body: sol.AppendExtension(nil)}, nil
}
