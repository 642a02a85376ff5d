package cell

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"tinytor/tor/errfmt"
)

// Handshake types for CREATE2 and EXTEND2 (tor-spec 5.1).
const (
	HandshakeTAP   uint16 = 0x0000
	HandshakeNtor  uint16 = 0x0002
	HandshakeNtor3 uint16 = 0x0003
)

// FastKeyLen is the size of X in CREATE_FAST and of Y and KH in
// CREATED_FAST (tor-spec 5.1.5: HASH_LEN).
const FastKeyLen = 20

// ErrTruncated is wrapped by decoders when a payload ends before a field.
var ErrTruncated = errors.New("truncated")

func truncated(what string, need, have int) error {
	return errfmt.Errorf("%s: need %d bytes, have %d: %w", what, need, have, ErrTruncated)
}

// Create2 is the payload of a CREATE2 cell (tor-spec 5.1), and the
// handshake part of an EXTEND2 cell.
type Create2Msg struct {
	HandshakeType uint16
	// HandshakeData is the client's handshake. When decoded it aliases the
	// decoded buffer.
	HandshakeData []byte
}

// MarshalTo encodes c into p: HTYPE(2) HLEN(2) HDATA; the rest of p is
// zeroed.
func (c *Create2Msg) MarshalTo(p *[PayloadLen]byte) error {
	if len(c.HandshakeData) > PayloadLen-4 {
		return errfmt.Errorf("CREATE2 handshake data of %d bytes exceeds %d", len(c.HandshakeData), PayloadLen-4)
	}
	*p = [PayloadLen]byte{}
	binary.BigEndian.PutUint16(p[0:2], c.HandshakeType)
	binary.BigEndian.PutUint16(p[2:4], uint16(len(c.HandshakeData)))
	copy(p[4:], c.HandshakeData)
	return nil
}

// ParseCreate2 decodes a CREATE2 payload. Bytes after HDATA are ignored.
func ParseCreate2(p []byte) (Create2Msg, error) {
	if len(p) < 4 {
		return Create2Msg{}, truncated("CREATE2 header", 4, len(p))
	}
	n := int(binary.BigEndian.Uint16(p[2:4]))
	if len(p)-4 < n {
		return Create2Msg{}, truncated("CREATE2 handshake data", n, len(p)-4)
	}
	return Create2Msg{HandshakeType: binary.BigEndian.Uint16(p[0:2]), HandshakeData: p[4 : 4+n]}, nil
}

// Created2 is the payload of a CREATED2 cell and of an EXTENDED2 relay cell
// (tor-spec 5.1, 5.1.2): HLEN(2) HDATA.
type Created2Msg struct {
	// HandshakeData is the server's handshake. When decoded it aliases the
	// decoded buffer.
	HandshakeData []byte
}

// MarshalTo encodes c into p; the rest of p is zeroed.
func (c *Created2Msg) MarshalTo(p *[PayloadLen]byte) error {
	if len(c.HandshakeData) > PayloadLen-2 {
		return errfmt.Errorf("CREATED2 handshake data of %d bytes exceeds %d", len(c.HandshakeData), PayloadLen-2)
	}
	*p = [PayloadLen]byte{}
	binary.BigEndian.PutUint16(p[0:2], uint16(len(c.HandshakeData)))
	copy(p[2:], c.HandshakeData)
	return nil
}

// AppendTo appends the encoding of c (as EXTENDED2 relay data) to b.
func (c *Created2Msg) AppendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.HandshakeData)))
	return append(b, c.HandshakeData...)
}

// ParseCreated2 decodes a CREATED2 payload or EXTENDED2 relay data. Bytes
// after HDATA are ignored.
func ParseCreated2(p []byte) (Created2Msg, error) {
	if len(p) < 2 {
		return Created2Msg{}, truncated("CREATED2 header", 2, len(p))
	}
	n := int(binary.BigEndian.Uint16(p[0:2]))
	if len(p)-2 < n {
		return Created2Msg{}, truncated("CREATED2 handshake data", n, len(p)-2)
	}
	return Created2Msg{HandshakeData: p[2 : 2+n]}, nil
}

// CreateFast is the payload of a CREATE_FAST cell (tor-spec 5.1.5).
type CreateFastMsg struct {
	X [FastKeyLen]byte
}

// MarshalTo encodes c into p; the rest of p is zeroed.
func (c *CreateFastMsg) MarshalTo(p *[PayloadLen]byte) {
	*p = [PayloadLen]byte{}
	copy(p[:], c.X[:])
}

// ParseCreateFast decodes a CREATE_FAST payload.
func ParseCreateFast(p []byte) (CreateFastMsg, error) {
	if len(p) < FastKeyLen {
		return CreateFastMsg{}, truncated("CREATE_FAST key material", FastKeyLen, len(p))
	}
	return CreateFastMsg{X: [FastKeyLen]byte(p[:FastKeyLen])}, nil
}

// CreatedFast is the payload of a CREATED_FAST cell (tor-spec 5.1.5).
type CreatedFastMsg struct {
	Y            [FastKeyLen]byte
	DerivativeKH [FastKeyLen]byte
}

// MarshalTo encodes c into p; the rest of p is zeroed.
func (c *CreatedFastMsg) MarshalTo(p *[PayloadLen]byte) {
	*p = [PayloadLen]byte{}
	copy(p[:], c.Y[:])
	copy(p[FastKeyLen:], c.DerivativeKH[:])
}

// ParseCreatedFast decodes a CREATED_FAST payload.
func ParseCreatedFast(p []byte) (CreatedFastMsg, error) {
	if len(p) < 2*FastKeyLen {
		return CreatedFastMsg{}, truncated("CREATED_FAST key material", 2*FastKeyLen, len(p))
	}
	return CreatedFastMsg{
		Y:            [FastKeyLen]byte(p[:FastKeyLen]),
		DerivativeKH: [FastKeyLen]byte(p[FastKeyLen : 2*FastKeyLen]),
	}, nil
}

// ParseDestroy returns the reason in a DESTROY payload (its first byte).
func ParseDestroy(p []byte) (DestroyReason, error) {
	if len(p) < 1 {
		return 0, truncated("DESTROY reason", 1, 0)
	}
	return DestroyReason(p[0]), nil
}

// MarshalDestroy encodes a DESTROY payload with reason r into p.
func MarshalDestroy(p *[PayloadLen]byte, r DestroyReason) {
	*p = [PayloadLen]byte{}
	p[0] = byte(r)
}

// EncodeVersions encodes the payload of a VERSIONS cell (tor-spec 4): each
// version as 2 bytes.
func EncodeVersions(vs ...uint16) []byte {
	b := make([]byte, 0, 2*len(vs))
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

// ParseVersions decodes the payload of a VERSIONS cell. An odd length is
// an error.
func ParseVersions(p []byte) ([]uint16, error) {
	if len(p)%2 != 0 {
		return nil, errfmt.Errorf("VERSIONS payload has odd length %d", len(p))
	}
	vs := make([]uint16, len(p)/2)
	for i := range vs {
		vs[i] = binary.BigEndian.Uint16(p[2*i:])
	}
	return vs, nil
}

// Address types in NETINFO cells (tor-spec 4.5).
const (
	addrTypeIPv4 = 0x04
	addrTypeIPv6 = 0x06
)

// NetinfoMsg is the payload of a NETINFO cell (tor-spec 4.5).
type NetinfoMsg struct {
	// Time is the sender's clock in seconds since the Unix epoch; clients
	// send 0.
	Time uint32
	// OtherAddr is the address the sender sees for its peer; the zero
	// netip.Addr when absent or of an unknown type.
	OtherAddr netip.Addr
	// MyAddrs are the sender's own addresses of known types.
	MyAddrs []netip.Addr
}

// MarshalTo encodes n into p; the rest of p is zeroed. At most 255 of
// MyAddrs fit the count byte, and they must fit the payload.
func (n *NetinfoMsg) MarshalTo(p *[PayloadLen]byte) error {
	*p = [PayloadLen]byte{}
	b := p[:0]
	b = binary.BigEndian.AppendUint32(b, n.Time)
	b = appendNetinfoAddr(b, n.OtherAddr)
	if len(n.MyAddrs) > 255 {
		return errfmt.Errorf("NETINFO with %d addresses: at most 255 fit", len(n.MyAddrs))
	}
	b = append(b, byte(len(n.MyAddrs)))
	for _, a := range n.MyAddrs {
		if !a.IsValid() {
			return errors.New("NETINFO: invalid own address")
		}
		b = appendNetinfoAddr(b, a)
	}
	if len(b) > PayloadLen {
		return errfmt.Errorf("NETINFO of %d bytes exceeds %d", len(b), PayloadLen)
	}
	copy(p[:], b) // no-op unless append reallocated
	return nil
}

func appendNetinfoAddr(b []byte, a netip.Addr) []byte {
	switch {
	case a.Is4() || a.Is4In6():
		v := a.Unmap().As4()
		b = append(b, addrTypeIPv4, 4)
		return append(b, v[:]...)
	case a.Is6():
		v := a.As16()
		b = append(b, addrTypeIPv6, 16)
		return append(b, v[:]...)
	}
	// An absent address is sent as IPv4 0.0.0.0, which tor-spec allows
	// implementations to treat as unknown.
	return append(b, addrTypeIPv4, 4, 0, 0, 0, 0)
}

// ParseNetinfo decodes a NETINFO payload. Addresses of unknown types or
// with a length that does not match their type are skipped (tor-spec 4.5);
// trailing bytes are ignored.
func ParseNetinfo(p []byte) (NetinfoMsg, error) {
	var n NetinfoMsg
	if len(p) < 4 {
		return n, truncated("NETINFO time", 4, len(p))
	}
	n.Time = binary.BigEndian.Uint32(p)
	off := 4
	a, next, err := parseNetinfoAddr(p, off, "NETINFO other address")
	if err != nil {
		return n, err
	}
	n.OtherAddr, off = a, next
	if off >= len(p) {
		return n, truncated("NETINFO address count", 1, 0)
	}
	count := int(p[off])
	off++
	for i := range count {
		a, next, err := parseNetinfoAddr(p, off, fmt.Sprintf("NETINFO own address %d of %d", i+1, count))
		if err != nil {
			return n, err
		}
		off = next
		if a.IsValid() {
			n.MyAddrs = append(n.MyAddrs, a)
		}
	}
	return n, nil
}

func parseNetinfoAddr(p []byte, off int, what string) (netip.Addr, int, error) {
	if len(p)-off < 2 {
		return netip.Addr{}, 0, errfmt.Errorf("%s at offset %d: %w", what, off, truncated("type and length", 2, len(p)-off))
	}
	typ, n := p[off], int(p[off+1])
	off += 2
	if len(p)-off < n {
		return netip.Addr{}, 0, errfmt.Errorf("%s at offset %d: %w", what, off-2, truncated("value", n, len(p)-off))
	}
	v := p[off : off+n]
	off += n
	switch {
	case typ == addrTypeIPv4 && n == 4:
		return netip.AddrFrom4([4]byte(v)), off, nil
	case typ == addrTypeIPv6 && n == 16:
		return netip.AddrFrom16([16]byte(v)), off, nil
	}
	return netip.Addr{}, off, nil
}

// LinkSpecType is the type of an EXTEND2 link specifier (tor-spec 5.1.2).
type LinkSpecType uint8

// Link specifier types (tor-spec 5.1.2).
const (
	LinkSpecIPv4     LinkSpecType = 0
	LinkSpecIPv6     LinkSpecType = 1
	LinkSpecLegacyID LinkSpecType = 2
	LinkSpecEd25519  LinkSpecType = 3
)

// String names t.
func (t LinkSpecType) String() string {
	switch t {
	case LinkSpecIPv4:
		return "IPv4"
	case LinkSpecIPv6:
		return "IPv6"
	case LinkSpecLegacyID:
		return "legacy identity"
	case LinkSpecEd25519:
		return "Ed25519 identity"
	}
	return fmt.Sprintf("link_specifier(%d)", uint8(t))
}

// linkSpecLen is the required length of known link specifier types.
func linkSpecLen(t LinkSpecType) int {
	switch t {
	case LinkSpecIPv4:
		return 6
	case LinkSpecIPv6:
		return 18
	case LinkSpecLegacyID:
		return 20
	case LinkSpecEd25519:
		return 32
	}
	return -1
}

// LinkSpec is one link specifier of an EXTEND2 cell. Data of a decoded
// specifier aliases the decoded buffer.
type LinkSpec struct {
	Type LinkSpecType
	Data []byte
}

// LinkSpecAddr returns the IPv4 or IPv6 link specifier for ap.
func LinkSpecAddr(ap netip.AddrPort) LinkSpec {
	a := ap.Addr().Unmap()
	if a.Is4() {
		v := a.As4()
		return LinkSpec{Type: LinkSpecIPv4, Data: binary.BigEndian.AppendUint16(v[:], ap.Port())}
	}
	v := a.As16()
	return LinkSpec{Type: LinkSpecIPv6, Data: binary.BigEndian.AppendUint16(v[:], ap.Port())}
}

// LinkSpecRSAID returns the legacy identity link specifier for the SHA-1
// RSA identity fingerprint id.
func LinkSpecRSAID(id [20]byte) LinkSpec {
	return LinkSpec{Type: LinkSpecLegacyID, Data: append([]byte(nil), id[:]...)}
}

// LinkSpecEdID returns the Ed25519 identity link specifier for id.
func LinkSpecEdID(id [32]byte) LinkSpec {
	return LinkSpec{Type: LinkSpecEd25519, Data: append([]byte(nil), id[:]...)}
}

// AddrPort returns the address of an IPv4 or IPv6 link specifier.
func (s LinkSpec) AddrPort() (netip.AddrPort, error) {
	switch {
	case s.Type == LinkSpecIPv4 && len(s.Data) == 6:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(s.Data[:4])), binary.BigEndian.Uint16(s.Data[4:])), nil
	case s.Type == LinkSpecIPv6 && len(s.Data) == 18:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(s.Data[:16])), binary.BigEndian.Uint16(s.Data[16:])), nil
	}
	return netip.AddrPort{}, errfmt.Errorf("link specifier %s of %d bytes is not an address", s.Type, len(s.Data))
}

// Extend2 is the relay data of an EXTEND2 cell (tor-spec 5.1.2).
type Extend2Msg struct {
	Specs []LinkSpec
	Create2Msg
}

// AppendTo appends the encoding of e to b. It fails if a known link
// specifier has the wrong length, a field overflows its length byte, or the
// result would exceed RelayDataLen.
func (e *Extend2Msg) AppendTo(b []byte) ([]byte, error) {
	start := len(b)
	if len(e.Specs) > 255 {
		return b, errfmt.Errorf("EXTEND2 with %d link specifiers: at most 255 fit", len(e.Specs))
	}
	b = append(b, byte(len(e.Specs)))
	for i, s := range e.Specs {
		if want := linkSpecLen(s.Type); (want >= 0 && len(s.Data) != want) || len(s.Data) > 255 {
			return b[:start], errfmt.Errorf("EXTEND2 link specifier %d (%s) has bad length %d", i, s.Type, len(s.Data))
		}
		b = append(b, byte(s.Type), byte(len(s.Data)))
		b = append(b, s.Data...)
	}
	b = binary.BigEndian.AppendUint16(b, e.HandshakeType)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.HandshakeData)))
	b = append(b, e.HandshakeData...)
	if len(b)-start > RelayDataLen {
		return b[:start], errfmt.Errorf("EXTEND2 of %d bytes exceeds the relay data limit of %d", len(b)-start, RelayDataLen)
	}
	return b, nil
}

// ParseExtend2 decodes EXTEND2 relay data. Known link specifiers must have
// their defined lengths; at most one legacy and one Ed25519 identity is
// allowed; unknown specifiers are kept. Trailing bytes are ignored.
func ParseExtend2(p []byte) (Extend2Msg, error) {
	var e Extend2Msg
	if len(p) < 1 {
		return e, truncated("EXTEND2 link specifier count", 1, 0)
	}
	n := int(p[0])
	off := 1
	var seenRSA, seenEd bool
	for i := range n {
		if len(p)-off < 2 {
			return e, errfmt.Errorf("EXTEND2 link specifier %d at offset %d: %w", i, off, truncated("type and length", 2, len(p)-off))
		}
		t, l := LinkSpecType(p[off]), int(p[off+1])
		if len(p)-off-2 < l {
			return e, errfmt.Errorf("EXTEND2 link specifier %d (%s) at offset %d: %w", i, t, off, truncated("value", l, len(p)-off-2))
		}
		if want := linkSpecLen(t); want >= 0 && l != want {
			return e, errfmt.Errorf("EXTEND2 link specifier %d (%s) at offset %d: length %d, want %d", i, t, off, l, want)
		}
		switch t {
		case LinkSpecLegacyID:
			if seenRSA {
				return e, errfmt.Errorf("EXTEND2 link specifier %d: second legacy identity", i)
			}
			seenRSA = true
		case LinkSpecEd25519:
			if seenEd {
				return e, errfmt.Errorf("EXTEND2 link specifier %d: second Ed25519 identity", i)
			}
			seenEd = true
		}
		e.Specs = append(e.Specs, LinkSpec{Type: t, Data: p[off+2 : off+2+l]})
		off += 2 + l
	}
	c, err := ParseCreate2(p[off:])
	if err != nil {
		return e, errfmt.Errorf("EXTEND2 handshake at offset %d: %w", off, err)
	}
	e.Create2Msg = c
	return e, nil
}
