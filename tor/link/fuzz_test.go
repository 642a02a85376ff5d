package link

import (
	"testing"
	"time"

	"tinytor/tor/cell"
)

func FuzzParseCerts(f *testing.F) {
	k := testKeys(f)
	f.Add(k.certsCell(f, relayOpts{}), k.tlsCert.Certificate[0])
	f.Add([]byte{2, 4, 0, 1, 0, 4, 0, 0}, []byte{})
	f.Add([]byte{1, 7, 0xff, 0xff}, []byte{})
	f.Fuzz(func(t *testing.T, data, tlsCert []byte) {
		m, err := ParseCerts(data)
		if err != nil {
			return
		}
		id, err := VerifyResponder(m, tlsCert, time.Now())
		if err == nil && id.RSA == [20]byte{} {
			t.Fatal("verified without an RSA identity")
		}
		if _, err := ParseCerts(m.AppendTo(nil)); err != nil {
			t.Fatalf("re-encoding does not parse: %v", err)
		}
	})
}

func FuzzParseNetinfo(f *testing.F) {
	f.Add([]byte{0x65, 0, 0, 0, 4, 4, 127, 0, 0, 1, 1, 4, 4, 127, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 6, 16})
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := cell.ParseNetinfo(data)
		if err != nil {
			return
		}
		for _, a := range n.MyAddrs {
			if !a.IsValid() {
				t.Fatal("invalid address kept")
			}
		}
	})
}
