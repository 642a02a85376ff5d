package handshake

import (
	"crypto/subtle"
	"io"

	"tinytor/tor/errfmt"
)

// Sizes of the CREATE_FAST and CREATED_FAST payloads (tor-spec 5.1.5).
const (
	FastClientLen = HashLen     // X
	FastServerLen = 2 * HashLen // Y | KH
)

// FastClient is the client state of a CREATE_FAST handshake.
type FastClient struct {
	x [HashLen]byte
}

// NewFast starts a CREATE_FAST handshake with randomness from rand. The
// returned X is the CREATE_FAST payload.
func NewFast(rand io.Reader) (*FastClient, [FastClientLen]byte, error) {
	var c FastClient
	if _, err := io.ReadFull(rand, c.x[:]); err != nil {
		return nil, [FastClientLen]byte{}, errfmt.Errorf("CREATE_FAST: reading random X: %w", err)
	}
	return &c, c.x, nil
}

// Finish takes the CREATED_FAST payload (Y | KH, at least FastServerLen
// bytes), checks KH and returns the hop's keys (KDF-TOR over X | Y).
func (c *FastClient) Finish(reply []byte) (*KeyMaterial, error) {
	if len(reply) < FastServerLen {
		return nil, errfmt.Errorf("CREATED_FAST: payload of %d bytes, want %d", len(reply), FastServerLen)
	}
	var k0 [2 * HashLen]byte
	copy(k0[:], c.x[:])
	copy(k0[HashLen:], reply[:HashLen])
	k, err := KDFTor(k0[:], KeyMaterialLen)
	zero(k0[:])
	if err != nil {
		return nil, err
	}
	km := keyMaterialFromTor(k)
	zero(k)
	if subtle.ConstantTimeCompare(km.KH[:], reply[HashLen:FastServerLen]) != 1 {
		km.Zero()
		return nil, errfmt.Errorf("CREATED_FAST: derivative key data KH does not match")
	}
	zero(c.x[:])
	return km, nil
}
