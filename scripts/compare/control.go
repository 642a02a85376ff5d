package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// watcher follows CIRC and STREAM events on a Tor control port, to tell
// whether a stream went on a circuit that existed before the request
// (prebuilt) or on one launched after it.
type watcher struct {
	conn net.Conn

	mu       sync.Mutex
	launched map[string]time.Time // circuit id -> first event seen (LAUNCHED)
	streams  []streamEvent        // SUCCEEDED stream events
	cursor   int                  // streams before it were returned by next
	changed  chan struct{}        // closed and replaced on each new stream event
	err      error                // why the reader stopped
}

type streamEvent struct {
	at     time.Time
	circ   string
	target string
}

// watch authenticates to the control port at addr with the cookie file
// and subscribes to CIRC and STREAM events.
func watch(addr, cookieFile string) (*watcher, error) {
	cookie, err := os.ReadFile(cookieFile)
	if err != nil {
		return nil, fmt.Errorf("control port %s: reading the cookie: %w", addr, err)
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("control port: %w", err)
	}
	br := bufio.NewReader(conn)
	cmd := func(line string) error {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		defer conn.SetDeadline(time.Time{})
		if _, err := fmt.Fprintf(conn, "%s\r\n", line); err != nil {
			return err
		}
		reply, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(reply, "250") {
			return fmt.Errorf("reply %q", strings.TrimSpace(reply))
		}
		return nil
	}
	if err := cmd("AUTHENTICATE " + hex.EncodeToString(cookie)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("control port %s: AUTHENTICATE: %w", addr, err)
	}
	if err := cmd("SETEVENTS CIRC STREAM"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("control port %s: SETEVENTS: %w", addr, err)
	}
	w := &watcher{conn: conn, launched: map[string]time.Time{}, changed: make(chan struct{})}
	go w.read(br)
	return w, nil
}

// read records events until the connection ends.
func (w *watcher) read(br *bufio.Reader) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		now := time.Now()
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "650" {
			continue
		}
		w.mu.Lock()
		switch f[1] {
		case "CIRC":
			if _, ok := w.launched[f[2]]; !ok {
				w.launched[f[2]] = now
			}
		case "STREAM":
			// 650 STREAM StreamID StreamStatus CircuitID Target ...
			if f[3] == "SUCCEEDED" && len(f) >= 6 {
				w.streams = append(w.streams, streamEvent{at: now, circ: f[4], target: f[5]})
				close(w.changed)
				w.changed = make(chan struct{})
			}
		}
		w.mu.Unlock()
	}
}

// close ends the control connection.
func (w *watcher) close() { w.conn.Close() }

// next waits up to wait for the next STREAM SUCCEEDED event to target
// not yet returned by next, and reports its circuit and whether that
// circuit was first seen (LAUNCHED) after since, so the request started
// at since waited for a build. Requests to target must be sequential and
// each successful one yields exactly one SUCCEEDED event, so the n-th
// call belongs to the n-th successful request whatever the delivery
// delay of the events.
func (w *watcher) next(target string, since time.Time, wait time.Duration) (circ string, built bool, err error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		for ; w.cursor < len(w.streams); w.cursor++ {
			s := w.streams[w.cursor]
			if s.target != target {
				continue
			}
			w.cursor++
			t, ok := w.launched[s.circ]
			w.mu.Unlock()
			// A circuit with no event was launched before SETEVENTS.
			return s.circ, ok && t.After(since), nil
		}
		ch, rerr := w.changed, w.err
		w.mu.Unlock()
		if rerr != nil {
			return "", false, fmt.Errorf("control connection: %w", rerr)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return "", false, fmt.Errorf("no STREAM SUCCEEDED event for %s within %v", target, wait)
		}
	}
}
