package board

import (
	"os"
	"strconv"
	"time"

	"tinytor/board/clock"
	"tinytor/tor/config"
	"tinytor/tor/errfmt"
	"tinytor/tor/torlog"
)

// clockOffsetEnv shifts the wall clock that tinytor sees, for tests of a
// wrong clock on a test network. It is honoured only with TestingTorNetwork
// 1. The value is a Go duration ("-26280h" is three years back).
const clockOffsetEnv = "TINYTOR_TESTING_CLOCK_OFFSET"

// buildEpoch is the time tinytor was built, in seconds since 1970; release
// builds set it with -ldflags "-X tinytor/board.buildEpoch=$SOURCE_DATE_EPOCH".
// It is a lower bound for the clock (see floorClock), set at link time
// and never changed.
var buildEpoch = ""

// newClock makes the network clock: network time from the consensus and
// NETINFO cells, starting from the wall clock (shifted by clockOffsetEnv
// on a test network) raised to clockFloor.
func newClock(cfg *config.Config, log *torlog.Logger, getenv func(string) string) (*clock.Clock, error) {
	o := clock.Options{Log: log, MinNetinfo: minNetinfo(cfg)}
	if v := getenv(clockOffsetEnv); v != "" {
		if !cfg.TestingTorNetwork {
			log.Warnf("Ignoring %s: it is honoured only with TestingTorNetwork 1.", clockOffsetEnv)
		} else {
			off, err := time.ParseDuration(v)
			if err != nil {
				return nil, errfmt.Errorf("%s: %w", clockOffsetEnv, err)
			}
			log.Warnf("Testing: the wall clock is shifted by %s (%s).", off, clockOffsetEnv)
			o.Now = func() time.Time { return time.Now().Add(off) }
			o.Synced = func() bool { return false }
		}
	}
	floorClock(&o, log)
	return clock.New(o), nil
}

// clockFloor returns the earliest time it can be now: when this binary was
// built (buildEpoch) or written (the executable's modification time, which
// firmware images set to their build time), and where that came from.
func clockFloor() (time.Time, string) {
	var floor time.Time
	var from string
	if s, err := strconv.ParseInt(buildEpoch, 10, 64); err == nil && s > 0 {
		floor, from = time.Unix(s, 0), "the build time"
	}
	if exe, err := os.Executable(); err == nil {
		if fi, err := os.Stat(exe); err == nil && fi.ModTime().After(floor) {
			floor, from = fi.ModTime(), "the modification time of "+exe
		}
	}
	return floor, from
}

// floorClock keeps an unsynchronised wall clock from running before
// clockFloor, as systemd and OpenWrt's sysfixtime do at boot: a router
// without a real-time clock says 1970, and relays' link certificates are
// then "not yet valid" (C tor's rule: at most 30 days early), so no channel
// and no NETINFO time could ever be had. The network's time then refines
// the estimate (board/clock).
func floorClock(o *clock.Options, log *torlog.Logger) {
	synced := o.Synced
	if synced == nil {
		synced = clock.KernelSynced
	}
	wall := o.Now
	if wall == nil {
		wall = time.Now
	}
	floor, from := clockFloor()
	begin := time.Now() // for its monotonic reading
	start := wall()
	if synced() || floor.IsZero() || !start.Before(floor) {
		return
	}
	log.Warnf("Our clock says %s, but %s is %s: the clock is %s behind at least. Using that time until the network tells us better. Please check your time and date settings!",
		start.UTC().Format(time.DateTime), from, floor.UTC().Format(time.DateTime), roughInterval(floor.Sub(start)))
	// Floor plus the time elapsed since (monotonic), until the wall clock
	// passes it (NTP): continuous, so board/clock sees a step only then.
	o.Now = func() time.Time {
		t := wall()
		if f := floor.Add(time.Since(begin)); t.Before(f) {
			return f
		}
		return t
	}
}

// roughInterval formats d as "3 years, 12 days" or "5 hours, 3 minutes".
func roughInterval(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day {
		d = d.Round(day)
	}
	years, days := d/(365*day), (d%(365*day))/day
	if years == 0 && days == 0 {
		return d.Round(time.Minute).String()
	}
	// The two largest units; a zero second one is left out after years.
	n, unit, n2, unit2 := years, " years", days, " days"
	if years == 0 {
		n, unit, n2, unit2 = days, " days", (d%day)/time.Hour, " hours"
	}
	s := strconv.FormatInt(int64(n), 10) + unit
	if n2 > 0 || years == 0 {
		s += ", " + strconv.FormatInt(int64(n2), 10) + unit2
	}
	return s
}

// minNetinfo is how many NETINFO cells make the clock estimate count: the
// clock package's default, or fewer when fewer directory sources are
// configured (a test network with three authorities), since those are
// the first relays a client with a wrong clock talks to. NETINFO cells
// come over links authenticated to the relays' identities.
func minNetinfo(cfg *config.Config) int {
	n := len(cfg.Fallbacks())
	for _, a := range cfg.Authorities() {
		if a.ORPort != 0 && a.IsV3() {
			n++
		}
	}
	return min(max(n, 1), clock.DefaultMinNetinfo)
}
