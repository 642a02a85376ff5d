package circuit

import (
	"encoding/binary"

	"tinytor/tor/cell"
	"tinytor/tor/errfmt"
)

// Stream flow control without windows (proposal 324 section 4), on the
// streams of a hop with congestion control: the 500-cell stream window and
// stream SENDMEs are not used. Instead
//
//   - receiving: when a stream's unread data passes cc_xoff_client cells
//     worth of bytes, the client sends XOFF; once its reader has drained
//     the queue (to within maxExpectedCellBurst cells) it sends XON with
//     the advisory drain rate (kbps_ewma, in
//     units of 1000 bytes/s), and an advisory XON whenever that rate
//     changes by more than cc_xon_change_pct (C tor's
//     flow_control_decide_xoff and flow_control_decide_xon, with the
//     stream's unread cells as the "outbuf" and Read as the drain).
//   - sending: after the exit's XOFF, Write waits for its XON; an XON's
//     rate, if not 0, limits the stream's writes with a token bucket whose
//     burst is one second of that rate (as C tor adjusts the edge's
//     bucket).
//
// The cells' command numbers are C tor's (or.h): XOFF 43, XON 44. Note
// that tor/cell names 43 and 44 the other way round.
const (
	relayXoff cell.RelayCommand = 43
	relayXon  cell.RelayCommand = 44
)

// maxExpectedCellBurst is C tor's MAX_EXPECTED_CELL_BURST: a queue longer
// than this many cells is taken as not draining.
const maxExpectedCellBurst = 32

// Dropmark accounting limits (C tor's XON_COUNT_SCALE_AT and friends).
const (
	xonCountScaleAt   = 200
	xoffCountScaleAt  = 200
	totalXmitScaleAt  = 10 << 20
	flowCellVersion   = 0
	xonBodyLen        = 5
	kbpsUnlimitedRate = 0
)

// parseXon decodes an XON body: version 0, then kbps_ewma (u32).
func parseXon(b []byte) (kbps uint32, err error) {
	if len(b) < xonBodyLen {
		return 0, errfmt.Errorf("XON of %d bytes, want %d", len(b), xonBodyLen)
	}
	if b[0] != flowCellVersion {
		return 0, errfmt.Errorf("XON version %d", b[0])
	}
	return binary.BigEndian.Uint32(b[1:5]), nil
}

// parseXoff checks an XOFF body: version 0.
func parseXoff(b []byte) error {
	if len(b) < 1 {
		return errfmt.Errorf("empty XOFF")
	}
	if b[0] != flowCellVersion {
		return errfmt.Errorf("XOFF version %d", b[0])
	}
	return nil
}

// flowRecv is the receiving half of a stream's flow control, guarded by
// Stream.mu.
type flowRecv struct {
	xoffSent     bool
	drainStart   int64  // µs; 0 when not measuring
	drained      uint64 // bytes read since drainStart
	prevDrained  uint64
	ewmaRate     uint32 // kbps (1000 bytes/s) N-EWMA of the drain rate
	lastSentRate uint32 // rate of the last XON
	// starved is set when the reader found the queue empty and waited;
	// sinceDouble counts the bytes read since the rate last doubled.
	starved     bool
	sinceDouble uint64
}

// flowSend is the sending half, guarded by Circuit.mu.
type flowSend struct {
	xoffRecv bool
	rate     uint64 // bytes per second advised by the last XON; 0: unlimited
	tokens   int64  // token bucket, bytes
	tokAt    int64  // µs of the last refill
	xmit     uint64 // bytes sent (dropmark accounting)
	numXoff  uint64
	numXon   uint64
}

// flowAction is what the receiving side decided to send.
type flowAction struct {
	xoff, xon bool
	rate      uint32
}

// xoffBytes is the unread data beyond which an XOFF goes out.
func (c *Circuit) xoffBytes() uint64 { return uint64(c.ccp.XoffClient) * cell.RelayDataLen }

// xonRateBytes is cc_xon_rate in bytes.
func (c *Circuit) xonRateBytes() uint64 { return uint64(c.ccp.XonRate) * cell.RelayDataLen }

// decideXoffLocked runs after a DATA cell was queued on a flow-controlled
// stream (C tor's flow_control_decide_xoff). s.mu must be held.
func (s *Stream) decideXoffLocked() flowAction {
	var a flowAction
	c := s.c
	if s.qbytes > c.xoffBytes() && !s.fr.xoffSent {
		s.fr.xoffSent = true
		s.fr.ewmaRate = 0 // the drain rate was wrong if it came to this
		s.fr.starved, s.fr.sinceDouble = false, 0
		a.xoff = true
	}
	if s.qbytes > maxExpectedCellBurst*cell.RelayDataLen {
		x := s.decideXonLocked(0)
		a.xon, a.rate = x.xon, x.rate
	}
	return a
}

// decideXonLocked runs when the reader drained n bytes (C tor's
// flow_control_decide_xon; n is 0 when called because the queue grew).
// s.mu must be held.
func (s *Stream) decideXonLocked(n int) flowAction {
	c := s.c
	fr := &s.fr
	// C tor's "outbuf" is what its socket did not take; ours is what the
	// reader has not read yet, and a reader with a small buffer always
	// leaves a few cells. A queue within one burst counts as drained, or
	// the drain rate would be measured on the reader's buffer size and an
	// XOFFed stream would wait for its very last byte to be read.
	buffered := s.qbytes
	if buffered <= maxExpectedCellBurst*cell.RelayDataLen {
		buffered = 0
	}
	if fr.drained >= 1<<32-1-uint64(n) {
		fr.drained /= 2
		if fr.drainStart != 0 {
			now := monoUsec()
			fr.drainStart = now - (now-fr.drainStart)/2
		}
	}
	fr.drained += uint64(n)
	if fr.drainStart == 0 && buffered > 0 {
		fr.drainStart = monoUsec()
		fr.drained = 0
	}
	if fr.drainStart != 0 && fr.drained > c.xonRateBytes() {
		if fr.prevDrained == 0 {
			fr.prevDrained = fr.drained
		}
		rate := uint32(0)
		if delta := monoUsec() - fr.drainStart; delta > 0 {
			// kbps = bytes/µs * 1000.
			if r := fr.prevDrained * 1000 / uint64(delta); r > 1<<31-1 {
				rate = 1<<31 - 1
			} else {
				rate = uint32(max(r, 1))
			}
		}
		fr.prevDrained = fr.drained
		if rate != 0 {
			fr.ewmaRate = uint32(nEWMA(uint64(rate), uint64(fr.ewmaRate), uint64(c.ccp.XonEWMACnt)))
			fr.drained = 0
			fr.drainStart = 0
		}
	}
	// C tor doubles the advertised rate while its outbuf stays empty for
	// cc_xon_rate cells; here, while the reader outpaces the exit (it
	// found the queue empty and waited) for as many bytes. Without this a
	// stream the exit limits to a rate measured while its reader was slow
	// stays at it: short bursts at that rate still queue a few cells.
	fr.sinceDouble += uint64(n)
	if fr.starved && !fr.xoffSent && fr.lastSentRate != 0 && fr.sinceDouble >= c.xonRateBytes() {
		fr.ewmaRate = uint32(min(2*uint64(max(fr.ewmaRate, fr.lastSentRate)), 1<<31-1))
		fr.starved, fr.sinceDouble = false, 0
	}
	var a flowAction
	if !fr.xoffSent {
		if s.rateChangedLocked() {
			a.xon = true
		}
	} else if buffered == 0 {
		a.xon = true
	}
	if a.xon {
		fr.lastSentRate = fr.ewmaRate
		fr.xoffSent = false
		a.rate = fr.ewmaRate
	}
	if buffered == 0 {
		fr.drainStart = 0
		if fr.drained >= c.xonRateBytes() && fr.lastSentRate != 0 {
			fr.ewmaRate = uint32(min(2*uint64(fr.ewmaRate), 1<<31-1))
			fr.prevDrained = fr.drained
			fr.drained = 0
		}
	}
	return a
}

// rateChangedLocked reports whether the drain rate moved more than
// cc_xon_change_pct from the one last advertised.
func (s *Stream) rateChangedLocked() bool {
	fr := &s.fr
	if fr.lastSentRate == 0 {
		return false
	}
	pct := uint64(s.c.ccp.XonChangePct)
	last := uint64(fr.lastSentRate)
	return uint64(fr.ewmaRate) > (100+pct)*last/100 || uint64(fr.ewmaRate) < (100-pct)*last/100
}

// sendFlowLocked sends the XOFF and XON that a decides. c.mu must be held.
func (c *Circuit) sendFlowLocked(s *Stream, a flowAction) error {
	if a.xoff {
		if err := c.sendLocked(s.hop, relayXoff, s.id, []byte{flowCellVersion}, false); err != nil {
			return err
		}
		c.xoffSent++
		c.log.Infof("Circuit %d: sending XOFF on stream %d", c.id, s.id)
	}
	if a.xon {
		var b [xonBodyLen]byte
		b[0] = flowCellVersion
		binary.BigEndian.PutUint32(b[1:], a.rate)
		if err := c.sendLocked(s.hop, relayXon, s.id, b[:], false); err != nil {
			return err
		}
		c.xonSent++
		c.log.Infof("Circuit %d: sending XON on stream %d (rate %d kB/s)", c.id, s.id, a.rate)
	}
	return nil
}

// sendFlow is sendFlowLocked taking c.mu.
func (c *Circuit) sendFlow(s *Stream, a flowAction) error {
	if !a.xoff && !a.xon {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || s.sentEnd {
		return nil
	}
	return c.sendFlowLocked(s, a)
}

// handleXoff handles the exit's XOFF on the circuit goroutine (C tor's
// circuit_process_stream_xoff): the stream's writers stop until XON.
// Dubious XOFFs (repeated, on a stream without flow control, or more than
// the data sent could cause) are logged and, as C tor does, not fatal.
func (s *Stream) handleXoff(body []byte) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !s.fc {
		c.log.Infof("Circuit %d: XOFF on stream %d, which has no flow control; ignored", c.id, s.id)
		return
	}
	if err := parseXoff(body); err != nil {
		c.log.Infof("Circuit %d: stream %d: %v; ignored", c.id, s.id, err)
		return
	}
	fs := &s.fs
	if fs.xoffRecv {
		c.log.Infof("Circuit %d: second XOFF on stream %d; ignored", c.id, s.id)
		return
	}
	if fs.numXoff == xoffCountScaleAt {
		fs.xmit /= 2
		fs.numXoff /= 2
		fs.numXon /= 2
	}
	fs.numXoff++
	if limit := uint64(c.ccp.XoffExit) * cell.RelayDataLen; fs.xmit < limit*fs.numXoff {
		c.log.Infof("Circuit %d: stream %d: XOFF number %d after only %d bytes sent", c.id, s.id, fs.numXoff, fs.xmit)
	}
	fs.xoffRecv = true
	c.xoffRecv++
	c.log.Infof("Circuit %d: got XOFF on stream %d", c.id, s.id)
}

// handleXon handles the exit's XON on the circuit goroutine (C tor's
// circuit_process_stream_xon): writers resume, at the advised rate.
func (s *Stream) handleXon(body []byte) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !s.fc {
		c.log.Infof("Circuit %d: XON on stream %d, which has no flow control; ignored", c.id, s.id)
		return
	}
	kbps, err := parseXon(body)
	if err != nil {
		c.log.Infof("Circuit %d: stream %d: %v; ignored", c.id, s.id, err)
		return
	}
	fs := &s.fs
	if fs.numXon == xonCountScaleAt {
		fs.xmit /= 2
		fs.numXoff /= 2
		fs.numXon /= 2
	}
	fs.numXon++
	if limit := uint64(min(c.ccp.XoffExit, c.ccp.XonRate)) * cell.RelayDataLen; fs.xmit < limit*fs.numXon {
		c.log.Infof("Circuit %d: stream %d: XON number %d after only %d bytes sent", c.id, s.id, fs.numXon, fs.xmit)
	}
	rate := uint64(kbps) * 1000
	if rate == kbpsUnlimitedRate || rate > 1<<31-1 {
		rate = 0
	}
	fs.rate = rate
	fs.tokens = int64(rate)
	fs.tokAt = monoUsec()
	fs.xoffRecv = false
	c.xonRecv++
	c.log.Infof("Circuit %d: got XON on stream %d (rate %d kB/s)", c.id, s.id, kbps)
	c.wakeLocked()
}

// rateWaitLocked returns how long a writer must wait before sending n
// bytes on s under the advised rate (0: now; the tokens are then taken).
// c.mu must be held.
func (s *Stream) rateWaitLocked(n int) int64 {
	fs := &s.fs
	if fs.rate == 0 {
		return 0
	}
	now := monoUsec()
	if el := now - fs.tokAt; el > 0 {
		fs.tokens = min(fs.tokens+el*int64(fs.rate)/1e6, int64(fs.rate))
		fs.tokAt = now
	}
	if fs.tokens >= int64(n) || fs.tokens >= int64(fs.rate) {
		fs.tokens -= int64(n)
		return 0
	}
	return (int64(n)-fs.tokens)*1e6/int64(fs.rate) + 1
}

// noteSentLocked accounts for n bytes sent on a flow-controlled stream
// (C tor's flow_control_note_sent_data). c.mu must be held.
func (s *Stream) noteSentLocked(n int) {
	fs := &s.fs
	if fs.xmit >= totalXmitScaleAt-uint64(n) {
		fs.xmit /= 2
		fs.numXoff /= 2
		fs.numXon /= 2
	}
	fs.xmit += uint64(n)
}
