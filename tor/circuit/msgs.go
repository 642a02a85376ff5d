package circuit

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"tinytor/tor/cell"
	"tinytor/tor/errfmt"
)

// BeginFlags are the flags of a RELAY_BEGIN cell (tor-spec 6.2).
type BeginFlags uint32

// BEGIN flags (tor-spec 6.2).
const (
	IPv6OK        BeginFlags = 1 << 0 // we can use IPv6 addresses
	IPv4NotOK     BeginFlags = 1 << 1 // we do not want IPv4 addresses
	IPv6Preferred BeginFlags = 1 << 2 // prefer IPv6 when both exist
)

// encodeBegin builds the BEGIN payload ADDRPORT | NUL | FLAGS.
func encodeBegin(host string, port uint16, flags BeginFlags) ([]byte, error) {
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + a.String() + "]"
	}
	// An empty host is what a client sends to an onion service.
	if strings.ContainsRune(host, 0) || (strings.Contains(host, ":") && !strings.HasPrefix(host, "[")) {
		return nil, errors.New("BEGIN: host name contains a NUL byte or an unbracketed colon")
	}
	if port == 0 {
		return nil, errors.New("BEGIN: port 0")
	}
	b := make([]byte, 0, len(host)+12)
	b = append(b, strings.ToLower(host)...)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(port), 10)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(flags))
	if len(b) > cell.RelayDataLen {
		return nil, errfmt.Errorf("BEGIN: host of %d bytes is too long", len(host))
	}
	return b, nil
}

// Connected is the content of a RELAY_CONNECTED cell (tor-spec 6.2).
type Connected struct {
	Addr netip.Addr // zero if the exit sent none (BEGIN_DIR)
	TTL  uint32
}

// ParseConnected decodes the data of a RELAY_CONNECTED cell: empty, an
// IPv4 address and TTL, or four zero bytes, type 6, an IPv6 address and
// TTL.
func ParseConnected(b []byte) (Connected, error) {
	switch {
	case len(b) == 0:
		return Connected{}, nil
	case len(b) >= 4 && (b[0]|b[1]|b[2]|b[3]) != 0:
		c := Connected{Addr: netip.AddrFrom4([4]byte(b[:4]))}
		if len(b) >= 8 {
			c.TTL = binary.BigEndian.Uint32(b[4:8])
		}
		return c, nil
	case len(b) >= 4 && len(b) < 5:
		return Connected{}, nil // zero IPv4 address: no address
	case len(b) >= 5 && b[4] == 6:
		if len(b) < 21 {
			return Connected{}, errfmt.Errorf("CONNECTED: IPv6 address needs 21 bytes, have %d", len(b))
		}
		c := Connected{Addr: netip.AddrFrom16([16]byte(b[5:21]))}
		if len(b) >= 25 {
			c.TTL = binary.BigEndian.Uint32(b[21:25])
		}
		return c, nil
	case len(b) >= 5:
		// All-zero IPv4 address followed by something else (C tor sends an
		// all-zero payload for BEGIN_DIR): no address.
		if b[4] == 0 {
			return Connected{}, nil
		}
		return Connected{}, errfmt.Errorf("CONNECTED: unknown address type %d at offset 4", b[4])
	}
	return Connected{}, errfmt.Errorf("CONNECTED: %d bytes is too short for an address", len(b))
}

// AnswerType is the type of one RELAY_RESOLVED answer (tor-spec 6.4).
type AnswerType uint8

// RESOLVED answer types.
const (
	AnswerHostname     AnswerType = 0x00
	AnswerIPv4         AnswerType = 0x04
	AnswerIPv6         AnswerType = 0x06
	AnswerErrTransient AnswerType = 0xF0
	AnswerErrPermanent AnswerType = 0xF1
)

// Answer is one answer of a RELAY_RESOLVED cell.
type Answer struct {
	Type AnswerType
	Addr netip.Addr // for AnswerIPv4 and AnswerIPv6
	Host string     // for AnswerHostname
	TTL  uint32
}

// ParseResolved decodes the data of a RELAY_RESOLVED cell.
func ParseResolved(b []byte) ([]Answer, error) {
	var out []Answer
	for off := 0; off < len(b); {
		if len(b)-off < 2 {
			return nil, errfmt.Errorf("RESOLVED: answer at offset %d: truncated header", off)
		}
		t, n := AnswerType(b[off]), int(b[off+1])
		if len(b)-off-2 < n+4 {
			return nil, errfmt.Errorf("RESOLVED: answer at offset %d: value of %d bytes and TTL do not fit in %d bytes", off, n, len(b)-off-2)
		}
		v := b[off+2 : off+2+n]
		a := Answer{Type: t, TTL: binary.BigEndian.Uint32(b[off+2+n:])}
		switch t {
		case AnswerIPv4:
			if n != 4 {
				return nil, errfmt.Errorf("RESOLVED: IPv4 answer at offset %d has %d bytes", off, n)
			}
			a.Addr = netip.AddrFrom4([4]byte(v))
		case AnswerIPv6:
			if n != 16 {
				return nil, errfmt.Errorf("RESOLVED: IPv6 answer at offset %d has %d bytes", off, n)
			}
			a.Addr = netip.AddrFrom16([16]byte(v))
		case AnswerHostname:
			a.Host = string(v)
		}
		out = append(out, a)
		off += 2 + n + 4
	}
	return out, nil
}

// parseEnd returns the reason of a RELAY_END cell; empty means MISC.
func parseEnd(b []byte) cell.EndReason {
	if len(b) == 0 {
		return cell.EndMisc
	}
	return cell.EndReason(b[0])
}

// sendmeDigestLen is the size of an authenticated SENDME digest.
const sendmeDigestLen = 20

// parseSendme decodes a circuit-level SENDME body (tor-spec 7.3.1). An
// empty body is version 0.
func parseSendme(b []byte) (version uint8, digest []byte, err error) {
	if len(b) == 0 {
		return 0, nil, nil
	}
	if len(b) < 3 {
		return 0, nil, errfmt.Errorf("SENDME: %d bytes, header needs 3", len(b))
	}
	version = b[0]
	n := int(binary.BigEndian.Uint16(b[1:3]))
	if len(b)-3 < n {
		return 0, nil, errfmt.Errorf("SENDME: data length %d exceeds the %d bytes left", n, len(b)-3)
	}
	switch version {
	case 0:
		return 0, nil, nil
	case 1:
		if n < sendmeDigestLen {
			return 0, nil, errfmt.Errorf("SENDME v1: data of %d bytes, digest needs %d", n, sendmeDigestLen)
		}
		return 1, b[3 : 3+sendmeDigestLen], nil
	}
	return version, nil, errfmt.Errorf("SENDME: unknown version %d", version)
}
