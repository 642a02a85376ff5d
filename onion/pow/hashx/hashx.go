// Package hashx is HashX, tevador's family of randomly generated hash
// functions (the one C tor vendors in src/ext/equix/hashx and uses inside
// Equi-X for the onion-service proof of work of proposal 327).
//
// A seed selects a function: BLAKE2b-512 (salt "HashX v1") of the seed gives
// two SipHash keys; the first drives the program generator, which schedules a
// 512-instruction program on a model CPU and rejects the seed when the
// program does not meet the size, multiplication and latency requirements
// (ErrSeed); the second expands the 64-bit input into the eight registers and
// finalizes the output. Programs run in a portable interpreter (no JIT), so
// results are the same on every architecture and byte order.
package hashx

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// Size is the size in bytes of a full HashX output.
const Size = 32

// ErrSeed is returned by Make and New for a seed whose generated program the
// reference rejects (HASHX_FAIL_SEED); about one seed in 10,000.
var ErrSeed = errors.New("hashx: seed does not give an acceptable program")

// errUnprepared is the panic value of Hash on a function that was never made.
var errUnprepared = errors.New("hashx: hash function used before a successful Make")

// keySalt is the BLAKE2b salt of the key derivation: "HashX v1", zero-padded.
var keySalt = [16]byte{'H', 'a', 's', 'h', 'X', ' ', 'v', '1'}

// HashX is one hash function of the family. The zero value holds no function;
// Make (or New) generates one. A HashX may be reused with another seed by
// calling Make again, which does not allocate. Hash is safe for concurrent
// use; Make is not safe concurrently with anything else on the same value.
type HashX struct {
	code  [maxProgramSize]instr
	size  int
	ready bool
	keys  sipState // finalization keys (second half of the BLAKE2b output)
	// rngHook replaces the generator's random stream (tests only).
	rngHook func(uint64) uint64
}

// New returns the hash function for seed, or ErrSeed.
func New(seed []byte) (*HashX, error) {
	h := &HashX{}
	if err := h.Make(seed); err != nil {
		return nil, err
	}
	return h, nil
}

// Make replaces h's function by the one for seed (hashx_make). On ErrSeed h
// holds no function until the next successful Make.
func (h *HashX) Make(seed []byte) error {
	kb := blake2b512Salted(seed, &keySalt)
	var k0 sipState
	k0.v0 = binary.LittleEndian.Uint64(kb[0:])
	k0.v1 = binary.LittleEndian.Uint64(kb[8:])
	k0.v2 = binary.LittleEndian.Uint64(kb[16:])
	k0.v3 = binary.LittleEndian.Uint64(kb[24:])
	h.keys.v0 = binary.LittleEndian.Uint64(kb[32:])
	h.keys.v1 = binary.LittleEndian.Uint64(kb[40:])
	h.keys.v2 = binary.LittleEndian.Uint64(kb[48:])
	h.keys.v3 = binary.LittleEndian.Uint64(kb[56:])
	size, ok := generateProgram(&k0, h.rngHook, &h.code)
	h.size = size
	h.ready = ok
	if !ok {
		return ErrSeed
	}
	return nil
}

// Hash returns the 32-byte hash of input (hashx_exec). It panics if h holds
// no function (New/Make never succeeded).
func (h *HashX) Hash(input uint64) [Size]byte {
	var r [8]uint64
	h.run(input, &r)
	var out [Size]byte
	binary.LittleEndian.PutUint64(out[0:], r[0]^r[4])
	binary.LittleEndian.PutUint64(out[8:], r[1]^r[5])
	binary.LittleEndian.PutUint64(out[16:], r[2]^r[6])
	binary.LittleEndian.PutUint64(out[24:], r[3]^r[7])
	return out
}

// Hash64 returns the first 8 bytes of Hash(input) read as a little-endian
// integer, which is the value Equi-X uses, without building the rest.
func (h *HashX) Hash64(input uint64) uint64 {
	var r [8]uint64
	h.run(input, &r)
	return r[0] ^ r[4]
}

// run expands input, executes the program and finalizes the registers.
func (h *HashX) run(input uint64, r *[8]uint64) {
	if !h.ready {
		panic(errUnprepared)
	}
	siphash24CtrState512(&h.keys, input, r)
	execute(h.code[:h.size], r)
	h.finalize(r)
}

// finalize removes the bias toward 0 caused by multiplications; one SipRound
// per four registers is enough to pass SMHasher.
func (h *HashX) finalize(r *[8]uint64) {
	r[0] += h.keys.v0
	r[1] += h.keys.v1
	r[6] += h.keys.v2
	r[7] += h.keys.v3
	r[0], r[1], r[2], r[3] = sipRound(r[0], r[1], r[2], r[3])
	r[4], r[5], r[6], r[7] = sipRound(r[4], r[5], r[6], r[7])
}

// execute interprets a program on the registers. The only branch taken is
// the first BRANCH whose mask has no bit in common with the low 32 bits of
// the last high multiplication; it jumps back to just after the last TARGET.
func execute(code []instr, r *[8]uint64) {
	target := 0
	branchEnable := true
	var result uint32
	for i := 0; i < len(code); i++ {
		in := &code[i]
		d := in.dst & 7
		s := in.src & 7
		switch in.op {
		case opUmulhR:
			hi, _ := bits.Mul64(r[d], r[s])
			r[d] = hi
			result = uint32(hi)
		case opSmulhR:
			r[d] = smulh(r[d], r[s])
			result = uint32(r[d])
		case opMulR:
			r[d] *= r[s]
		case opSubR:
			r[d] -= r[s]
		case opXorR:
			r[d] ^= r[s]
		case opAddRS:
			r[d] += r[s] << (in.imm & 63)
		case opRorC:
			r[d] = bits.RotateLeft64(r[d], -int(in.imm&63))
		case opAddC:
			r[d] += in.imm
		case opXorC:
			r[d] ^= in.imm
		case opTarget:
			target = i
		case opBranch:
			if branchEnable && result&uint32(in.imm) == 0 {
				i = target
				branchEnable = false
			}
		}
	}
}

// smulh is the high 64 bits of the signed 128-bit product of a and b.
func smulh(a, b uint64) uint64 {
	hi, _ := bits.Mul64(a, b)
	hi -= b & uint64(int64(a)>>63)
	hi -= a & uint64(int64(b)>>63)
	return hi
}
