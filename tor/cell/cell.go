// Package cell encodes and decodes Tor cells (tor-spec sections 3-6): the
// fixed-size cells that carry circuits, the variable-length cells of the link
// handshake, the relay cell header, and the payloads of the control cells a
// client uses (CREATE2, CREATE_FAST, NETINFO, VERSIONS, DESTROY, EXTEND2).
//
// Fixed-size cells are plain values of fixed size ([Cell]); they are handed
// around by pointer, and handing a *Cell to someone transfers its ownership.
// A [Pool] recycles them so that the data path allocates nothing.
//
// # The memory bound and back-pressure
//
// The client's cells all come from one Pool whose capacity is the memory
// plan's queued-cells cap (MaxMemInQueues / 600 bytes, board/mem's
// Caps().QueuedCells, given to tor.Config.MaxQueuedCells). The pool never
// holds more: a Get at capacity waits for a Put instead of allocating. A
// received DATA cell stays the same pool cell from the socket to the SOCKS
// reader (no copy into a byte buffer), so the pool's size is the bound on
// received data not yet read, plus the cells being sent.
//
// Back-pressure acts in three places:
//
//   - Reading from relays (tor/link, Channel's read loop): each cell is
//     read into a cell from [Pool.GetInbound], which waits while no more
//     than the pool's reserve is free. Meanwhile the connection is not
//     read and TCP stops the relay.
//   - Writing from the SOCKS side (tor/circuit, Stream.Write): each DATA
//     cell is taken with [Pool.Get] before the circuit's mutex, so a writer
//     waits for a free cell without stopping the circuit.
//   - Towards the exits (tor/circuit): SENDMEs are withheld while cells
//     wait for a reader. A stream sends its SENDME only from Read once
//     fewer than ten cells are queued; a circuit sends its SENDME only
//     when the cells received and not consumed plus its delivery window
//     stay within the circuit window. So a stream whose reader is slow
//     holds at most 500 cells and a circuit at most 1000 per hop, and the
//     exit stops sending instead of filling the pool. With congestion
//     control (proposal 324) a stream's reader that falls behind sends
//     XOFF past cc_xoff_client cells, and the circuit withholds its
//     SENDMEs while more than max(1000, 2*cc_xoff_client) cells wait
//     unread, so the exit stops the same way.
//
// Why this cannot deadlock: cells are held for long only by readers
// (cells queued on streams); everything else comes back by itself.
// Outbound cells (DATA, SENDME, END, DESTROY) come back once the channel's
// write loop has written them, which depends on no reader, and inbound
// reads may not use the reserve, so a pool full of unread data still lets
// SENDMEs and ENDs out. Cells on a circuit's inbound queue come back once
// its goroutine has handled them, which waits only for outbound cells. A
// read loop that waits therefore waits for readers only, and a slow reader
// frees cells as it reads. Readers that have stopped reading altogether
// (a paused download, say), enough of them to hold the whole inbound
// share, would stop every channel for good: so after the pool's stall
// timeout (DefaultStallTimeout) without a single cell coming back, the
// pool asks its [Reclaimer]s — the circuits — to let go, and the circuit
// holding the most closes its stream with the most unread cells (its
// reader gets circuit.ErrReclaimed), as C tor's out-of-memory handler
// closes the circuits with the oldest queued cells. The windows make this
// rare: a capacity of N cells absorbs N/500 stopped streams before any
// read loop waits at all.
//
// All multi-byte fields are big-endian ("network order"), encoded explicitly
// with encoding/binary, so the code is independent of the host byte order.
package cell

import (
	"encoding/binary"
	"fmt"
)

// Sizes of a fixed-size cell for link protocol version 4 and later.
const (
	// PayloadLen is the size of a fixed-size cell's payload.
	PayloadLen = 509
	// Len is the size of an encoded fixed-size cell with a 4-byte circuit
	// ID (link protocol 4 and later): CircID(4) Command(1) Payload(509).
	Len = 4 + 1 + PayloadLen
	// LenV3 is the size of an encoded fixed-size cell with a 2-byte circuit
	// ID (link protocol 3 and earlier).
	LenV3 = 2 + 1 + PayloadLen
	// MaxVarPayloadLen is the largest payload a variable-length cell can
	// carry (its length field is 16 bits).
	MaxVarPayloadLen = 0xffff
)

// Command is a cell command (tor-spec 3).
type Command uint8

// Cell commands (tor-spec 3).
const (
	Padding          Command = 0
	Create           Command = 1
	Created          Command = 2
	Relay            Command = 3
	Destroy          Command = 4
	CreateFast       Command = 5
	CreatedFast      Command = 6
	Versions         Command = 7
	Netinfo          Command = 8
	RelayEarly       Command = 9
	Create2          Command = 10
	Created2         Command = 11
	PaddingNegotiate Command = 12
	VPadding         Command = 128
	Certs            Command = 129
	AuthChallenge    Command = 130
	Authenticate     Command = 131
	Authorize        Command = 132
)

var commandNames = map[Command]string{
	Padding:          "PADDING",
	Create:           "CREATE",
	Created:          "CREATED",
	Relay:            "RELAY",
	Destroy:          "DESTROY",
	CreateFast:       "CREATE_FAST",
	CreatedFast:      "CREATED_FAST",
	Versions:         "VERSIONS",
	Netinfo:          "NETINFO",
	RelayEarly:       "RELAY_EARLY",
	Create2:          "CREATE2",
	Created2:         "CREATED2",
	PaddingNegotiate: "PADDING_NEGOTIATE",
	VPadding:         "VPADDING",
	Certs:            "CERTS",
	AuthChallenge:    "AUTH_CHALLENGE",
	Authenticate:     "AUTHENTICATE",
	Authorize:        "AUTHORIZE",
}

// String returns the spec name of c ("RELAY_EARLY"), or "command(N)".
func (c Command) String() string {
	if s, ok := commandNames[c]; ok {
		return s
	}
	return fmt.Sprintf("command(%d)", uint8(c))
}

// IsVariable reports whether cells with command cmd are variable-length
// (tor-spec 3: VERSIONS and every command of 128 or more).
func IsVariable(cmd Command) bool {
	return cmd == Versions || cmd >= 128
}

// Cell is a fixed-size cell. Its zero value is a PADDING cell on circuit 0.
type Cell struct {
	CircID  uint32
	Command Command
	Payload [PayloadLen]byte
}

// MarshalTo encodes c into buf using the link v4+ format (4-byte circuit
// ID). It does not allocate.
func (c *Cell) MarshalTo(buf *[Len]byte) {
	binary.BigEndian.PutUint32(buf[0:4], c.CircID)
	buf[4] = byte(c.Command)
	copy(buf[5:], c.Payload[:])
}

// Unmarshal decodes a link v4+ fixed-size cell from buf into c. It does not
// allocate. Every byte string is a syntactically valid cell; whether the
// command is fixed-size is the caller's concern (see [IsVariable]).
func (c *Cell) Unmarshal(buf *[Len]byte) {
	c.CircID = binary.BigEndian.Uint32(buf[0:4])
	c.Command = Command(buf[4])
	copy(c.Payload[:], buf[5:])
}

// Reset zeroes c.
func (c *Cell) Reset() { *c = Cell{} }

// String describes c without its payload, for logs.
func (c *Cell) String() string {
	return fmt.Sprintf("%s cell on circuit %#x", c.Command, c.CircID)
}

// VarCell is a variable-length cell (VERSIONS, VPADDING, CERTS,
// AUTH_CHALLENGE, AUTHENTICATE, AUTHORIZE).
type VarCell struct {
	CircID  uint32
	Command Command
	Payload []byte
}

// String describes v without its payload, for logs.
func (v *VarCell) String() string {
	return fmt.Sprintf("%s cell (%d bytes) on circuit %#x", v.Command, len(v.Payload), v.CircID)
}
