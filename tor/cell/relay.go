package cell

import (
	"encoding/binary"
	"fmt"

	"tinytor/tor/errfmt"
)

// Layout of a relay cell's payload (tor-spec 6.1):
//
//	Relay command  [1 byte]
//	'Recognized'   [2 bytes]
//	StreamID       [2 bytes]
//	Digest         [4 bytes]
//	Length         [2 bytes]
//	Data           [Length bytes]
//	Padding        [PayloadLen - 11 - Length bytes]
const (
	RelayHeaderLen    = 11
	RelayDataLen      = PayloadLen - RelayHeaderLen // 498
	relayRecognizedAt = 1
	relayStreamIDAt   = 3
	RelayDigestAt     = 5 // offset of the 4-byte digest in the payload
	relayLengthAt     = 9
)

// RelayCommand is the command of a relay cell (tor-spec 6.1).
type RelayCommand uint8

// Relay commands (tor-spec 6.1, rend-spec-v3, padding-spec, prop324,
// prop329, prop339).
const (
	RelayBegin                 RelayCommand = 1
	RelayData                  RelayCommand = 2
	RelayEnd                   RelayCommand = 3
	RelayConnected             RelayCommand = 4
	RelaySendme                RelayCommand = 5
	RelayExtend                RelayCommand = 6
	RelayExtended              RelayCommand = 7
	RelayTruncate              RelayCommand = 8
	RelayTruncated             RelayCommand = 9
	RelayDrop                  RelayCommand = 10
	RelayResolve               RelayCommand = 11
	RelayResolved              RelayCommand = 12
	RelayBeginDir              RelayCommand = 13
	RelayExtend2               RelayCommand = 14
	RelayExtended2             RelayCommand = 15
	RelayConfluxLink           RelayCommand = 19
	RelayConfluxLinked         RelayCommand = 20
	RelayConfluxLinkedAck      RelayCommand = 21
	RelayConfluxSwitch         RelayCommand = 22
	RelayEstablishIntro        RelayCommand = 32
	RelayEstablishRendezvous   RelayCommand = 33
	RelayIntroduce1            RelayCommand = 34
	RelayIntroduce2            RelayCommand = 35
	RelayRendezvous1           RelayCommand = 36
	RelayRendezvous2           RelayCommand = 37
	RelayIntroEstablished      RelayCommand = 38
	RelayRendezvousEstablished RelayCommand = 39
	RelayIntroduceAck          RelayCommand = 40
	RelayPaddingNegotiate      RelayCommand = 41
	RelayPaddingNegotiated     RelayCommand = 42
	// C tor's or.h numbers (XOFF 43, XON 44), which live exits use; the
	// tor-spec snapshot in shared/ lists them the other way round.
	RelayXoff RelayCommand = 43
	RelayXon  RelayCommand = 44
)

var relayCommandNames = map[RelayCommand]string{
	RelayBegin:                 "BEGIN",
	RelayData:                  "DATA",
	RelayEnd:                   "END",
	RelayConnected:             "CONNECTED",
	RelaySendme:                "SENDME",
	RelayExtend:                "EXTEND",
	RelayExtended:              "EXTENDED",
	RelayTruncate:              "TRUNCATE",
	RelayTruncated:             "TRUNCATED",
	RelayDrop:                  "DROP",
	RelayResolve:               "RESOLVE",
	RelayResolved:              "RESOLVED",
	RelayBeginDir:              "BEGIN_DIR",
	RelayExtend2:               "EXTEND2",
	RelayExtended2:             "EXTENDED2",
	RelayConfluxLink:           "CONFLUX_LINK",
	RelayConfluxLinked:         "CONFLUX_LINKED",
	RelayConfluxLinkedAck:      "CONFLUX_LINKED_ACK",
	RelayConfluxSwitch:         "CONFLUX_SWITCH",
	RelayEstablishIntro:        "ESTABLISH_INTRO",
	RelayEstablishRendezvous:   "ESTABLISH_RENDEZVOUS",
	RelayIntroduce1:            "INTRODUCE1",
	RelayIntroduce2:            "INTRODUCE2",
	RelayRendezvous1:           "RENDEZVOUS1",
	RelayRendezvous2:           "RENDEZVOUS2",
	RelayIntroEstablished:      "INTRO_ESTABLISHED",
	RelayRendezvousEstablished: "RENDEZVOUS_ESTABLISHED",
	RelayIntroduceAck:          "INTRODUCE_ACK",
	RelayPaddingNegotiate:      "PADDING_NEGOTIATE",
	RelayPaddingNegotiated:     "PADDING_NEGOTIATED",
	RelayXon:                   "XON",
	RelayXoff:                  "XOFF",
}

// String returns the spec name of c without the RELAY_ prefix ("BEGIN_DIR"),
// or "relay_command(N)".
func (c RelayCommand) String() string {
	if s, ok := relayCommandNames[c]; ok {
		return s
	}
	return fmt.Sprintf("relay_command(%d)", uint8(c))
}

// RelayHeader is the decoded header of a relay cell.
type RelayHeader struct {
	Command    RelayCommand
	Recognized uint16
	StreamID   uint16
	Digest     [4]byte
	Length     uint16
}

// ParseRelayHeader decodes the relay header at the start of p. It does not
// check Length; see [RelayBody].
func ParseRelayHeader(p *[PayloadLen]byte) RelayHeader {
	var h RelayHeader
	h.Command = RelayCommand(p[0])
	h.Recognized = binary.BigEndian.Uint16(p[relayRecognizedAt:])
	h.StreamID = binary.BigEndian.Uint16(p[relayStreamIDAt:])
	copy(h.Digest[:], p[RelayDigestAt:RelayDigestAt+4])
	h.Length = binary.BigEndian.Uint16(p[relayLengthAt:])
	return h
}

// Put encodes h into the first RelayHeaderLen bytes of p.
func (h *RelayHeader) Put(p *[PayloadLen]byte) {
	p[0] = byte(h.Command)
	binary.BigEndian.PutUint16(p[relayRecognizedAt:], h.Recognized)
	binary.BigEndian.PutUint16(p[relayStreamIDAt:], h.StreamID)
	copy(p[RelayDigestAt:RelayDigestAt+4], h.Digest[:])
	binary.BigEndian.PutUint16(p[relayLengthAt:], h.Length)
}

// RelayCmd returns the relay command of payload p.
func RelayCmd(p *[PayloadLen]byte) RelayCommand { return RelayCommand(p[0]) }

// RelayRecognized returns the 'recognized' field of payload p.
func RelayRecognized(p *[PayloadLen]byte) uint16 {
	return binary.BigEndian.Uint16(p[relayRecognizedAt:])
}

// RelayStreamID returns the stream ID of payload p.
func RelayStreamID(p *[PayloadLen]byte) uint16 {
	return binary.BigEndian.Uint16(p[relayStreamIDAt:])
}

// RelayDigest returns the digest field of payload p.
func RelayDigest(p *[PayloadLen]byte) [4]byte {
	return [4]byte(p[RelayDigestAt : RelayDigestAt+4])
}

// SetRelayDigest sets the digest field of payload p.
func SetRelayDigest(p *[PayloadLen]byte, d [4]byte) {
	copy(p[RelayDigestAt:RelayDigestAt+4], d[:])
}

// RelayLength returns the length field of payload p, unchecked.
func RelayLength(p *[PayloadLen]byte) uint16 {
	return binary.BigEndian.Uint16(p[relayLengthAt:])
}

// RelayBody returns the data of relay payload p (a slice of p, not a copy),
// or an error if the length field exceeds RelayDataLen.
func RelayBody(p *[PayloadLen]byte) ([]byte, error) {
	n := RelayLength(p)
	if int(n) > RelayDataLen {
		return nil, errfmt.Errorf("relay cell length field %d exceeds %d", n, RelayDataLen)
	}
	return p[RelayHeaderLen : RelayHeaderLen+int(n)], nil
}

// SetRelay writes a relay header with a zero 'recognized' field and a zero
// digest, and the data, into p; the rest of p is left as it is (callers fill
// padding per tor-spec 6.1 before encrypting). It fails if data exceeds
// RelayDataLen.
func SetRelay(p *[PayloadLen]byte, cmd RelayCommand, streamID uint16, data []byte) error {
	if len(data) > RelayDataLen {
		return errfmt.Errorf("relay %s data of %d bytes exceeds %d", cmd, len(data), RelayDataLen)
	}
	h := RelayHeader{Command: cmd, StreamID: streamID, Length: uint16(len(data))}
	h.Put(p)
	copy(p[RelayHeaderLen:], data)
	return nil
}

// EndReason is the reason in a RELAY_END cell (tor-spec 6.3).
type EndReason uint8

// RELAY_END reasons (tor-spec 6.3).
const (
	EndMisc           EndReason = 1
	EndResolveFailed  EndReason = 2
	EndConnectRefused EndReason = 3
	EndExitPolicy     EndReason = 4
	EndDestroy        EndReason = 5
	EndDone           EndReason = 6
	EndTimeout        EndReason = 7
	EndNoRoute        EndReason = 8
	EndHibernating    EndReason = 9
	EndInternal       EndReason = 10
	EndResourceLimit  EndReason = 11
	EndConnReset      EndReason = 12
	EndTorProtocol    EndReason = 13
	EndNotDirectory   EndReason = 14
)

var endReasonNames = [...]string{
	EndMisc:           "MISC",
	EndResolveFailed:  "RESOLVEFAILED",
	EndConnectRefused: "CONNECTREFUSED",
	EndExitPolicy:     "EXITPOLICY",
	EndDestroy:        "DESTROY",
	EndDone:           "DONE",
	EndTimeout:        "TIMEOUT",
	EndNoRoute:        "NOROUTE",
	EndHibernating:    "HIBERNATING",
	EndInternal:       "INTERNAL",
	EndResourceLimit:  "RESOURCELIMIT",
	EndConnReset:      "CONNRESET",
	EndTorProtocol:    "TORPROTOCOL",
	EndNotDirectory:   "NOTDIRECTORY",
}

// String returns the spec name of r ("CONNECTREFUSED"), or "end_reason(N)".
func (r EndReason) String() string {
	if int(r) < len(endReasonNames) && endReasonNames[r] != "" {
		return endReasonNames[r]
	}
	return fmt.Sprintf("end_reason(%d)", uint8(r))
}

// DestroyReason is the reason in a DESTROY cell or a RELAY_TRUNCATED cell
// (tor-spec 5.4).
type DestroyReason uint8

// DESTROY reasons (tor-spec 5.4).
const (
	DestroyNone          DestroyReason = 0
	DestroyProtocol      DestroyReason = 1
	DestroyInternal      DestroyReason = 2
	DestroyRequested     DestroyReason = 3
	DestroyHibernating   DestroyReason = 4
	DestroyResourceLimit DestroyReason = 5
	DestroyConnectFailed DestroyReason = 6
	DestroyORIdentity    DestroyReason = 7
	DestroyChannelClosed DestroyReason = 8
	DestroyFinished      DestroyReason = 9
	DestroyTimeout       DestroyReason = 10
	DestroyDestroyed     DestroyReason = 11
	DestroyNoSuchService DestroyReason = 12
)

var destroyReasonNames = [...]string{
	DestroyNone:          "NONE",
	DestroyProtocol:      "PROTOCOL",
	DestroyInternal:      "INTERNAL",
	DestroyRequested:     "REQUESTED",
	DestroyHibernating:   "HIBERNATING",
	DestroyResourceLimit: "RESOURCELIMIT",
	DestroyConnectFailed: "CONNECTFAILED",
	DestroyORIdentity:    "OR_IDENTITY",
	DestroyChannelClosed: "CHANNEL_CLOSED",
	DestroyFinished:      "FINISHED",
	DestroyTimeout:       "TIMEOUT",
	DestroyDestroyed:     "DESTROYED",
	DestroyNoSuchService: "NOSUCHSERVICE",
}

// String returns the spec name of r ("OR_IDENTITY"), or "destroy_reason(N)".
func (r DestroyReason) String() string {
	if int(r) < len(destroyReasonNames) && destroyReasonNames[r] != "" {
		return destroyReasonNames[r]
	}
	return fmt.Sprintf("destroy_reason(%d)", uint8(r))
}
