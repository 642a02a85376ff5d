package dir

import "time"

// Rand is a source of random integers; *math/rand/v2.Rand satisfies it.
// Production code should back it with crypto/rand (as C tor's
// crypto_rand_int does).
type Rand interface {
	// Int64N returns a uniform integer in [0, n); n > 0.
	Int64N(n int64) int64
}

// NextConsensusFetch returns when a client holding c should fetch the next
// consensus, as C tor's update_consensus_networkstatus_fetch_time does for
// an ordinary client (dir-spec 5.1):
//
//   - without a consensus, or when c is not live at now (now before
//     valid-after or after valid-until), fetch now;
//   - otherwise, with interval = fresh-until - valid-after, at a uniformly
//     random second in [start, start + d), where start = fresh-until +
//     3/4 interval and d = 7/8 (valid-until - start), at least 1 s.
//
// Arithmetic is in whole seconds, truncating, as C tor does.
func NextConsensusFetch(c *Consensus, now time.Time, r Rand) time.Time {
	if c == nil || now.Before(c.ValidAfter) || now.After(c.ValidUntil) {
		return now
	}
	va, fu, vu := c.ValidAfter.Unix(), c.FreshUntil.Unix(), c.ValidUntil.Unix()
	interval := fu - va
	start := fu + (interval*3)/4
	dl := ((vu - start) * 7) / 8
	if dl < 1 {
		dl = 1
	}
	if start >= vu {
		// C tor asserts this cannot happen (parsing guarantees
		// va < fu < vu, but not that vu - fu > 3/4 interval); fetch as
		// soon as the consensus is no longer fresh.
		if now.Before(c.FreshUntil) {
			return c.FreshUntil
		}
		return now
	}
	return time.Unix(start+r.Int64N(dl), 0).UTC()
}
