package tor

import (
	"errors"
	"net"
	"strconv"

	"tinytor/tor/cell"
)

// Support for the board layer (board/mem, board/watchdog): refusing new
// streams under memory pressure, shedding idle circuits, and a liveness
// probe of the client's locks.

// ErrOverloaded is the error inside the *StreamError that Dial returns
// when Config.AllowNewStream refuses a new stream (memory pressure). The
// StreamError's Reason is cell.EndResourceLimit.
var ErrOverloaded = errors.New("refusing new streams under memory pressure")

// admitStream asks Config.AllowNewStream whether a stream to host:port may
// be opened and returns the error for Dial if not.
func (c *Client) admitStream(host string, port uint16) error {
	if f := c.cfg.AllowNewStream; f != nil && !f() {
		return &StreamError{Target: net.JoinHostPort(host, strconv.Itoa(int(port))), Reason: cell.EndResourceLimit, Err: ErrOverloaded}
	}
	return nil
}

// ShedIdleCircuits closes the exit circuits that carry no stream, to give
// memory back under pressure, and returns how many it closed. Circuits
// with open streams are kept.
func (c *Client) ShedIdleCircuits() int { return c.circs.closeIdle() }

// closeIdle closes and forgets the circuits without streams.
func (p *circPool) closeIdle() int {
	p.mu.Lock()
	var keep, closing []*exitCirc
	for _, e := range p.circs {
		if e.streams <= 0 {
			closing = append(closing, e)
		} else {
			keep = append(keep, e)
		}
	}
	p.circs = keep
	p.mu.Unlock()
	for _, e := range closing {
		e.circ.Close()
	}
	return len(closing)
}

// Ping takes and releases, one after the other, the locks that the
// client's loops and streams hold (bootstrap state, directory view,
// circuit pool, channels, events) and returns. A watchdog heartbeat calls
// it: if one of those locks is held forever (a deadlock, a loop stuck
// while holding it), Ping does not return and the beats stop.
func (c *Client) Ping() {
	c.boot.current()
	c.currentDir()
	c.circs.mu.Lock()
	//lint:ignore SA2001 an empty critical section is the probe
	c.circs.mu.Unlock()
	c.chans.count()
	c.events.mu.Lock()
	//lint:ignore SA2001 an empty critical section is the probe
	c.events.mu.Unlock()
}
