package cert

import (
	"bytes"
	"testing"
	"time"
)

func FuzzParseEd25519(f *testing.F) {
	if der, _, _, err := readDescriptorCert(); err == nil {
		f.Add(der)
	}
	f.Add(make([]byte, MinEd25519Len))
	f.Add(append([]byte{1, 4, 0, 0, 0, 1, 1}, make([]byte, 33+64)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseEd25519(data)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Raw, data) {
			t.Fatal("Raw differs from input")
		}
		_ = c.Verify(nil)
		_ = c.Check(c.SignedWithKey, time.Unix(0, 0))
	})
}

func FuzzParseCrossCert(f *testing.F) {
	f.Add(append(make([]byte, 36), 1, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCrossCert(data)
		if err != nil {
			return
		}
		_ = c.Check(&testRSAKey(t).PublicKey, time.Unix(0, 0))
	})
}

func FuzzParseRSAIdentity(f *testing.F) {
	k := testRSAKey(f)
	der, err := NewRSAIdentity(k, time.Unix(0, 0), time.Unix(1e9, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(der)
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := ParseRSAIdentity(data)
		if err != nil {
			return
		}
		_ = id.Check(time.Unix(5e8, 0))
	})
}
