package ring

import (
	"encoding/hex"
	"testing"
	"time"

	"tinytor/onion/keys"
)

// Known answer from onionbalance (an independent Python implementation,
// used in production against C tor HSDirs), its hash ring unit test: 255
// HSDirs whose RSA and ed25519 identities are the byte i repeated, current
// SRV 0x29..., previous SRV 0x2a..., consensus valid-after 10101010101
// (2290-02-01 20:08:21 UTC, between a new period and the next SRV), and the
// blinded keys of the first and the second descriptor.
func TestOnionbalanceVector(t *testing.T) {
	var nodes []Node
	for i := 1; i < 256; i++ {
		var n Node
		for j := range n.Ed25519ID {
			n.Ed25519ID[j] = byte(i)
		}
		for j := range n.RSAID {
			n.RSAID[j] = byte(i)
		}
		nodes = append(nodes, n)
	}
	var cur, prev [32]byte
	for i := range cur {
		cur[i], prev[i] = 41, 42
	}
	firstBlinded, _ := hex.DecodeString("063AEC5E1FD3025098F2DF71EF570B28D94B463FFCCB5EC6A9C061E38F551C6A")
	secondBlinded, _ := hex.DecodeString("5DB624F2D74F103E6E8C6FBCCD074586EF5A5572F90673C00B77DEF94EC11499")
	wantFirst := []byte{0xD1, 0x2F, 0xB0, 0x3A, 0x5A, 0xDF, 0xF7, 0x34}
	wantSecond := []byte{0x5D, 0x9A, 0xD1, 0x7A, 0xC3, 0xC6, 0xE9, 0x86}

	p := keys.LivePeriods()
	va := time.Unix(10101010101, 0)
	first, second := Store(p, va, SRVs{Current: &cur, Previous: &prev})
	check := func(name string, got []Node, want []byte) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d HSDirs, want %d", name, len(got), len(want))
		}
		for i, n := range got {
			if n.RSAID != [20]byte(repeat(want[i])) {
				t.Errorf("%s: HSDir %d is %X..., want %X...", name, i, n.RSAID[:2], want[i])
			}
		}
	}
	check("first descriptor", Responsible(nodes, firstBlinded, first, p.LengthMinutes, 2, 4), wantFirst)
	check("second descriptor", Responsible(nodes, secondBlinded, second, p.LengthMinutes, 2, 4), wantSecond)
}

func repeat(b byte) []byte {
	out := make([]byte, 20)
	for i := range out {
		out[i] = b
	}
	return out
}
