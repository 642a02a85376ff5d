package keys

import (
	"crypto/ecdh"
	"encoding/base32"
	"strings"

	"tinytor/onion/addr"
	"tinytor/tor/errfmt"
)

// Client authorization key files (rend-spec-v3 appendix G.1): a service's
// authorized_clients/<name>.auth holds "descriptor:x25519:<base32 public
// key>", a client's <name>.auth_private holds
// "<onion address>:descriptor:x25519:<base32 private key>".

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// parseAuthLine splits a client authorization file of n colon-separated
// fields ("descriptor:x25519:<base32 key>", after an address in a
// ".auth_private" file) and decodes its key. what names the file for
// errors.
func parseAuthLine(s string, n int, what string) (fields []string, key []byte, err error) {
	f := strings.Split(strings.TrimSpace(s), ":")
	if len(f) != n {
		return nil, nil, errfmt.Errorf("%w: %s has %d fields, want %d", ErrKey, what, len(f), n)
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	if f[n-3] != "descriptor" || f[n-2] != "x25519" {
		return nil, nil, errfmt.Errorf("%w: %s: unsupported auth type %q:%q", ErrKey, what, f[n-3], f[n-2])
	}
	if len(f[n-1]) != 52 {
		return nil, nil, errfmt.Errorf("%w: %s: key is %d base32 characters, want 52", ErrKey, what, len(f[n-1]))
	}
	if key, err = b32.DecodeString(strings.ToUpper(f[n-1])); err != nil {
		return nil, nil, errfmt.Errorf("%w: %s: key: %v", ErrKey, what, err)
	}
	return f, key, nil
}

// ParseAuthorizedClient parses a service's ".auth" file.
func ParseAuthorizedClient(b []byte) (*ecdh.PublicKey, error) {
	_, raw, err := parseAuthLine(string(b), 3, "client authorization file")
	if err != nil {
		return nil, err
	}
	k, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return nil, errfmt.Errorf("%w: %v", ErrKey, err)
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
	f, raw, err := parseAuthLine(string(b), 4, "client authorization private file")
	if err != nil {
		return addr.Address{}, nil, err
	}
	a, err := addr.Parse(f[0])
	if err != nil {
		return addr.Address{}, nil, errfmt.Errorf("client authorization private file: %w", err)
	}
	allZero := true
	for _, c := range raw {
		allZero = allZero && c == 0
	}
	if allZero {
		return addr.Address{}, nil, errfmt.Errorf("%w: private key is all zeros", ErrKey)
	}
	k, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		return addr.Address{}, nil, errfmt.Errorf("%w: %v", ErrKey, err)
	}
	return a, k, nil
}

// ClientAuthPrivateFile encodes a client's ".auth_private" file.
func ClientAuthPrivateFile(a addr.Address, k *ecdh.PrivateKey) []byte {
	return []byte(a.Host() + ":descriptor:x25519:" + b32.EncodeToString(k.Bytes()) + "\n")
}
