package hashx

import "math/bits"

// sipState is the 256-bit SipHash state (four 64-bit lanes) used both as the
// key of the program generator's random stream and as the key of the hash
// function's input expansion.
type sipState struct {
	v0, v1, v2, v3 uint64
}

// sipRound is one SipHash round on the four lanes.
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v2 += v3
	v1 = bits.RotateLeft64(v1, 13)
	v3 = bits.RotateLeft64(v3, 16)
	v1 ^= v0
	v3 ^= v2
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v1
	v0 += v3
	v1 = bits.RotateLeft64(v1, 17)
	v3 = bits.RotateLeft64(v3, 21)
	v1 ^= v2
	v3 ^= v0
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// siphash13Ctr is SipHash-1-3 in counter mode: the state is used directly as
// the key material and the input is a single 64-bit word.
func siphash13Ctr(input uint64, k *sipState) uint64 {
	v0, v1, v2, v3 := k.v0, k.v1, k.v2, k.v3
	v3 ^= input
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= input
	v2 ^= 0xff
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return (v0 ^ v1) ^ (v2 ^ v3)
}

// siphash24CtrState512 expands a 64-bit input into the eight initial register
// values of a HashX program (SipHash-2-4 with a 128-bit-style extended output).
func siphash24CtrState512(k *sipState, input uint64, out *[8]uint64) {
	v0, v1, v2, v3 := k.v0, k.v1, k.v2, k.v3
	v1 ^= 0xee
	v3 ^= input
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= input
	v2 ^= 0xee
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	out[0], out[1], out[2], out[3] = v0, v1, v2, v3
	v1 ^= 0xdd
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	out[4], out[5], out[6], out[7] = v0, v1, v2, v3
}

// sipRNG is the program generator's pseudorandom stream: SipHash-1-3 of a
// counter, consumed either a byte or a 32-bit word at a time from two
// independent buffers that share the counter (most significant part first).
type sipRNG struct {
	keys     sipState
	counter  uint64
	buffer8  uint64
	buffer32 uint64
	count8   uint
	count32  uint
	// hook, when set (tests only), sees and may replace every fresh 64-bit
	// block of the stream, like the reference's HASHX_RNG_CALLBACK.
	hook func(uint64) uint64
}

func (g *sipRNG) init(k *sipState, hook func(uint64) uint64) {
	*g = sipRNG{keys: *k, hook: hook}
}

func (g *sipRNG) next() uint64 {
	v := siphash13Ctr(g.counter, &g.keys)
	g.counter++
	if g.hook != nil {
		v = g.hook(v)
	}
	return v
}

func (g *sipRNG) u8() uint8 {
	if g.count8 == 0 {
		g.buffer8 = g.next()
		g.count8 = 8
	}
	g.count8--
	return uint8(g.buffer8 >> (g.count8 * 8))
}

func (g *sipRNG) u32() uint32 {
	if g.count32 == 0 {
		g.buffer32 = g.next()
		g.count32 = 2
	}
	g.count32--
	return uint32(g.buffer32 >> (g.count32 * 32))
}
