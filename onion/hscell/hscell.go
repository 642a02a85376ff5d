// Package hscell encodes and parses the relay message bodies of the v3
// onion service protocol (rend-spec-v3 3 and 4): ESTABLISH_INTRO,
// INTRO_ESTABLISHED, INTRODUCE1/2 with the plaintext of their ENCRYPTED
// section, INTRODUCE_ACK, ESTABLISH_RENDEZVOUS, RENDEZVOUS1/2, and link
// specifier blocks. It also holds the service's INTRODUCE2 replay cache.
//
// Cryptography of the ENCRYPTED section is package onion/hsntor's job;
// this package only moves bytes.
package hscell

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"tinytor/onion/hsntor"
	"tinytor/tor/cell"
	"tinytor/tor/circuit"
	"tinytor/tor/circuit/handshake"
	"tinytor/tor/errfmt"
)

// Sizes (rend-spec-v3 3, 4).
const (
	CookieLen      = 20 // RENDEZVOUS_COOKIE
	LegacyKeyIDLen = 20 // LEGACY_KEY_ID
	// AuthKeyTypeEd25519 is AUTH_KEY_TYPE [02]: an ed25519 key, SHA3-256
	// MACs.
	AuthKeyTypeEd25519 = 2
	// OnionKeyTypeNtor is ONION_KEY_TYPE [01].
	OnionKeyTypeNtor = 1
	// Introduce1MinLen is the size C tor pads INTRODUCE1 bodies up to
	// (HS_CELL_INTRODUCE1_MIN_SIZE), by NUL padding of the plaintext.
	Introduce1MinLen = 246
	// MaxBodyLen is the largest relay message body (RELAY_PAYLOAD_SIZE).
	MaxBodyLen = 498

	handshakeAuthLen        = 32
	establishIntroSigPrefix = "Tor establish-intro cell v1"
)

// Extension types.
const (
	// ExtDoSParams is the ESTABLISH_INTRO DoS defense extension (3.1.1.1).
	ExtDoSParams = 1
	// ExtCCRequest is the INTRODUCE1 encrypted-section congestion control
	// request (prop324).
	ExtCCRequest = 1
)

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed onion service cell")

// ErrSignature reports a bad ESTABLISH_INTRO signature or HANDSHAKE_AUTH.
var ErrSignature = errors.New("ESTABLISH_INTRO authentication failed")

func malformed(what, format string, a ...any) error {
	return errfmt.Errorf("%s: %w: %s", what, ErrMalformed, fmt.Sprintf(format, a...))
}

// Extension is one EXT_FIELD entry of a cell's extension list, which is
// encoded as the extensions of an ntor v3 message are.
type Extension = handshake.Ext

// reader is a bounds-checked cursor over a body.
type reader struct {
	what string
	b    []byte
	off  int
	err  error
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = malformed(r.what, "at byte %d: %s", r.off, fmt.Sprintf(format, a...))
	}
}

func (r *reader) bytes(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail("%s needs %d bytes, %d left", field, n, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(field string) uint8 {
	v := r.bytes(1, field)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u16(field string) uint16 {
	v := r.bytes(2, field)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	v := r.b[r.off:]
	r.off = len(r.b)
	return v
}

func (r *reader) extensions() []Extension {
	if r.err != nil {
		return nil
	}
	exts, rest, err := handshake.CutExts(r.b[r.off:])
	if err != nil {
		r.fail("extension list: %v", err)
		return nil
	}
	r.off = len(r.b) - len(rest)
	return exts
}

// linkSpecLen returns the size of a link specifier of a known type
// (tor-spec 5.1.2), or 0 for a type whose size is not fixed here.
func linkSpecLen(t cell.LinkSpecType) int {
	switch t {
	case cell.LinkSpecIPv4:
		return 6
	case cell.LinkSpecIPv6:
		return 18
	case cell.LinkSpecLegacyID:
		return 20
	case cell.LinkSpecEd25519:
		return 32
	}
	return 0
}

// AppendLinkSpecs appends a link specifier block (NSPEC, then each
// LSTYPE | LSLEN | LSPEC; rend-spec-v3 0.4).
func AppendLinkSpecs(b []byte, specs []cell.LinkSpec) ([]byte, error) {
	if len(specs) > 255 {
		return nil, errfmt.Errorf("%d link specifiers, at most 255", len(specs))
	}
	b = append(b, byte(len(specs)))
	for _, s := range specs {
		if len(s.Data) > 255 {
			return nil, errfmt.Errorf("link specifier type %d has %d bytes", s.Type, len(s.Data))
		}
		b = append(b, byte(s.Type), byte(len(s.Data)))
		b = append(b, s.Data...)
	}
	return b, nil
}

// ParseLinkSpecs parses a link specifier block at the start of b and
// returns the specifiers (Data aliases b) and the bytes after the block.
// Known types must have their exact size; unknown types are kept verbatim.
func ParseLinkSpecs(b []byte) ([]cell.LinkSpec, []byte, error) {
	r := &reader{what: "link specifiers", b: b}
	specs := r.linkSpecs()
	if r.err != nil {
		return nil, nil, r.err
	}
	return specs, b[r.off:], nil
}

func (r *reader) linkSpecs() []cell.LinkSpec {
	n := int(r.u8("NSPEC"))
	specs := make([]cell.LinkSpec, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		typ := cell.LinkSpecType(r.u8("LSTYPE"))
		l := int(r.u8("LSLEN"))
		if want := linkSpecLen(typ); want != 0 && l != want && r.err == nil {
			r.fail("link specifier %d of type %v has length %d, want %d", i, typ, l, want)
			return nil
		}
		d := r.bytes(l, "LSPEC")
		if r.err == nil {
			specs = append(specs, cell.LinkSpec{Type: typ, Data: d})
		}
	}
	return specs
}

// HopLinkSpecs returns the link specifiers that locate the relay h, in
// C tor's order: its first address, legacy identity, ed25519 identity
// (when known), then its other addresses.
func HopLinkSpecs(h *circuit.HopInfo) []cell.LinkSpec {
	ls := make([]cell.LinkSpec, 0, len(h.Addrs)+2)
	if len(h.Addrs) > 0 {
		ls = append(ls, cell.LinkSpecAddr(h.Addrs[0]))
	}
	ls = append(ls, cell.LinkSpecRSAID(h.RSAID))
	if h.Ed25519ID != [32]byte{} {
		ls = append(ls, cell.LinkSpecEdID(h.Ed25519ID))
	}
	for _, a := range h.Addrs[min(1, len(h.Addrs)):] {
		ls = append(ls, cell.LinkSpecAddr(a))
	}
	return ls
}

// HopFromLinkSpecs returns the circuit hop that link specifiers locate
// (an introduction or rendezvous point), with the relay's ntor onion key.
// It needs the legacy (RSA) identity and an address; every address must
// be valid and have a port; an ed25519 identity is used when present.
func HopFromLinkSpecs(specs []cell.LinkSpec, ntorKey [32]byte) (circuit.HopInfo, error) {
	h := circuit.HopInfo{NtorKey: ntorKey}
	haveID := false
	for i, ls := range specs {
		switch ls.Type {
		case cell.LinkSpecIPv4, cell.LinkSpecIPv6:
			ap, err := ls.AddrPort()
			if err != nil {
				return h, errfmt.Errorf("link specifier %d: %w", i, err)
			}
			if !ap.Addr().IsValid() || ap.Port() == 0 {
				return h, errfmt.Errorf("link specifier %d: bad address %v", i, ap)
			}
			h.Addrs = append(h.Addrs, ap)
		case cell.LinkSpecLegacyID, cell.LinkSpecEd25519:
			if want := linkSpecLen(ls.Type); len(ls.Data) != want {
				return h, errfmt.Errorf("link specifier %d: identity of type %v has %d bytes, want %d", i, ls.Type, len(ls.Data), want)
			}
			if ls.Type == cell.LinkSpecEd25519 {
				h.Ed25519ID = [32]byte(ls.Data)
			} else {
				h.RSAID = [20]byte(ls.Data)
				haveID = true
			}
		}
	}
	if !haveID {
		return h, errors.New("no legacy identity link specifier")
	}
	if len(h.Addrs) == 0 {
		return h, errors.New("no address link specifier")
	}
	return h, nil
}

// EstablishIntro is an ESTABLISH_INTRO body (rend-spec-v3 3.1.1).
type EstablishIntro struct {
	AuthKey    ed25519.PublicKey
	Extensions []Extension
	// HandshakeAuth and Signature are set by ParseEstablishIntro.
	HandshakeAuth [handshakeAuthLen]byte
	Signature     []byte
	// signed is the part covered by HANDSHAKE_AUTH (for verification).
	macced []byte
	signed []byte
}

// DoSParam is one parameter of the DoS defense extension.
type DoSParam struct {
	Type  uint8 // 1: INTRO2 rate per second, 2: burst per second
	Value uint64
}

// DoSExtension encodes the ESTABLISH_INTRO DoS defense extension
// (rend-spec-v3 3.1.1.1).
func DoSExtension(params []DoSParam) Extension {
	d := []byte{byte(len(params))}
	for _, p := range params {
		d = append(d, p.Type)
		d = binary.BigEndian.AppendUint64(d, p.Value)
	}
	return Extension{Type: ExtDoSParams, Body: d}
}

// BuildEstablishIntro encodes and authenticates an ESTABLISH_INTRO body:
// HANDSHAKE_AUTH = MAC(KH, fields before it) where kh is the circuit's KH
// from the ntor handshake with the introduction point, and SIG is the
// auth key's signature of "Tor establish-intro cell v1" | everything up to
// and including HANDSHAKE_AUTH.
func BuildEstablishIntro(authKey ed25519.PrivateKey, exts []Extension, kh []byte) ([]byte, error) {
	pub := authKey.Public().(ed25519.PublicKey)
	b := []byte{AuthKeyTypeEd25519}
	b = binary.BigEndian.AppendUint16(b, uint16(len(pub)))
	b = append(b, pub...)
	b, err := handshake.AppendExts(b, exts)
	if err != nil {
		return nil, errfmt.Errorf("build ESTABLISH_INTRO: %w", err)
	}
	m := hsntor.MAC(kh, b)
	b = append(b, m[:]...)
	sig := ed25519.Sign(authKey, append([]byte(establishIntroSigPrefix), b...))
	b = binary.BigEndian.AppendUint16(b, uint16(len(sig)))
	b = append(b, sig...)
	if len(b) > MaxBodyLen {
		return nil, errfmt.Errorf("build ESTABLISH_INTRO: %d bytes, at most %d", len(b), MaxBodyLen)
	}
	return b, nil
}

// ParseEstablishIntro parses an ESTABLISH_INTRO body (as an introduction
// point would; used by tests and tools). Check it with Verify.
func ParseEstablishIntro(b []byte) (*EstablishIntro, error) {
	r := &reader{what: "ESTABLISH_INTRO", b: b}
	typ := r.u8("AUTH_KEY_TYPE")
	if r.err == nil && typ != AuthKeyTypeEd25519 {
		r.fail("AUTH_KEY_TYPE %d, want %d", typ, AuthKeyTypeEd25519)
	}
	l := int(r.u16("AUTH_KEY_LEN"))
	if r.err == nil && l != ed25519.PublicKeySize {
		r.fail("AUTH_KEY_LEN %d, want 32", l)
	}
	e := &EstablishIntro{AuthKey: ed25519.PublicKey(r.bytes(l, "AUTH_KEY"))}
	e.Extensions = r.extensions()
	e.macced = b[:r.off]
	copy(e.HandshakeAuth[:], r.bytes(handshakeAuthLen, "HANDSHAKE_AUTH"))
	e.signed = b[:r.off]
	sl := int(r.u16("SIG_LEN"))
	e.Signature = r.bytes(sl, "SIG")
	if r.err != nil {
		return nil, r.err
	}
	return e, nil
}

// Verify checks HANDSHAKE_AUTH against the circuit's KH and the signature
// by AuthKey.
func (e *EstablishIntro) Verify(kh []byte) error {
	if m := hsntor.MAC(kh, e.macced); m != e.HandshakeAuth {
		return errfmt.Errorf("%w: HANDSHAKE_AUTH mismatch", ErrSignature)
	}
	if len(e.Signature) != ed25519.SignatureSize ||
		!ed25519.Verify(e.AuthKey, append([]byte(establishIntroSigPrefix), e.signed...), e.Signature) {
		return errfmt.Errorf("%w: bad signature", ErrSignature)
	}
	return nil
}

// ParseIntroEstablished parses an INTRO_ESTABLISHED body (rend-spec-v3
// 3.1.3); an empty body is accepted as no extensions.
func ParseIntroEstablished(b []byte) ([]Extension, error) {
	if len(b) == 0 {
		return nil, nil
	}
	r := &reader{what: "INTRO_ESTABLISHED", b: b}
	exts := r.extensions()
	return exts, r.err
}

// BuildIntroEstablished encodes an INTRO_ESTABLISHED body.
func BuildIntroEstablished(exts []Extension) ([]byte, error) {
	return handshake.AppendExts(nil, exts)
}
