// Package clock estimates network time on routers whose clock is wrong.
//
// A router without a real-time clock boots in 1970 and may only get NTP
// through Tor itself. Clock wraps the system clock with an offset learned
// from what the network says: the validity interval of a freshly fetched
// consensus bounds network time coarsely, and the median of recent NETINFO
// timestamps (each relay's clock, to the second) refines it. Now gives the
// estimated network time; Trusted says whether it is known good, which the
// state writer (board/state) uses to hold time-stamped files.
//
// # Estimate
//
// Skew is network time minus local time. After ObserveConsensus(va, fu)
// at local time L, network time is taken to lie in [va, fu+ConsensusSlack],
// so skew lies in [va-L, fu+ConsensusSlack-L]. The estimate is the median of
// the last NetinfoWindow NETINFO skews once MinNetinfo have been seen (else
// 0, i.e. trust the local clock), clamped into the consensus interval if
// one is known. If the system clock is stepped (NTP, sysfixtime), the step
// is detected by comparing wall and monotonic time and taken out of the
// learned offsets.
//
// # What may move the estimate
//
// Two rules keep a hostile directory cache from moving the clock (a
// correctly signed but old consensus is easy to come by: the archives have
// them all):
//
//   - The estimate never moves because of a consensus older than one
//     already observed: ObserveConsensus ignores a valid-after earlier than
//     the newest seen, and the client refuses to install such a consensus
//     in the first place.
//   - A clock the kernel says is synchronised (Options.Synced, by default
//     adjtimex's STA_UNSYNC flag) is never overridden: the estimate stays
//     the local time, and what the network says is only logged.
package clock

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Defaults of Options.
const (
	// DefaultConsensusSlack is how long after fresh-until a freshly fetched
	// consensus may still be the newest one (valid-until is normally
	// fresh-until + 2 h; one more hour covers publication delays).
	DefaultConsensusSlack = 3 * time.Hour
	DefaultNetinfoWindow  = 9
	DefaultMinNetinfo     = 5
	// WarnSkew is the skew above which it is logged, as C tor does for
	// NETINFO (NETINFO_NOTICE_SKEW, one hour).
	WarnSkew = time.Hour
)

// Options configure a Clock. The zero value gives the defaults.
type Options struct {
	// Now is the local wall clock (default time.Now).
	Now func() time.Time
	// Mono is a monotonic clock, used to detect steps of Now (default:
	// time since New, from Go's monotonic reading). A test injecting Now
	// should inject Mono too.
	Mono func() time.Duration
	// Synced reports whether the OS clock is externally synchronised (NTP);
	// if so the Clock is trusted from the start (default KernelSynced).
	Synced func() bool
	// ConsensusSlack: see DefaultConsensusSlack.
	ConsensusSlack time.Duration
	// NetinfoWindow is how many recent NETINFO skews are kept.
	NetinfoWindow int
	// MinNetinfo is how many NETINFO skews are needed before they count
	// (and before they alone make the Clock trusted).
	MinNetinfo int
	// Log receives skew warnings (nil: discard).
	Log *torlog.Logger
}

// Clock is an estimate of network time. It is safe for concurrent use.
type Clock struct {
	opts Options

	mu        lock.Mutex
	lastWall  time.Time     // Now() at the last step check
	lastMono  time.Duration // Mono() at the last step check
	haveBound bool
	newestVA  time.Time     // valid-after of the newest consensus observed
	lo, hi    time.Duration // consensus bounds on the skew
	skews     []time.Duration
	next      int // ring position in skews
	offset    time.Duration
	trusted   bool
	logged    time.Duration // last skew logged (0: none)
}

// New returns a Clock.
func New(opts Options) *Clock {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Mono == nil {
		start := time.Now()
		opts.Mono = func() time.Duration { return time.Since(start) }
	}
	if opts.Synced == nil {
		opts.Synced = KernelSynced
	}
	if opts.ConsensusSlack <= 0 {
		opts.ConsensusSlack = DefaultConsensusSlack
	}
	if opts.NetinfoWindow <= 0 {
		opts.NetinfoWindow = DefaultNetinfoWindow
	}
	if opts.MinNetinfo <= 0 {
		opts.MinNetinfo = DefaultMinNetinfo
	}
	opts.MinNetinfo = min(opts.MinNetinfo, opts.NetinfoWindow)
	c := &Clock{opts: opts}
	c.lastWall, c.lastMono = opts.Now(), opts.Mono()
	return c
}

// local returns the local wall time, first removing any step of the
// system clock since the last call from the learned skews. Call with mu.
func (c *Clock) local() time.Time {
	wall, mono := c.opts.Now(), c.opts.Mono()
	// Truncate(0) drops the monotonic readings: the wall clocks are compared.
	step := wall.Truncate(0).Sub(c.lastWall.Truncate(0)) - (mono - c.lastMono)
	c.lastWall, c.lastMono = wall, mono
	if step > time.Second || step < -time.Second {
		// The local clock moved by step without time passing: what we
		// learned as skew is now smaller by step.
		c.lo -= step
		c.hi -= step
		for i := range c.skews {
			c.skews[i] -= step
		}
		c.offset -= step
		c.opts.Log.Infof("System clock stepped by %s; adjusted the network time estimate.", signed(step))
	}
	return wall
}

// Now returns the estimated network time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local().Add(c.offset)
}

// Skew returns the estimated network time minus local time (positive: our
// clock is behind).
func (c *Clock) Skew() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.local()
	return c.offset
}

// Trusted reports whether Now is known good: the OS clock is synchronised,
// or a fresh consensus or enough NETINFO cells have been observed.
func (c *Clock) Trusted() bool {
	c.mu.Lock()
	t := c.trusted
	c.mu.Unlock()
	return t || c.opts.Synced()
}

// ObserveConsensus records a consensus just fetched from the network and
// verified (never one loaded from a cache: it may be old). validAfter and
// freshUntil are its times. A consensus older than one already observed
// is ignored: it must not move the estimate back.
func (c *Clock) ObserveConsensus(validAfter, freshUntil time.Time) {
	if freshUntil.Before(validAfter) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if validAfter.Before(c.newestVA) {
		c.opts.Log.Infof("Ignoring the time of a consensus valid after %s: we have seen one valid after %s.",
			validAfter.UTC().Format(time.DateTime), c.newestVA.UTC().Format(time.DateTime))
		return
	}
	c.newestVA = validAfter
	l := c.local()
	c.lo = validAfter.Sub(l)
	c.hi = freshUntil.Add(c.opts.ConsensusSlack).Sub(l)
	c.haveBound = true
	c.trusted = true
	c.update()
	using := "Using the network's time meanwhile."
	if c.opts.Synced() {
		using = "The kernel says our clock is synchronised: keeping it."
	}
	var skew time.Duration
	var dir, when string
	switch {
	case c.lo > 0 && c.lo >= WarnSkew:
		skew, dir, when = c.lo, "behind", validAfter.UTC().Format(time.DateTime)
	case c.hi < 0 && -c.hi >= WarnSkew:
		skew, dir, when = -c.hi, "ahead of", "fresh until "+freshUntil.UTC().Format(time.DateTime)
	default:
		return
	}
	c.opts.Log.Warnf("Our clock is %s %s the time published in the consensus network status document (%s UTC). Tor needs an accurate clock to work correctly. Please check your time and date settings! %s",
		interval(skew), dir, when, using)
}

// ObserveNetinfo records the timestamp of a NETINFO cell just received
// from a relay.
func (c *Clock) ObserveNetinfo(peerTime time.Time) {
	if peerTime.IsZero() || peerTime.Unix() == 0 {
		return // relays may send 0 ("no time"), as bridges do
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	skew := peerTime.Sub(c.local())
	if len(c.skews) < c.opts.NetinfoWindow {
		c.skews = append(c.skews, skew)
	} else {
		c.skews[c.next] = skew
		c.next = (c.next + 1) % c.opts.NetinfoWindow
	}
	if len(c.skews) >= c.opts.MinNetinfo {
		c.trusted = true
	}
	c.update()
	if abs(skew) >= WarnSkew && len(c.skews) >= c.opts.MinNetinfo {
		off := c.offset
		if abs(off-c.logged) >= WarnSkew {
			c.logged = off
			ahead, behind := "ahead", "behind"
			if off > 0 {
				ahead, behind = behind, ahead
			}
			c.opts.Log.Warnf("Received NETINFO cells with skewed time: it seems that our clock is %s by %s, or that theirs is %s. Tor requires an accurate clock to work: please check your time, timezone, and date settings. Using the network's time meanwhile.",
				ahead, interval(abs(off)), behind)
		}
	}
}

// update recomputes offset. Call with mu. A synchronised kernel clock is
// never overridden.
func (c *Clock) update() {
	if c.opts.Synced() {
		c.offset = 0
		return
	}
	var est time.Duration
	if len(c.skews) >= c.opts.MinNetinfo {
		// sort.Slice, not slices.Sort: it shares the code other packages
		// link, where slices.Sort would add a copy for time.Duration.
		s := append([]time.Duration(nil), c.skews...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		if len(s)%2 == 1 {
			est = s[len(s)/2]
		} else {
			est = s[len(s)/2-1]/2 + s[len(s)/2]/2
		}
	}
	if c.haveBound {
		est = min(max(est, c.lo), c.hi)
	}
	c.offset = est
}

// KernelSynced reports whether the kernel says its clock is synchronised
// by NTP (adjtimex: no STA_UNSYNC flag and state not TIME_ERROR). It is
// false on error.
func KernelSynced() bool {
	const (
		staUnsync = 0x0040 // STA_UNSYNC in <linux/timex.h>
		timeError = 5      // TIME_ERROR
	)
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	return err == nil && state != timeError && int64(tx.Status)&staUnsync == 0
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func signed(d time.Duration) string {
	if d < 0 {
		return "-" + interval(-d)
	}
	return "+" + interval(d)
}

// intervalUnits are the units of interval, largest first.
var intervalUnits = [...]struct {
	secs int64
	name string
}{{365 * 86400, "year"}, {86400, "day"}, {3600, "hour"}, {60, "minute"}}

// interval formats a duration as C tor's format_time_interval does:
// "3 years, 12 days, 4 hours, 5 minutes" (seconds only under a minute).
func interval(d time.Duration) string {
	secs := int64(d / time.Second)
	if secs < 60 {
		return plural(secs, "second")
	}
	var parts []string
	for _, u := range intervalUnits {
		if n := secs / u.secs; n > 0 {
			parts = append(parts, plural(n, u.name))
			secs -= n * u.secs
		}
	}
	return strings.Join(parts, ", ")
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.FormatInt(n, 10) + " " + unit + "s"
}
