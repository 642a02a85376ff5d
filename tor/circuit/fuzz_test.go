package circuit

import "testing"

func FuzzParseConnected(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1, 0, 0, 0, 60})
	f.Add([]byte{0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 7})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConnected(b)
		if err == nil && c.Addr.IsValid() && !c.Addr.Is4() && !c.Addr.Is6() {
			t.Fatalf("bad address %v", c.Addr)
		}
	})
}

func FuzzParseResolved(f *testing.F) {
	f.Add([]byte{4, 4, 127, 0, 0, 1, 0, 0, 1, 0})
	f.Add([]byte{0, 3, 'a', '.', 'b', 0, 0, 0, 1})
	f.Add([]byte{0xf0, 0, 0, 0, 0, 0})
	f.Add([]byte{6, 15})
	f.Fuzz(func(t *testing.T, b []byte) {
		as, err := ParseResolved(b)
		if err != nil {
			return
		}
		n := 0
		for _, a := range as {
			n += 6
			switch a.Type {
			case AnswerIPv4:
				n += 4
			case AnswerIPv6:
				n += 16
			}
		}
		if n > len(b) {
			t.Fatalf("answers account for %d bytes of %d", n, len(b))
		}
	})
}

func FuzzParseSendme(f *testing.F) {
	f.Add([]byte{1, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{1, 0, 19})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, d, err := parseSendme(b)
		if err == nil && v == 1 && len(d) != sendmeDigestLen {
			t.Fatalf("v1 digest of %d bytes", len(d))
		}
	})
}

func FuzzParseFlowControl(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 100})
	f.Add([]byte{0})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		kbps, err := parseXon(b)
		if err == nil && (len(b) < 5 || b[0] != 0 || kbps != uint32(b[1])<<24|uint32(b[2])<<16|uint32(b[3])<<8|uint32(b[4])) {
			t.Fatalf("XON %x parsed as rate %d", b, kbps)
		}
		if err := parseXoff(b); err == nil && (len(b) < 1 || b[0] != 0) {
			t.Fatalf("XOFF %x accepted", b)
		}
	})
}
