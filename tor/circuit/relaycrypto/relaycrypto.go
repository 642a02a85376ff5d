// Package relaycrypto implements Tor's relay cell encryption and
// integrity checking (tor-spec 5.5 and 6.1): per hop, an AES-CTR stream
// and a running digest in each direction.
//
// A Layer is the crypto state shared by the client and one hop. A Path is
// the client's ordered list of layers for a circuit. All operations work
// in place on a 509-byte relay cell payload and allocate nothing.
//
// The tor1 variant (SHA-1 digests, AES-128, keys from CREATE_FAST or
// ntor) is built by NewTor1; NewLayer takes any hash and key size, as the
// onion service hop (SHA3-256, AES-256) needs.
package relaycrypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/subtle"
	"encoding"
	"errors"
	"hash"

	"tinytor/tor/circuit/handshake"
	"tinytor/tor/errfmt"
)

// PayloadLen is the size of a cell payload (tor-spec 3, PAYLOAD_LEN).
const PayloadLen = 509

// Offsets of the relay header fields within a payload (tor-spec 6.1).
const (
	offRecognized = 1
	offDigest     = 5
	digestLen     = 4
)

// SendmeDigestLen is the size of the digest carried by an authenticated
// SENDME (tor-spec 7.3.1); longer digests are truncated to it.
const SendmeDigestLen = 20

// Payload is one cell payload.
type Payload = [PayloadLen]byte

// runningDigest is a hash that can save and restore its state.
type runningDigest interface {
	hash.Hash
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

// Layer is the relay crypto of one hop: forward and backward ciphers and
// running digests.
//
// Concurrency: on the client side, the outbound methods (Originate,
// EncryptForward, ForwardDigest) and the inbound ones (DecryptBackward,
// BackwardDigest) touch disjoint state, so one goroutine may send while
// another receives; each group needs its own serialization. The relay-side
// methods are for a single goroutine.
type Layer struct {
	fwdCipher, backCipher cipher.Stream
	fwd, back             runningDigest // running digests
	scratch               runningDigest // same type, used to test a digest
	state                 []byte        // buffer for saved digest state
	// Digest output buffers: fwdSum for the forward direction, backSum
	// for the backward one, so that a client's outbound and inbound
	// paths never share state.
	fwdSum, backSum []byte
}

// NewLayer builds a layer from digest seeds df, db (written into fresh
// hashes made by newHash) and AES keys kf, kb (16, 24 or 32 bytes). The
// counter mode IV is zero. The hashes must implement
// encoding.BinaryAppender and encoding.BinaryUnmarshaler (all of the
// standard library's do).
func NewLayer(newHash func() hash.Hash, df, db, kf, kb []byte) (*Layer, error) {
	mk := func() (runningDigest, error) {
		h, ok := newHash().(runningDigest)
		if !ok {
			return nil, errors.New("relay crypto: digest cannot save its state")
		}
		return h, nil
	}
	l := &Layer{}
	var err error
	if l.fwd, err = mk(); err != nil {
		return nil, err
	}
	if l.back, err = mk(); err != nil {
		return nil, err
	}
	if l.scratch, err = mk(); err != nil {
		return nil, err
	}
	l.fwd.Write(df)
	l.back.Write(db)
	if l.fwdCipher, err = newCTR(kf); err != nil {
		return nil, errfmt.Errorf("relay crypto: forward key: %w", err)
	}
	if l.backCipher, err = newCTR(kb); err != nil {
		return nil, errfmt.Errorf("relay crypto: backward key: %w", err)
	}
	st, err := l.back.AppendBinary(nil)
	if err != nil {
		return nil, errfmt.Errorf("relay crypto: saving digest state: %w", err)
	}
	l.state = make([]byte, 0, 2*len(st))
	l.fwdSum = make([]byte, 0, l.fwd.Size())
	l.backSum = make([]byte, 0, l.back.Size())
	return l, nil
}

// NewTor1 builds the tor1 layer (SHA-1, AES-128-CTR) from the key material
// of a CREATE_FAST or ntor handshake.
func NewTor1(km *handshake.KeyMaterial) *Layer {
	l, err := NewLayer(sha1.New, km.Df[:], km.Db[:], km.Kf[:], km.Kb[:])
	if err != nil {
		// sha1 and 16-byte AES keys never fail.
		panic("relaycrypto: tor1 layer: " + err.Error())
	}
	return l
}

func newCTR(key []byte) (cipher.Stream, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewCTR(b, make([]byte, aes.BlockSize)), nil
}

// setDigest adds p (with its digest field zeroed) to d and writes the
// first four bytes of the running digest into the digest field.
func setDigest(d runningDigest, sum *[]byte, p *Payload) {
	clear(p[offDigest : offDigest+digestLen])
	d.Write(p[:])
	*sum = d.Sum((*sum)[:0])
	copy(p[offDigest:offDigest+digestLen], *sum)
}

// checkDigest reports whether p, addressed to this end, carries the right
// digest given running digest *d. If so, *d includes p afterwards;
// otherwise *d is unchanged. p is left unchanged.
func (l *Layer) checkDigest(d *runningDigest, p *Payload) bool {
	if p[offRecognized] != 0 || p[offRecognized+1] != 0 {
		return false
	}
	var got [digestLen]byte
	copy(got[:], p[offDigest:offDigest+digestLen])
	st, err := (*d).AppendBinary(l.state[:0])
	if err != nil {
		return false
	}
	l.state = st
	if err := l.scratch.UnmarshalBinary(st); err != nil {
		return false
	}
	clear(p[offDigest : offDigest+digestLen])
	l.scratch.Write(p[:])
	copy(p[offDigest:offDigest+digestLen], got[:])
	l.backSum = l.scratch.Sum(l.backSum[:0])
	if subtle.ConstantTimeCompare(l.backSum[:digestLen], got[:]) != 1 {
		return false
	}
	*d, l.scratch = l.scratch, *d
	return true
}

// Client side.

// Originate prepares p for this hop as its final destination: it sets the
// digest field from the forward running digest and encrypts with Kf. The
// 'recognized' field must already be zero.
func (l *Layer) Originate(p *Payload) {
	setDigest(l.fwd, &l.fwdSum, p)
	l.fwdCipher.XORKeyStream(p[:], p[:])
}

// EncryptForward adds this hop's forward encryption layer to p (for a cell
// addressed to a later hop).
func (l *Layer) EncryptForward(p *Payload) {
	l.fwdCipher.XORKeyStream(p[:], p[:])
}

// DecryptBackward removes this hop's backward layer from p and reports
// whether the cell was sent by this hop (recognized and digest correct).
func (l *Layer) DecryptBackward(p *Payload) bool {
	l.backCipher.XORKeyStream(p[:], p[:])
	return l.checkDigest(&l.back, p)
}

// ForwardDigest writes the full running forward digest (truncated to
// SendmeDigestLen) into out: after Originate, the digest an authenticated
// SENDME from this hop must carry.
func (l *Layer) ForwardDigest(out *[SendmeDigestLen]byte) {
	l.fwdSum = l.fwd.Sum(l.fwdSum[:0])
	copy(out[:], l.fwdSum)
}

// BackwardDigest writes the full running backward digest (truncated to
// SendmeDigestLen) into out: after a recognized DecryptBackward, the
// digest our authenticated SENDME must carry.
func (l *Layer) BackwardDigest(out *[SendmeDigestLen]byte) {
	l.backSum = l.back.Sum(l.backSum[:0])
	copy(out[:], l.backSum)
}

// Relay side (used by onion service hosts and test relays).

// DecryptForward removes the forward layer as a relay does and reports
// whether the cell is addressed to this relay.
func (l *Layer) DecryptForward(p *Payload) bool {
	l.fwdCipher.XORKeyStream(p[:], p[:])
	return l.checkDigest(&l.fwd, p)
}

// OriginateBackward prepares p as a relay originating a cell towards the
// client: it sets the digest from the backward running digest and
// encrypts with Kb.
func (l *Layer) OriginateBackward(p *Payload) {
	setDigest(l.back, &l.backSum, p)
	l.backCipher.XORKeyStream(p[:], p[:])
}

// EncryptBackward adds this hop's backward layer as a relay does when it
// passes on a cell from a later hop.
func (l *Layer) EncryptBackward(p *Payload) {
	l.backCipher.XORKeyStream(p[:], p[:])
}

// Path is the client's crypto for a circuit: one Layer per hop, first hop
// first. A Path is not safe for concurrent use.
type Path struct {
	layers []*Layer
}

// Add appends the layer of a new last hop.
func (p *Path) Add(l *Layer) { p.layers = append(p.layers, l) }

// Len returns the number of hops.
func (p *Path) Len() int { return len(p.layers) }

// Layer returns the layer of hop i (0 is the first hop).
func (p *Path) Layer(i int) *Layer { return p.layers[i] }

// Encrypt prepares payload for hop (0-based): digest at that hop, then
// encryption from that hop back to the first (tor-spec 5.5.2.1).
func (p *Path) Encrypt(payload *Payload, hop int) error {
	if hop < 0 || hop >= len(p.layers) {
		return errfmt.Errorf("relay crypto: no hop %d on a %d-hop circuit", hop, len(p.layers))
	}
	p.layers[hop].Originate(payload)
	for i := hop - 1; i >= 0; i-- {
		p.layers[i].EncryptForward(payload)
	}
	return nil
}

// ErrUnrecognized means an inbound cell was recognized by no hop.
var ErrUnrecognized = errors.New("relay crypto: inbound cell recognized by no hop")

// Decrypt removes layers from an inbound payload, first hop first, until
// one hop recognizes it (tor-spec 5.5.3), and returns that hop's index.
func (p *Path) Decrypt(payload *Payload) (int, error) {
	for i, l := range p.layers {
		if l.DecryptBackward(payload) {
			return i, nil
		}
	}
	return -1, ErrUnrecognized
}
