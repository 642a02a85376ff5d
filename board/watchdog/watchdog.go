package watchdog

import (
	"context"
	"errors"
	"strings"
	"time"

	"tinytor/tor/torlog"
)

// Kicker is something that must be told periodically that we are alive:
// a *Device, a *Notifier.
type Kicker interface {
	Kick() error
}

// Config configures a Watchdog.
type Config struct {
	// Heartbeat is checked before every kick (required).
	Heartbeat *Heartbeat
	// Kickers are kicked while healthy.
	Kickers []Kicker
	// Log receives a warning when kicks stop and a notice when they
	// resume (nil: discard).
	Log *torlog.Logger
	// OnCheck, if set, is called after every check with its outcome (for
	// metrics and tests). It must not block.
	OnCheck func(kicked bool, stalled []string)
}

// Watchdog kicks its Kickers only while the Heartbeat is healthy.
type Watchdog struct {
	cfg      Config
	unwell   bool // previous check was unhealthy (guards log repetition)
	kickFail bool // previous kick failed
}

// New returns a Watchdog.
func New(cfg Config) (*Watchdog, error) {
	if cfg.Heartbeat == nil {
		return nil, errors.New("watchdog: Config.Heartbeat is required")
	}
	return &Watchdog{cfg: cfg}, nil
}

// KickInterval is how often to check for a watchdog with the given timeout:
// a third of it, so that one late tick does not cause a reboot.
func KickInterval(timeout time.Duration) time.Duration {
	return max(timeout/3, 100*time.Millisecond)
}

// Check checks the Heartbeat once and, if healthy, kicks every Kicker. It
// reports whether it kicked. Not safe for concurrent use with itself (Run
// calls it from one goroutine).
func (w *Watchdog) Check() bool {
	healthy, stalled := w.cfg.Heartbeat.Check()
	if !healthy {
		if !w.unwell {
			w.cfg.Log.Warnf("Component(s) %s stopped reporting; no longer feeding the watchdog. The system will restart tinytor (or reboot) unless they recover.", strings.Join(stalled, ", "))
		}
		w.unwell = true
	} else {
		if w.unwell {
			w.cfg.Log.Noticef("All components report again; feeding the watchdog.")
		}
		w.unwell = false
		var errs []error
		for _, k := range w.cfg.Kickers {
			if err := k.Kick(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil && !w.kickFail {
			w.cfg.Log.Warnf("Could not feed the watchdog: %v", err)
			w.kickFail = true
		} else if err == nil {
			w.kickFail = false
		}
	}
	if w.cfg.OnCheck != nil {
		w.cfg.OnCheck(healthy, stalled)
	}
	return healthy
}

// Run checks on every tick until ctx is done or ticks is closed. In
// production ticks is a time.Ticker's channel at KickInterval(timeout).
func (w *Watchdog) Run(ctx context.Context, ticks <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ticks:
			if !ok {
				return
			}
			w.Check()
		}
	}
}
