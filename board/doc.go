// Package board is the router layer around the Tor client: it keeps
// tinytor alive on a router without the client knowing of it.
//
// A Board, made with New before the client, applies the memory plan (the
// Go memory limit and GC percent from MaxMemInQueues or the RAM and
// cgroup limits), makes the network clock (raised to the binary's build
// time when an unsynchronised clock says 1970) and finds systemd's notify
// socket. Its StateOptions configure the state writer, and its Now and
// AllowNewStream go into the client's configuration. Start, once the
// listeners are bound, subscribes to the event bus (circuits and streams
// for the memory budget, NETINFO skews and consensuses for the clock,
// bootstrap status for systemd), feeds the watchdogs while the client and
// the state writer answer their probes, drops privileges (User) and
// watches the memory pressure, closing idle circuits when it is high.
// Close disarms the hardware watchdog and logs what was written to flash.
//
// The work is in its sub-packages, each usable on its own:
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
// The board knows nothing of the client's package: it reaches the client
// through the Client interface and the event bus (tinytor/tor/event).
package board
