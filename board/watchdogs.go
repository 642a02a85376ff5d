package board

import (
	"context"
	"errors"
	"os"
	"time"

	"tinytor/board/watchdog"
	"tinytor/tor/errfmt"
)

// Components registered with the watchdog's heartbeat.
const (
	beatClient = "client" // the client's locks (Client.Ping)
	beatState  = "state"  // the state writer's lock (state.Store.Stats)
)

// startWatchdogs opens the hardware watchdog (HardwareWatchdog) and
// systemd's (WatchdogSec), if any, and feeds them while every probe
// returns in time.
func (b *Board) startWatchdogs(ctx context.Context, probes map[string]func()) error {
	var kickers []watchdog.Kicker
	var timeout time.Duration
	if path := b.cfg.HardwareWatchdog; path != "" {
		dev, err := watchdog.OpenDevice(path, b.cfg.HardwareWatchdogTimeout)
		if err != nil {
			return errfmt.Errorf("HardwareWatchdog: %w", err)
		}
		b.device = dev
		kickers = append(kickers, dev)
		timeout = dev.Timeout()
		if timeout <= 0 {
			timeout = b.cfg.HardwareWatchdogTimeout
		}
		b.log.Noticef("Feeding the hardware watchdog %s (timeout %s) while the client is healthy.", dev, timeout)
	}
	if b.notify != nil {
		sd, err := watchdog.WatchdogInterval(b.getenv, os.Getpid())
		switch {
		case err == nil:
			kickers = append(kickers, b.notify)
			if timeout == 0 || sd < timeout {
				timeout = sd
			}
			b.log.Noticef("Feeding systemd's watchdog (WatchdogSec %s) while the client is healthy.", sd)
		case !errors.Is(err, watchdog.ErrNoWatchdog):
			b.log.Warnf("Ignoring systemd's watchdog settings: %v", err)
		}
	}
	if len(kickers) == 0 {
		return nil
	}
	return b.runWatchdog(ctx, kickers, timeout, probes, nil)
}

// runWatchdog starts the heartbeat probes and the watchdog. Each probe
// runs on its own ticker goroutine and beats after it returns, so a probe
// that blocks (a lock held forever) stops its beats and, after timeout/2,
// the kicks. onCheck is for tests.
func (b *Board) runWatchdog(ctx context.Context, kickers []watchdog.Kicker, timeout time.Duration, probes map[string]func(), onCheck func(bool, []string)) error {
	hb := watchdog.NewHeartbeat(nil)
	wd, err := watchdog.New(watchdog.Config{Heartbeat: hb, Kickers: kickers, Log: b.log, OnCheck: onCheck})
	if err != nil {
		return err
	}
	deadline := timeout / 2
	every := max(timeout/6, 50*time.Millisecond)
	for name, probe := range probes {
		if err := hb.Register(name, deadline); err != nil {
			return err
		}
		// Not waited for in Close: a probe stuck on a wedged client never
		// returns, and the process is exiting anyway.
		go func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				probe()
				hb.Beat(name)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(watchdog.KickInterval(timeout))
		defer t.Stop()
		wd.Run(ctx, t.C)
	}()
	return nil
}
