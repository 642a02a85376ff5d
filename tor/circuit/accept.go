package circuit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"tinytor/tor/cell"
	"tinytor/tor/circuit/handshake"
	"tinytor/tor/errfmt"
)

// This file is the service side of streams: an onion service accepts the
// BEGIN cells a client sends through the virtual hop of a rendezvous
// circuit (rend-spec-v3 4.2, tor-spec 6.2).

// BeginRequest is a RELAY_BEGIN that arrived from the last hop.
type BeginRequest struct {
	// Host is the address part of ADDRPORT; clients of onion services
	// send it empty.
	Host  string
	Port  uint16
	Flags BeginFlags
}

// ParseBegin decodes the data of a RELAY_BEGIN cell: ADDRPORT | NUL, then
// optional FLAGS (tor-spec 6.2). ADDRPORT is "host:port", with an IPv6
// host in brackets and host possibly empty.
func ParseBegin(b []byte) (BeginRequest, error) {
	nul := bytes.IndexByte(b, 0)
	if nul < 0 {
		return BeginRequest{}, errors.New("BEGIN: ADDRPORT is not NUL-terminated")
	}
	ap := string(b[:nul])
	colon := strings.LastIndexByte(ap, ':')
	if colon < 0 {
		return BeginRequest{}, errfmt.Errorf("BEGIN: ADDRPORT %q has no port", ap)
	}
	host, ps := ap[:colon], ap[colon+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return BeginRequest{}, errfmt.Errorf("BEGIN: ADDRPORT %q: unterminated IPv6 address", ap)
		}
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return BeginRequest{}, errfmt.Errorf("BEGIN: ADDRPORT %q: IPv6 address without brackets", ap)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return BeginRequest{}, errfmt.Errorf("BEGIN: ADDRPORT %q: bad port", ap)
	}
	req := BeginRequest{Host: host, Port: uint16(port)}
	if rest := b[nul+1:]; len(rest) >= 4 {
		req.Flags = BeginFlags(binary.BigEndian.Uint32(rest))
	}
	return req, nil
}

// AcceptStreams makes the circuit accept streams that its last hop opens
// with BEGIN (the client of an onion service, through the virtual hop of a
// rendezvous circuit). For each BEGIN with a well-formed body and an
// unused stream ID, f is called with a new Stream registered under that
// ID; a malformed BEGIN is answered with END (TORPROTOCOL) without calling
// f. f runs on the circuit goroutine and must not block: it answers
// later, from another goroutine, with Stream.Accept or Stream.Reject. DATA
// that arrives before the answer (optimistic data) is queued on the
// stream. Without AcceptStreams, BEGIN cells go to Config.Control.
func (c *Circuit) AcceptStreams(f func(s *Stream, req BeginRequest)) {
	c.mu.Lock()
	c.accept = f
	c.mu.Unlock()
}

func (c *Circuit) acceptor() func(*Stream, BeginRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accept
}

// acceptBegin handles a BEGIN from hop hopIdx on the circuit goroutine.
func (c *Circuit) acceptBegin(f func(*Stream, BeginRequest), hopIdx int, sid uint16, body []byte) error {
	if sid == 0 {
		return errfmt.Errorf("BEGIN on stream 0: %w", ErrProtocol)
	}
	req, err := ParseBegin(body)
	c.mu.Lock()
	if c.streams[sid] != nil {
		c.mu.Unlock()
		return protocolErr("BEGIN for stream %d, which is in use", int(sid))
	}
	if err != nil {
		c.log.Infof("Circuit %d: refusing stream %d: %v", c.id, sid, err)
		err = c.sendLocked(hopIdx, cell.RelayEnd, sid, []byte{byte(cell.EndTorProtocol)}, false)
		c.mu.Unlock()
		return err
	}
	if c.err != nil {
		c.mu.Unlock()
		return nil
	}
	s := &Stream{
		c:             c,
		id:            sid,
		hop:           hopIdx,
		fc:            c.hops[hopIdx].cc != nil,
		kind:          kindData,
		remote:        Addr(":" + strconv.Itoa(int(req.Port))),
		opened:        make(chan openResult, 1),
		incoming:      true,
		packageWindow: StreamWindowStart,
		deliverWindow: StreamWindowStart,
		isOpen:        true,
		rnotify:       make(chan struct{}, 1),
		rdone:         make(chan struct{}),
	}
	s.rdl.init()
	s.wdl.init()
	c.streams[sid] = s
	c.readers[s] = struct{}{}
	c.mu.Unlock()
	f(s, req)
	return nil
}

// refuseBeginDir answers a BEGIN_DIR on a circuit that accepts streams
// (an onion service's rendezvous circuit) with END (NOTDIRECTORY), as C
// tor does on any circuit that is not a relay's directory circuit.
func (c *Circuit) refuseBeginDir(hopIdx int, sid uint16) error {
	if sid == 0 {
		return errfmt.Errorf("BEGIN_DIR on stream 0: %w", ErrProtocol)
	}
	c.log.Infof("Circuit %d: refusing BEGIN_DIR on stream %d: this is not a directory circuit", c.id, sid)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams[sid] != nil {
		return protocolErr("BEGIN_DIR for stream %d, which is in use", int(sid))
	}
	if c.err != nil {
		return nil
	}
	return c.sendLocked(hopIdx, cell.RelayEnd, sid, []byte{byte(cell.EndNotDirectory)}, false)
}

// Accept answers an incoming stream's BEGIN with an empty CONNECTED, as
// an onion service does (rend-spec-v3 4.2).
func (s *Stream) Accept() error {
	if !s.incoming {
		return errors.New("circuit: Accept on a stream we opened")
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.sentEnd || s.writeErr != nil {
		return errAnswered(s)
	}
	if c.err != nil {
		return c.err
	}
	return c.sendLocked(s.hop, cell.RelayConnected, s.id, nil, false)
}

// Reject refuses an incoming stream with END and the given reason (for
// example EXITPOLICY for a port the service does not offer, or
// RESOURCELIMIT) and releases it.
func (s *Stream) Reject(reason cell.EndReason) error {
	if !s.incoming {
		return errors.New("circuit: Reject on a stream we opened")
	}
	c := s.c
	c.mu.Lock()
	var err error
	if !s.sentEnd && s.writeErr == nil && c.err == nil {
		err = c.sendLocked(s.hop, cell.RelayEnd, s.id, []byte{byte(reason)}, false)
	}
	s.sentEnd = true
	c.mu.Unlock()
	s.forget()
	s.Close()
	return err
}

// errAnswered is the error of answering a stream that already ended.
func errAnswered(s *Stream) error {
	return errfmt.Errorf("circuit %d: stream %d already ended", s.c.id, s.id)
}

// KH returns the KH of hop hopIdx (0-based; -1 means the last hop) from
// its handshake: the value ESTABLISH_INTRO authenticates (rend-spec-v3
// 3.1.1). Hops added with AddHop have none.
func (c *Circuit) KH(hopIdx int) ([handshake.HashLen]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hopIdx < 0 {
		hopIdx = len(c.hops) - 1
	}
	if hopIdx < 0 || hopIdx >= len(c.hops) {
		return [handshake.HashLen]byte{}, errfmt.Errorf("circuit: no hop %d", hopIdx)
	}
	var zero [handshake.HashLen]byte
	if c.hops[hopIdx].kh == zero {
		return zero, errfmt.Errorf("circuit: hop %d has no handshake key material", hopIdx)
	}
	return c.hops[hopIdx].kh, nil
}
