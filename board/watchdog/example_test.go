package watchdog_test

import (
	"context"
	"os"
	"time"

	"tinytor/board/watchdog"
	"tinytor/tor/torlog"
)

// Feeding systemd's watchdog (WatchdogSec= in the unit) only while the
// components registered with the Heartbeat keep beating.
func Example() {
	log := torlog.New(torlog.Sink{Min: torlog.Notice, Max: torlog.Err, W: os.Stderr})
	hb := watchdog.NewHeartbeat(nil)
	hb.Register("circuits", 30*time.Second) // the circuit manager calls hb.Beat("circuits")

	notifier, err := watchdog.NotifierFromEnv(os.Getenv)
	if err != nil || notifier == nil {
		return // not started by systemd
	}
	timeout, err := watchdog.WatchdogInterval(os.Getenv, os.Getpid())
	if err != nil {
		return // systemd watchdog off
	}
	w, _ := watchdog.New(watchdog.Config{Heartbeat: hb, Kickers: []watchdog.Kicker{notifier}, Log: log})
	notifier.Ready()
	ticker := time.NewTicker(watchdog.KickInterval(timeout))
	defer ticker.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, ticker.C)
	// ... run; on shutdown:
	notifier.Stopping()
}
