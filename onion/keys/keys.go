// Package keys holds the key material of v3 onion services: time periods
// (rend-spec-v3 2.2.1), key blinding (A.2), signing with expanded and
// blinded ed25519 keys, the credential and subcredential (2.1), certificates
// signed by such keys, and C tor's on-disk key file formats.
package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/binary"
	"errors"

	"filippo.io/edwards25519"

	"tinytor/tor/errfmt"
)

// ExpandedLen is the size of an expanded ed25519 secret key: the clamped
// scalar a followed by the 32-byte hash prefix used to derive nonces.
const ExpandedLen = 64

// ErrKey reports an unusable key.
var ErrKey = errors.New("invalid onion service key")

const (
	blindString   = "Derive temporary signing key\x00"
	blindRHString = "Derive temporary signing key hash input"
	blindNonce    = "key-blind"
	// basepointString is the ed25519 basepoint as rend-spec-v3 A.2 and C
	// tor write it.
	basepointString = "(15112221349535400772501151409588531511454012693041857206046113283949847762202, " +
		"46316835694926478169428394003475163141307993866256225615783033603165251855960)"
)

// SigningKey is an ed25519 key pair kept as an expanded secret key, as C tor
// stores identity keys and as blinded keys must be (they have no seed).
type SigningKey struct {
	secret [ExpandedLen]byte
	public [32]byte
}

// GenerateKey makes a fresh identity key from crypto/rand.
func GenerateKey() (*SigningKey, error) {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, errfmt.Errorf("generate onion service key: %w", err)
	}
	return FromSeed(seed[:])
}

// FromSeed expands a 32-byte RFC 8032 seed (as crypto/ed25519 keeps) into a
// SigningKey.
func FromSeed(seed []byte) (*SigningKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, errfmt.Errorf("%w: seed is %d bytes, want %d", ErrKey, len(seed), ed25519.SeedSize)
	}
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	return FromExpanded(h[:])
}

// FromPrivateKey converts a crypto/ed25519 private key.
func FromPrivateKey(k ed25519.PrivateKey) (*SigningKey, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, errfmt.Errorf("%w: private key is %d bytes", ErrKey, len(k))
	}
	return FromSeed(k.Seed())
}

// FromExpanded makes a SigningKey from a 64-byte expanded secret key
// (scalar | prefix) and derives its public key.
func FromExpanded(b []byte) (*SigningKey, error) {
	if len(b) != ExpandedLen {
		return nil, errfmt.Errorf("%w: expanded secret key is %d bytes, want %d", ErrKey, len(b), ExpandedLen)
	}
	k := new(SigningKey)
	copy(k.secret[:], b)
	s, err := k.scalar()
	if err != nil {
		return nil, err
	}
	copy(k.public[:], new(edwards25519.Point).ScalarBaseMult(s).Bytes())
	return k, nil
}

// scalar returns a reduced mod l. C tor reduces the 32 bytes as they are
// (expand256_modm); a clamped scalar is below 2^255, so SetBytesWithClamping
// (which clamps an already clamped value to itself) is not used: blinded
// scalars are not clamped.
func (k *SigningKey) scalar() (*edwards25519.Scalar, error) {
	var wide [64]byte
	copy(wide[:], k.secret[:32])
	s, err := edwards25519.NewScalar().SetUniformBytes(wide[:])
	if err != nil {
		return nil, errfmt.Errorf("%w: %v", ErrKey, err)
	}
	return s, nil
}

// Public returns the public key.
func (k *SigningKey) Public() ed25519.PublicKey {
	p := make(ed25519.PublicKey, 32)
	copy(p, k.public[:])
	return p
}

// PublicBytes returns the public key as an array.
func (k *SigningKey) PublicBytes() [32]byte { return k.public }

// Expanded returns a copy of the 64-byte expanded secret key.
func (k *SigningKey) Expanded() []byte {
	b := make([]byte, ExpandedLen)
	copy(b, k.secret[:])
	return b
}

// Sign makes an ed25519 signature of msg (RFC 8032 with the expanded key:
// r = SHA-512(prefix | msg), S = r + SHA-512(R | A | msg) * a). Signatures
// verify with crypto/ed25519.Verify under Public.
func (k *SigningKey) Sign(msg []byte) []byte {
	a, err := k.scalar()
	if err != nil {
		// FromExpanded already reduced this scalar successfully.
		panic("keys: corrupt signing key")
	}
	h := sha512.New()
	h.Write(k.secret[32:])
	h.Write(msg)
	r, _ := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	R := new(edwards25519.Point).ScalarBaseMult(r).Bytes()
	h.Reset()
	h.Write(R)
	h.Write(k.public[:])
	h.Write(msg)
	c, _ := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	S := edwards25519.NewScalar().MultiplyAdd(c, a, r)
	sig := make([]byte, 0, ed25519.SignatureSize)
	sig = append(sig, R...)
	return append(sig, S.Bytes()...)
}

// BlindingParam returns the blinding parameter h before clamping
// (rend-spec-v3 A.2, C tor build_blinded_key_param, no secret):
// SHA3-256(BLIND_STRING | A | B | N), N = "key-blind" | INT_8(period) |
// INT_8(periodMinutes).
func BlindingParam(pub ed25519.PublicKey, period, periodMinutes uint64) [32]byte {
	b := make([]byte, 0, len(blindString)+32+len(basepointString)+len(blindNonce)+16)
	b = append(b, blindString...)
	b = append(b, pub...)
	b = append(b, basepointString...)
	b = append(b, blindNonce...)
	b = binary.BigEndian.AppendUint64(b, period)
	b = binary.BigEndian.AppendUint64(b, periodMinutes)
	return sha3.Sum256(b)
}

func blindingScalar(pub ed25519.PublicKey, period, periodMinutes uint64) *edwards25519.Scalar {
	h := BlindingParam(pub, period, periodMinutes)
	s, err := edwards25519.NewScalar().SetBytesWithClamping(h[:])
	if err != nil {
		panic("keys: SetBytesWithClamping failed on 32 bytes")
	}
	return s
}

// BlindPublic derives the blinded public key A' = h*A for a time period
// (rend-spec-v3 A.2). It fails if pub is not a valid point.
func BlindPublic(pub ed25519.PublicKey, period, periodMinutes uint64) (ed25519.PublicKey, error) {
	if len(pub) != 32 {
		return nil, errfmt.Errorf("blind public key: %w: %d bytes", ErrKey, len(pub))
	}
	A, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, errfmt.Errorf("blind public key: %w: %v", ErrKey, err)
	}
	h := blindingScalar(pub, period, periodMinutes)
	return ed25519.PublicKey(new(edwards25519.Point).ScalarMult(h, A).Bytes()), nil
}

// Blind derives the blinded signing key for a time period: a' = h*a mod l
// and prefix' = SHA-512("Derive temporary signing key hash input" |
// prefix)[:32] (rend-spec-v3 A.2, C tor ed25519_donna_blind_secret_key).
// Its public key equals BlindPublic of k's public key.
func (k *SigningKey) Blind(period, periodMinutes uint64) *SigningKey {
	a, err := k.scalar()
	if err != nil {
		panic("keys: corrupt signing key")
	}
	h := blindingScalar(k.public[:], period, periodMinutes)
	out := new(SigningKey)
	copy(out.secret[:32], edwards25519.NewScalar().Multiply(h, a).Bytes())
	rh := sha512.New()
	rh.Write([]byte(blindRHString))
	rh.Write(k.secret[32:])
	copy(out.secret[32:], rh.Sum(nil)[:32])
	s, _ := out.scalar()
	copy(out.public[:], new(edwards25519.Point).ScalarBaseMult(s).Bytes())
	return out
}

// Credential returns N_hs_cred = SHA3-256("credential" | KP_hs_id)
// (rend-spec-v3 2.1).
func Credential(identity ed25519.PublicKey) [32]byte {
	b := make([]byte, 0, 10+32)
	b = append(b, "credential"...)
	b = append(b, identity...)
	return sha3.Sum256(b)
}

// Subcredential returns N_hs_subcred = SHA3-256("subcredential" | N_hs_cred
// | KP_hs_blind_id) (rend-spec-v3 2.1).
func Subcredential(identity, blinded ed25519.PublicKey) [32]byte {
	cred := Credential(identity)
	b := make([]byte, 0, 13+64)
	b = append(b, "subcredential"...)
	b = append(b, cred[:]...)
	b = append(b, blinded...)
	return sha3.Sum256(b)
}
