package cell

import (
	"bytes"
	"testing"
)

func FuzzReader(f *testing.F) {
	var buf [Len]byte
	(&Cell{CircID: 0x80000001, Command: Relay}).MarshalTo(&buf)
	f.Add(buf[:], 4)
	f.Add([]byte{0, 0, 7, 0, 4, 0, 4, 0, 5}, 0)
	f.Add([]byte{0, 0, 0, 0, 129, 0, 1, 0}, 5)
	f.Fuzz(func(t *testing.T, data []byte, version int) {
		pool := NewPool(2)
		r := NewReader(bytes.NewReader(data), pool)
		r.SetLinkVersion(version)
		for {
			c, v, err := r.ReadCell()
			if err != nil {
				return
			}
			if (c == nil) == (v == nil) {
				t.Fatal("want exactly one of fixed and variable")
			}
			pool.Put(c)
		}
	})
}

func FuzzCreate2(f *testing.F) {
	f.Add([]byte{0, 2, 0, 3, 1, 2, 3})
	f.Add([]byte{0, 2, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCreate2(data)
		if err != nil {
			return
		}
		var p [PayloadLen]byte
		if c.MarshalTo(&p) == nil {
			d, err := ParseCreate2(p[:])
			if err != nil || !bytes.Equal(d.HandshakeData, c.HandshakeData) || d.HandshakeType != c.HandshakeType {
				t.Fatal("round trip")
			}
		}
	})
}

func FuzzCreated2(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCreated2(data)
		if err != nil {
			return
		}
		d, err := ParseCreated2(c.AppendTo(nil))
		if err != nil || !bytes.Equal(d.HandshakeData, c.HandshakeData) {
			t.Fatal("round trip")
		}
	})
}

func FuzzFast(f *testing.F) {
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseCreateFast(data)
		ParseCreatedFast(data)
		ParseDestroy(data)
	})
}

func FuzzVersions(f *testing.F) {
	f.Add([]byte{0, 4, 0, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		vs, err := ParseVersions(data)
		if err == nil && !bytes.Equal(EncodeVersions(vs...), data) {
			t.Fatal("round trip")
		}
	})
}

func FuzzNetinfo(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 4, 4, 127, 0, 0, 1, 1, 4, 4, 10, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 0, 6, 16, 0x20, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseNetinfo(data)
		if err != nil {
			return
		}
		var p [PayloadLen]byte
		if n.MarshalTo(&p) == nil {
			m, err := ParseNetinfo(p[:])
			if err != nil || m.Time != n.Time || len(m.MyAddrs) != len(n.MyAddrs) {
				t.Fatalf("round trip: %+v %v", m, err)
			}
		}
	})
}

func FuzzExtend2(f *testing.F) {
	f.Add([]byte{1, 0, 6, 127, 0, 0, 1, 0x23, 0x29, 0, 2, 0, 1, 9})
	f.Add([]byte{2, 2, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 1, 7, 0, 2, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseExtend2(data)
		if err != nil {
			return
		}
		b, err := e.AppendTo(nil)
		if err != nil {
			return // may exceed RelayDataLen
		}
		d, err := ParseExtend2(b)
		if err != nil || len(d.Specs) != len(e.Specs) || !bytes.Equal(d.HandshakeData, e.HandshakeData) {
			t.Fatalf("round trip: %v", err)
		}
		for _, s := range d.Specs {
			s.AddrPort()
		}
	})
}

func FuzzRelayHeader(f *testing.F) {
	f.Add(make([]byte, PayloadLen))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p [PayloadLen]byte
		copy(p[:], data)
		h := ParseRelayHeader(&p)
		body, err := RelayBody(&p)
		if err == nil && len(body) != int(h.Length) {
			t.Fatal("body length")
		}
		var q [PayloadLen]byte
		h.Put(&q)
		if ParseRelayHeader(&q) != h {
			t.Fatal("round trip")
		}
	})
}
