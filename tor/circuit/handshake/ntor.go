package handshake

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"io"

	"golang.org/x/crypto/curve25519"

	"tinytor/tor/errfmt"
)

// Sizes of the ntor handshake messages (tor-spec 5.1.4).
const (
	NtorClientLen = 20 + 32 + 32 // ID | B | X
	NtorServerLen = 32 + 32      // Y | AUTH
	// NtorType is the CREATE2 HTYPE of ntor.
	NtorType = 0x0002
)

const ntorProtoID = "ntor-curve25519-sha256-1"

var (
	ntorTMac    = []byte(ntorProtoID + ":mac")
	ntorTKey    = []byte(ntorProtoID + ":key_extract")
	ntorTVerify = []byte(ntorProtoID + ":verify")
	ntorMExpand = []byte(ntorProtoID + ":key_expand")
)

// NtorClient is the client state of an ntor handshake.
type NtorClient struct {
	id [20]byte // relay RSA identity digest
	b  [32]byte // relay ntor onion key B
	x  [32]byte // our ephemeral secret
	bx [32]byte // our ephemeral public key X
}

// NewNtor starts an ntor handshake with the relay whose RSA identity
// digest is id and whose ntor onion key is b. It returns the client state
// and the client onionskin ID | B | X.
func NewNtor(rand io.Reader, id [20]byte, b [32]byte) (*NtorClient, [NtorClientLen]byte, error) {
	var x [32]byte
	if _, err := io.ReadFull(rand, x[:]); err != nil {
		return nil, [NtorClientLen]byte{}, errfmt.Errorf("ntor: reading random key: %w", err)
	}
	return newNtorWithKey(id, b, x)
}

func newNtorWithKey(id [20]byte, b [32]byte, x [32]byte) (*NtorClient, [NtorClientLen]byte, error) {
	c := &NtorClient{id: id, b: b, x: x}
	pub, err := curve25519.X25519(c.x[:], curve25519.Basepoint)
	if err != nil {
		return nil, [NtorClientLen]byte{}, errfmt.Errorf("ntor: computing X: %w", err)
	}
	copy(c.bx[:], pub)
	var skin [NtorClientLen]byte
	copy(skin[0:20], id[:])
	copy(skin[20:52], b[:])
	copy(skin[52:84], c.bx[:])
	return c, skin, nil
}

// Finish takes the server reply Y | AUTH (at least NtorServerLen bytes),
// verifies AUTH and returns the hop's keys.
func (c *NtorClient) Finish(reply []byte) (*KeyMaterial, error) {
	if len(reply) < NtorServerLen {
		return nil, errfmt.Errorf("ntor: server reply of %d bytes, want %d", len(reply), NtorServerLen)
	}
	y := reply[0:32]
	auth := reply[32:64]
	// EXP(Y,x) and EXP(B,x); X25519 refuses an all-zero result, which is
	// the point-at-infinity check the spec asks for.
	xy, err := curve25519.X25519(c.x[:], y)
	if err != nil {
		return nil, errfmt.Errorf("ntor: EXP(Y,x): %w", err)
	}
	xb, err := curve25519.X25519(c.x[:], c.b[:])
	if err != nil {
		return nil, errfmt.Errorf("ntor: EXP(B,x): %w", err)
	}
	secret := make([]byte, 0, 32*5+20+len(ntorProtoID))
	secret = append(secret, xy...)
	secret = append(secret, xb...)
	secret = append(secret, c.id[:]...)
	secret = append(secret, c.b[:]...)
	secret = append(secret, c.bx[:]...)
	secret = append(secret, y...)
	secret = append(secret, ntorProtoID...)
	zero(xy)
	zero(xb)
	defer zero(secret)

	verify := hmacSHA256(ntorTVerify, secret)
	authInput := make([]byte, 0, 32+20+32*3+len(ntorProtoID)+6)
	authInput = append(authInput, verify...)
	authInput = append(authInput, c.id[:]...)
	authInput = append(authInput, c.b[:]...)
	authInput = append(authInput, y...)
	authInput = append(authInput, c.bx[:]...)
	authInput = append(authInput, ntorProtoID...)
	authInput = append(authInput, "Server"...)
	want := hmacSHA256(ntorTMac, authInput)
	if subtle.ConstantTimeCompare(want, auth) != 1 {
		return nil, errfmt.Errorf("ntor: server AUTH does not match (wrong onion key or tampered reply)")
	}
	// KEY_SEED = H(secret_input, t_key) is HKDF-Extract(salt=t_key).
	k, err := KDFRFC5869(secret, ntorTKey, ntorMExpand, KeyMaterialLen)
	if err != nil {
		return nil, errfmt.Errorf("ntor: %w", err)
	}
	defer zero(k)
	zero(c.x[:])
	return KeyMaterialFromRFC5869(k)
}

// hmacSHA256 is H(x, t) of tor-spec 5.1.4: HMAC-SHA256 keyed with t.
func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}
