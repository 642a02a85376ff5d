package main

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func query(id uint16, name string, qtype uint16) []byte {
	m := binary.BigEndian.AppendUint16(nil, id)
	m = append(m, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD, one question
	for _, l := range splitLabels(name) {
		m = append(m, byte(len(l)))
		m = append(m, l...)
	}
	m = append(m, 0)
	m = binary.BigEndian.AppendUint16(m, qtype)
	return binary.BigEndian.AppendUint16(m, classIN)
}

func splitLabels(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func TestAnswer(t *testing.T) {
	z, err := newZone("marker.test=127.0.0.1", "ip.test", 60)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		qtype  uint16
		rcode  byte
		answer string
	}{
		{"MaRkEr.TeSt", typeA, 0, "127.0.0.1"},
		{"marker.test.", 28, 0, ""},
		{"10-99-7-9.ip.test", typeA, 0, "10.99.7.9"},
		{"10-99-7-09.ip.test", typeA, rcodeNXDomain, ""},
		{"10-99-7.ip.test", typeA, rcodeNXDomain, ""},
		{"a.10-99-7-9.ip.test", typeA, rcodeNXDomain, ""},
		{"other.test", typeA, rcodeNXDomain, ""},
	}
	for _, c := range cases {
		q := query(0x1234, c.name, c.qtype)
		r := z.answer(q)
		if len(r) < 12 || r[0] != 0x12 || r[1] != 0x34 || r[2]&0x80 == 0 {
			t.Fatalf("%s: bad header % x", c.name, r)
		}
		if got := r[3] & 0x0f; got != c.rcode {
			t.Errorf("%s: rcode %d, want %d", c.name, got, c.rcode)
		}
		// The question is echoed byte for byte (case preserved).
		if string(r[12:len(q)]) != string(q[12:]) {
			t.Errorf("%s: question not echoed", c.name)
		}
		an := binary.BigEndian.Uint16(r[6:])
		if c.answer == "" {
			if an != 0 {
				t.Errorf("%s: %d answers, want none", c.name, an)
			}
			continue
		}
		if an != 1 || len(r) != len(q)+16 {
			t.Fatalf("%s: %d answers, %d bytes", c.name, an, len(r))
		}
		ip := netip.AddrFrom4([4]byte(r[len(r)-4:]))
		if ip.String() != c.answer {
			t.Errorf("%s: answer %s, want %s", c.name, ip, c.answer)
		}
	}
	// Malformed: truncated header (nothing), truncated question (FORMERR),
	// other opcode (NOTIMP), a response (nothing).
	if r := z.answer([]byte{1, 2, 3}); r != nil {
		t.Errorf("short message answered")
	}
	q := query(1, "marker.test", typeA)
	if r := z.answer(q[:len(q)-3]); r == nil || r[3]&0x0f != rcodeFormErr {
		t.Errorf("truncated question: % x", r)
	}
	q[2] |= 0x10 // opcode 2
	if r := z.answer(q); r == nil || r[3]&0x0f != rcodeNotImp {
		t.Errorf("opcode 2: % x", r)
	}
	q = query(1, "marker.test", typeA)
	q[2] |= 0x80
	if r := z.answer(q); r != nil {
		t.Errorf("response answered")
	}
}

func FuzzAnswer(f *testing.F) {
	z, _ := newZone("marker.test=127.0.0.1", "ip.test", 60)
	f.Add(query(1, "marker.test", typeA))
	f.Add(query(2, "1-2-3-4.ip.test", typeA))
	f.Fuzz(func(t *testing.T, msg []byte) {
		z.answer(msg)
	})
}
