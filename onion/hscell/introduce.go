package hscell

import (
	"crypto/ed25519"
	"encoding/binary"

	"tinytor/tor/cell"
	"tinytor/tor/circuit/handshake"
	"tinytor/tor/errfmt"
)

// Introduce is an INTRODUCE1 or INTRODUCE2 body (rend-spec-v3 3.2.1): a
// header naming the introduction point's auth key, then the ENCRYPTED
// section (see onion/hsntor).
type Introduce struct {
	AuthKey    ed25519.PublicKey
	Extensions []Extension
	// Header is the encoded body before ENCRYPTED: the MAC input prefix.
	Header []byte
	// Encrypted is CLIENT_PK | ENCRYPTED_DATA | MAC.
	Encrypted []byte
}

// IntroduceHeader encodes the part of an INTRODUCE1 body before ENCRYPTED:
// 20 zero bytes of LEGACY_KEY_ID, AUTH_KEY_TYPE [02], the auth key and the
// extensions.
func IntroduceHeader(authKey ed25519.PublicKey, exts []Extension) ([]byte, error) {
	if len(authKey) != ed25519.PublicKeySize {
		return nil, errfmt.Errorf("build INTRODUCE1: auth key is %d bytes", len(authKey))
	}
	b := make([]byte, LegacyKeyIDLen, LegacyKeyIDLen+3+32+1)
	b = append(b, AuthKeyTypeEd25519)
	b = binary.BigEndian.AppendUint16(b, uint16(len(authKey)))
	b = append(b, authKey...)
	b, err := handshake.AppendExts(b, exts)
	if err != nil {
		return nil, errfmt.Errorf("build INTRODUCE1: %w", err)
	}
	return b, nil
}

// ParseIntroduce parses an INTRODUCE1/2 body. A non-zero LEGACY_KEY_ID
// (a legacy cell) and auth key types other than ed25519 are errors.
// Header and Encrypted alias b.
func ParseIntroduce(b []byte) (*Introduce, error) {
	r := &reader{what: "INTRODUCE2", b: b}
	legacy := r.bytes(LegacyKeyIDLen, "LEGACY_KEY_ID")
	for _, c := range legacy {
		if c != 0 {
			r.fail("LEGACY_KEY_ID is not zero (legacy cell)")
			break
		}
	}
	typ := r.u8("AUTH_KEY_TYPE")
	if r.err == nil && typ != AuthKeyTypeEd25519 {
		r.fail("AUTH_KEY_TYPE %d, want %d", typ, AuthKeyTypeEd25519)
	}
	l := int(r.u16("AUTH_KEY_LEN"))
	if r.err == nil && l != ed25519.PublicKeySize {
		r.fail("AUTH_KEY_LEN %d, want 32", l)
	}
	in := &Introduce{AuthKey: ed25519.PublicKey(r.bytes(l, "AUTH_KEY"))}
	in.Extensions = r.extensions()
	in.Header = b[:r.off]
	in.Encrypted = r.rest()
	if r.err != nil {
		return nil, r.err
	}
	if len(in.Encrypted) < 64 {
		return nil, malformed("INTRODUCE2", "ENCRYPTED is %d bytes, need at least 64 (CLIENT_PK and MAC)", len(in.Encrypted))
	}
	return in, nil
}

// IntroducePlaintext is the decrypted ENCRYPTED section of INTRODUCE1/2
// (rend-spec-v3 3.3).
type IntroducePlaintext struct {
	Cookie     [CookieLen]byte
	Extensions []Extension
	// OnionKeyType is 1 (ntor) in every cell we build or accept.
	OnionKeyType uint8
	// OnionKey is the rendezvous point's ntor onion key.
	OnionKey [32]byte
	// LinkSpecs locate the rendezvous point; keep them in order.
	LinkSpecs []cell.LinkSpec
}

// Encode encodes p and NUL-pads it as C tor does: the header (headerLen
// bytes, from IntroduceHeader) plus the plaintext reach Introduce1MinLen.
func (p *IntroducePlaintext) Encode(headerLen int) ([]byte, error) {
	b := make([]byte, 0, Introduce1MinLen)
	b = append(b, p.Cookie[:]...)
	b, err := handshake.AppendExts(b, p.Extensions)
	if err != nil {
		return nil, errfmt.Errorf("build INTRODUCE1 plaintext: %w", err)
	}
	b = append(b, OnionKeyTypeNtor)
	b = binary.BigEndian.AppendUint16(b, 32)
	b = append(b, p.OnionKey[:]...)
	if b, err = AppendLinkSpecs(b, p.LinkSpecs); err != nil {
		return nil, errfmt.Errorf("build INTRODUCE1 plaintext: %w", err)
	}
	if n := headerLen + len(b); n < Introduce1MinLen {
		b = append(b, make([]byte, Introduce1MinLen-n)...)
	}
	if headerLen+len(b)+64 > MaxBodyLen {
		return nil, errfmt.Errorf("build INTRODUCE1: body would be %d bytes, at most %d", headerLen+len(b)+64, MaxBodyLen)
	}
	return b, nil
}

// ParseIntroducePlaintext parses a decrypted ENCRYPTED section. The onion
// key must be ntor (type 1, 32 bytes), as C tor requires; trailing padding
// is ignored. LinkSpecs and Extensions alias b.
func ParseIntroducePlaintext(b []byte) (*IntroducePlaintext, error) {
	r := &reader{what: "INTRODUCE2 plaintext", b: b}
	p := &IntroducePlaintext{}
	copy(p.Cookie[:], r.bytes(CookieLen, "RENDEZVOUS_COOKIE"))
	p.Extensions = r.extensions()
	p.OnionKeyType = r.u8("ONION_KEY_TYPE")
	if r.err == nil && p.OnionKeyType != OnionKeyTypeNtor {
		r.fail("ONION_KEY_TYPE %d, want %d (ntor)", p.OnionKeyType, OnionKeyTypeNtor)
	}
	l := int(r.u16("ONION_KEY_LEN"))
	if r.err == nil && l != 32 {
		r.fail("ONION_KEY_LEN %d, want 32", l)
	}
	copy(p.OnionKey[:], r.bytes(l, "ONION_KEY"))
	p.LinkSpecs = r.linkSpecs()
	if r.err != nil {
		return nil, r.err
	}
	if len(p.LinkSpecs) == 0 {
		return nil, malformed("INTRODUCE2 plaintext", "no link specifiers")
	}
	return p, nil
}

// IntroduceAck status values (rend-spec-v3 3.2.2).
const (
	AckSuccess        = 0
	AckUnknownService = 1
	AckBadFormat      = 2
	AckCantRelay      = 3
)

// ParseIntroduceAck parses an INTRODUCE_ACK body: the status and
// extensions.
func ParseIntroduceAck(b []byte) (uint16, []Extension, error) {
	r := &reader{what: "INTRODUCE_ACK", b: b}
	st := r.u16("STATUS")
	exts := r.extensions()
	if r.err != nil {
		return 0, nil, r.err
	}
	return st, exts, nil
}

// BuildIntroduceAck encodes an INTRODUCE_ACK body.
func BuildIntroduceAck(status uint16, exts []Extension) ([]byte, error) {
	return handshake.AppendExts(binary.BigEndian.AppendUint16(nil, status), exts)
}

// BuildEstablishRendezvous encodes an ESTABLISH_RENDEZVOUS body.
func BuildEstablishRendezvous(cookie [CookieLen]byte) []byte {
	return append([]byte(nil), cookie[:]...)
}

// ParseEstablishRendezvous returns the cookie; extra bytes are ignored
// (rend-spec-v3 4.1).
func ParseEstablishRendezvous(b []byte) ([CookieLen]byte, error) {
	var c [CookieLen]byte
	if len(b) < CookieLen {
		return c, malformed("ESTABLISH_RENDEZVOUS", "%d bytes, want %d", len(b), CookieLen)
	}
	copy(c[:], b)
	return c, nil
}

// BuildRendezvous1 encodes a RENDEZVOUS1 body: the cookie and the
// HANDSHAKE_INFO from hsntor.
func BuildRendezvous1(cookie [CookieLen]byte, handshakeInfo []byte) []byte {
	b := make([]byte, 0, CookieLen+len(handshakeInfo))
	b = append(b, cookie[:]...)
	return append(b, handshakeInfo...)
}

// ParseRendezvous1 splits a RENDEZVOUS1 body into cookie and
// HANDSHAKE_INFO (64 bytes; extra bytes are ignored).
func ParseRendezvous1(b []byte) ([CookieLen]byte, []byte, error) {
	var c [CookieLen]byte
	if len(b) < CookieLen+64 {
		return c, nil, malformed("RENDEZVOUS1", "%d bytes, want at least %d", len(b), CookieLen+64)
	}
	copy(c[:], b)
	return c, b[CookieLen : CookieLen+64], nil
}

// ParseRendezvous2 returns the HANDSHAKE_INFO of a RENDEZVOUS2 body (64
// bytes; extra bytes are ignored).
func ParseRendezvous2(b []byte) ([]byte, error) {
	if len(b) < 64 {
		return nil, malformed("RENDEZVOUS2", "%d bytes, want at least 64", len(b))
	}
	return b[:64], nil
}
