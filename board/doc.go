// Package board groups what keeps tinytor alive on a router; the work is
// in its sub-packages, each usable on its own:
//
//   - board/state: the one writer of persistent files (coalesced, atomic,
//     checksummed; survives full or read-only flash and a 1970 clock);
//   - board/watchdog: /dev/watchdog and systemd's watchdog, fed only while
//     every registered component reports healthy; sd_notify;
//   - board/mem: RAM and cgroup limits, the Go memory limit and GC percent,
//     and the Budget whose Pressure the core checks before taking more work;
//   - board/clock: network time estimated from the consensus and NETINFO
//     cells, for routers without a real-time clock.
//
// A typical start-up: mem.ReadInfo, mem.NewPlan and Plan.Apply first (before
// allocating much); then clock.New; state.Open with the Clock so that
// time-stamped files wait for a trusted time; then the core, registering its
// loops with a watchdog.Heartbeat; and last the watchdog.Watchdog, kicking a
// watchdog.Device and/or a watchdog.Notifier every KickInterval.
package board
