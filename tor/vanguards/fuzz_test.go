package vanguards

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseState checks that any state parses without panicking, keeps
// at most maxStateGuards distinct guards, and that what it keeps survives
// an encode/parse round trip unchanged.
func FuzzParseState(f *testing.F) {
	f.Add(encodeState([]l2{{id: [20]byte{1, 2, 3}, expires: time.Date(2026, 12, 10, 1, 2, 3, 0, time.UTC)}}))
	f.Add([]byte("Layer2Guard rsa_id=0102 expires=x\n#c\n\nLayer2Guard\nGuard in=default"))
	f.Add([]byte("Layer2Guard rsa_id=0000000000000000000000000000000000000000 expires=9999-12-31T23:59:59 a=b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		guards, _ := parseState(data)
		if len(guards) > maxStateGuards {
			t.Fatalf("%d guards kept", len(guards))
		}
		seen := map[[20]byte]bool{}
		for _, g := range guards {
			if seen[g.id] {
				t.Fatalf("duplicate %X kept", g.id)
			}
			seen[g.id] = true
		}
		enc := encodeState(guards)
		again, problems := parseState(enc)
		if len(problems) != 0 || len(again) != len(guards) {
			t.Fatalf("round trip: %d guards, problems %v; want %d", len(again), problems, len(guards))
		}
		for i := range guards {
			if again[i].id != guards[i].id || !again[i].expires.Equal(guards[i].expires) {
				t.Fatalf("round trip changed guard %d", i)
			}
		}
		if !bytes.Equal(encodeState(again), enc) {
			t.Fatal("encoding not stable")
		}
	})
}
