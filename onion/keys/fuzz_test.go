package keys

import "testing"

func FuzzParseFiles(f *testing.F) {
	k, _ := FromSeed(make([]byte, 32))
	f.Add(k.SecretKeyFile())
	f.Add(PublicKeyFile(k.Public()))
	h, _ := HostnameFile(k.Public())
	f.Add(h)
	f.Add([]byte("descriptor:x25519:OM7TGIVRYMY6PFX6GAC6ATRTA5U6WW6U7A4ZNHQDI6OVL52XVV2Q\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParseSecretKeyFile(b); err == nil {
			k.Sign(b)
		}
		ParsePublicKeyFile(b)
		ParseHostnameFile(b)
		ParseAuthorizedClient(b)
		ParseClientAuthPrivate(b)
	})
}
