// Package addr parses and formats version 3 onion addresses (rend-spec-v3 6):
// base32(PUBKEY | CHECKSUM | VERSION) with
// CHECKSUM = SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2].
package addr

import (
	"crypto/ed25519"
	"crypto/sha3"
	"encoding/base32"
	"errors"
	"strings"

	"filippo.io/edwards25519"

	"tinytor/tor/errfmt"
)

// Version is the only onion address version this package knows.
const Version = 3

// Sizes of an address.
const (
	// EncodedLen is the length of the base32 part of a v3 address.
	EncodedLen = 56
	// rawLen is PUBKEY (32) | CHECKSUM (2) | VERSION (1).
	rawLen = 35
)

// Suffix is the top-level domain of onion addresses.
const Suffix = ".onion"

const checksumPrefix = ".onion checksum"

// Errors wrapped by Parse, so that callers (the SOCKS layer) can answer
// "bad address" at once.
var (
	ErrLength   = errors.New("onion address has the wrong length")
	ErrBase32   = errors.New("onion address is not valid base32")
	ErrChecksum = errors.New("onion address checksum mismatch")
	ErrVersion  = errors.New("onion address has an unsupported version")
	ErrKey      = errors.New("onion address key is not a valid ed25519 point of prime order")
)

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// Address is a v3 onion address: the service's ed25519 identity key
// (KP_hs_id).
type Address struct {
	Key [32]byte
}

// PublicKey returns the identity key as an ed25519 public key.
func (a Address) PublicKey() ed25519.PublicKey {
	k := make(ed25519.PublicKey, 32)
	copy(k, a.Key[:])
	return k
}

// checksum returns the two checksum bytes for key.
func checksum(key []byte) [2]byte {
	b := make([]byte, 0, len(checksumPrefix)+33)
	b = append(b, checksumPrefix...)
	b = append(b, key...)
	b = append(b, Version)
	h := sha3.Sum256(b)
	return [2]byte{h[0], h[1]}
}

// String returns the address as 56 lowercase base32 characters followed by
// ".onion".
func (a Address) String() string {
	return a.Host() + Suffix
}

// Host returns the 56 lowercase base32 characters without ".onion".
func (a Address) Host() string {
	var raw [rawLen]byte
	copy(raw[:], a.Key[:])
	c := checksum(a.Key[:])
	raw[32], raw[33] = c[0], c[1]
	raw[34] = Version
	return strings.ToLower(enc.EncodeToString(raw[:]))
}

// FromKey returns the address of the identity key k.
func FromKey(k ed25519.PublicKey) (Address, error) {
	var a Address
	if len(k) != 32 {
		return a, errfmt.Errorf("onion address from key: %w: key is %d bytes, want 32", ErrLength, len(k))
	}
	copy(a.Key[:], k)
	return a, nil
}

// IsOnion reports whether host (a domain name) ends in ".onion",
// case-insensitively, so that a caller can route it to the onion code and
// never to an exit.
func IsOnion(host string) bool {
	host = strings.TrimSuffix(host, ".")
	return len(host) >= len(Suffix) && strings.EqualFold(host[len(host)-len(Suffix):], Suffix)
}

// Parse parses a v3 onion address. It accepts the address with or without
// the ".onion" suffix, in any letter case, with a trailing dot, and with
// subdomains ("www.<addr>.onion"; the label just left of ".onion" is the
// address). It checks the length, the base32 encoding, the version, the
// checksum, and that the key is a point of prime order without torsion
// component (rend-spec-v3 2.2.7).
func Parse(s string) (Address, error) {
	a, err := parse(s)
	if err != nil {
		return Address{}, errfmt.Errorf("parse onion address: %w", err)
	}
	return a, nil
}

func parse(s string) (a Address, err error) {
	host := strings.TrimSuffix(s, ".")
	if IsOnion(host) {
		host = host[:len(host)-len(Suffix)]
	}
	if i := strings.LastIndexByte(host, '.'); i >= 0 {
		host = host[i+1:]
	}
	if len(host) != EncodedLen {
		return a, errfmt.Errorf("%w: %d characters, want %d", ErrLength, len(host), EncodedLen)
	}
	raw, err := enc.DecodeString(strings.ToUpper(host))
	switch {
	case err != nil:
		return a, errfmt.Errorf("%w: %v", ErrBase32, err)
	case len(raw) != rawLen:
		return a, errfmt.Errorf("%w: decodes to %d bytes", ErrLength, len(raw))
	case raw[34] != Version:
		return a, errfmt.Errorf("%w: version %d, want %d", ErrVersion, raw[34], Version)
	case [2]byte(raw[32:34]) != checksum(raw[:32]):
		return a, ErrChecksum
	}
	if err := CheckKey(raw[:32]); err != nil {
		return a, err
	}
	copy(a.Key[:], raw[:32])
	return a, nil
}

// CheckKey reports (wrapping ErrKey) whether k is not a valid encoding of an
// ed25519 point, or has a torsion component: l*A must be the identity.
func CheckKey(k []byte) error {
	p, err := new(edwards25519.Point).SetBytes(k)
	if err != nil {
		return errfmt.Errorf("%w: not a point: %v", ErrKey, err)
	}
	// l*A == identity  <=>  A is in the prime-order subgroup. l*A is
	// computed as (l-1)*A + A because a Scalar cannot hold l itself.
	lMinus1 := new(edwards25519.Scalar).Subtract(edwards25519.NewScalar(), scalarOne())
	q := new(edwards25519.Point).ScalarMult(lMinus1, p)
	q.Add(q, p)
	if q.Equal(edwards25519.NewIdentityPoint()) != 1 {
		return errfmt.Errorf("%w: has a torsion component", ErrKey)
	}
	if p.Equal(edwards25519.NewIdentityPoint()) == 1 {
		return errfmt.Errorf("%w: identity point", ErrKey)
	}
	return nil
}

func scalarOne() *edwards25519.Scalar {
	var b [32]byte
	b[0] = 1
	s, _ := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	return s
}
