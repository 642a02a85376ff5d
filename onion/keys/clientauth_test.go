package keys

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"testing"

	"tinytor/onion/addr"
)

func TestClientAuthFiles(t *testing.T) {
	// The example of rend-spec-v3 G.1.2.
	pub, err := ParseAuthorizedClient([]byte("descriptor:x25519:OM7TGIVRYMY6PFX6GAC6ATRTA5U6WW6U7A4ZNHQDI6OVL52XVV2Q\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(AuthorizedClientFile(pub)); got != "descriptor:x25519:OM7TGIVRYMY6PFX6GAC6ATRTA5U6WW6U7A4ZNHQDI6OVL52XVV2Q\n" {
		t.Errorf("re-encoded %q", got)
	}
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	id, _ := GenerateKey()
	a, _ := addr.FromKey(id.Public())
	f := ClientAuthPrivateFile(a, k)
	a2, k2, err := ParseClientAuthPrivate(f)
	if err != nil || a2 != a || !k2.Equal(k) {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{
		"descriptor:x25519:OM7TGIVRYMY6PFX6GAC6ATRTA5U6WW6U7A4ZNHQDI6OVL52XVV2",
		"descriptor:ed25519:OM7TGIVRYMY6PFX6GAC6ATRTA5U6WW6U7A4ZNHQDI6OVL52XVV2Q",
		"x25519:OM7TGIVRYMY6PFX6GAC6ATRTA5U6WW6U7A4ZNHQDI6OVL52XVV2Q",
	} {
		if _, err := ParseAuthorizedClient([]byte(bad)); !errors.Is(err, ErrKey) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	zero := a.Host() + ":descriptor:x25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if _, _, err := ParseClientAuthPrivate([]byte(zero)); !errors.Is(err, ErrKey) {
		t.Errorf("zero key: %v", err)
	}
	if _, _, err := ParseClientAuthPrivate([]byte("bad:descriptor:x25519:" + string(f[len(f)-53:len(f)-1]))); !errors.Is(err, addr.ErrLength) {
		t.Errorf("bad address: %v", err)
	}
}
