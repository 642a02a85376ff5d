package keys

import (
	"crypto/ecdh"
	"encoding/base32"
	"fmt"
	"strings"

	"tinytor/onion/addr"
)

// Client authorization key files (rend-spec-v3 appendix G.1): a service's
// authorized_clients/<name>.auth holds "descriptor:x25519:<base32 public
// key>", a client's <name>.auth_private holds
// "<onion address>:descriptor:x25519:<base32 private key>".

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func decodeX25519(field, what string) ([]byte, error) {
	if len(field) != 52 {
		return nil, fmt.Errorf("%w: %s is %d base32 characters, want 52", ErrKey, what, len(field))
	}
	b, err := b32.DecodeString(strings.ToUpper(field))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKey, what, err)
	}
	return b, nil
}

func splitAuth(s string, n int, what string) ([]string, error) {
	f := strings.Split(strings.TrimSpace(s), ":")
	if len(f) != n {
		return nil, fmt.Errorf("%w: %s has %d fields, want %d", ErrKey, what, len(f), n)
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	if f[n-3] != "descriptor" || f[n-2] != "x25519" {
		return nil, fmt.Errorf("%w: %s: unsupported auth type %q:%q", ErrKey, what, f[n-3], f[n-2])
	}
	return f, nil
}

// ParseAuthorizedClient parses a service's ".auth" file.
func ParseAuthorizedClient(b []byte) (*ecdh.PublicKey, error) {
	f, err := splitAuth(string(b), 3, "client authorization file")
	if err != nil {
		return nil, err
	}
	raw, err := decodeX25519(f[2], "public key")
	if err != nil {
		return nil, err
	}
	k, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return k, nil
}

// AuthorizedClientFile encodes a service's ".auth" file for pub.
func AuthorizedClientFile(pub *ecdh.PublicKey) []byte {
	return []byte("descriptor:x25519:" + b32.EncodeToString(pub.Bytes()) + "\n")
}

// ParseClientAuthPrivate parses a client's ".auth_private" file: the
// service address and the client's x25519 key for it.
func ParseClientAuthPrivate(b []byte) (addr.Address, *ecdh.PrivateKey, error) {
	f, err := splitAuth(string(b), 4, "client authorization private file")
	if err != nil {
		return addr.Address{}, nil, err
	}
	a, err := addr.Parse(f[0])
	if err != nil {
		return addr.Address{}, nil, fmt.Errorf("client authorization private file: %w", err)
	}
	raw, err := decodeX25519(f[3], "private key")
	if err != nil {
		return addr.Address{}, nil, err
	}
	allZero := true
	for _, c := range raw {
		allZero = allZero && c == 0
	}
	if allZero {
		return addr.Address{}, nil, fmt.Errorf("%w: private key is all zeros", ErrKey)
	}
	k, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		return addr.Address{}, nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return a, k, nil
}

// ClientAuthPrivateFile encodes a client's ".auth_private" file.
func ClientAuthPrivateFile(a addr.Address, k *ecdh.PrivateKey) []byte {
	return []byte(a.Host() + ":descriptor:x25519:" + b32.EncodeToString(k.Bytes()) + "\n")
}
