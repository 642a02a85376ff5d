package hashx

import "math/bits"

// batchLanes is how many inputs Hash64Batch runs through the program side by
// side. Interpreting one instruction for many inputs at once replaces an
// unpredictable dispatch per instruction and input by one per instruction
// and batch, and gives the per-lane loops predictable branches.
const batchLanes = 64

// batchState holds the registers of batchLanes inputs, one row per register.
type batchState struct {
	r       [8][batchLanes]uint64
	result  [batchLanes]uint32
	enabled [batchLanes]bool
}

// Hash64Batch sets out[i] = h.Hash64(first + i) for every i. It does not
// allocate. It panics if h holds no function.
func (h *HashX) Hash64Batch(first uint64, out []uint64) {
	if !h.ready {
		panic(errUnprepared)
	}
	var st batchState
	for len(out) > 0 {
		n := len(out)
		if n > batchLanes {
			n = batchLanes
		}
		h.runBatch(&st, first, out[:n])
		first += uint64(n)
		out = out[n:]
	}
}

func (h *HashX) runBatch(st *batchState, first uint64, out []uint64) {
	n := len(out)
	var regs [8]uint64
	for j := 0; j < n; j++ {
		siphash24CtrState512(&h.keys, first+uint64(j), &regs)
		for k := 0; k < 8; k++ {
			st.r[k][j] = regs[k]
		}
		st.result[j] = 0
		st.enabled[j] = true
	}
	code := h.code[:h.size]
	target := 0
	for i := 0; i < len(code); i++ {
		in := &code[i]
		rd := st.r[in.dst&7][:n]
		rs := st.r[in.src&7][:n]
		switch in.op {
		case opUmulhR:
			res := st.result[:n]
			for j := range rd {
				hi, _ := bits.Mul64(rd[j], rs[j])
				rd[j] = hi
				res[j] = uint32(hi)
			}
		case opSmulhR:
			res := st.result[:n]
			for j := range rd {
				a, b := rd[j], rs[j]
				hi, _ := bits.Mul64(a, b)
				hi -= b & uint64(int64(a)>>63)
				hi -= a & uint64(int64(b)>>63)
				rd[j] = hi
				res[j] = uint32(hi)
			}
		case opMulR:
			for j := range rd {
				rd[j] *= rs[j]
			}
		case opSubR:
			for j := range rd {
				rd[j] -= rs[j]
			}
		case opXorR:
			for j := range rd {
				rd[j] ^= rs[j]
			}
		case opAddRS:
			sh := in.imm & 63
			for j := range rd {
				rd[j] += rs[j] << sh
			}
		case opRorC:
			rot := -int(in.imm & 63)
			for j := range rd {
				rd[j] = bits.RotateLeft64(rd[j], rot)
			}
		case opAddC:
			c := in.imm
			for j := range rd {
				rd[j] += c
			}
		case opXorC:
			c := in.imm
			for j := range rd {
				rd[j] ^= c
			}
		case opTarget:
			target = i
		case opBranch:
			// Lanes taking the branch re-run target+1..i on their own (with
			// their branches disabled) and rejoin the others after i.
			mask := uint32(in.imm)
			segment := code[target+1 : i+1]
			for j := 0; j < n; j++ {
				if !st.enabled[j] || st.result[j]&mask != 0 {
					continue
				}
				st.enabled[j] = false
				for k := 0; k < 8; k++ {
					regs[k] = st.r[k][j]
				}
				st.result[j] = executeStraight(segment, &regs, st.result[j])
				for k := 0; k < 8; k++ {
					st.r[k][j] = regs[k]
				}
			}
		}
	}
	for j := 0; j < n; j++ {
		for k := 0; k < 8; k++ {
			regs[k] = st.r[k][j]
		}
		h.finalize(&regs)
		out[j] = regs[0] ^ regs[4]
	}
}

// executeStraight runs code with every branch not taken, returning the last
// high-multiplication result.
func executeStraight(code []instr, r *[8]uint64, result uint32) uint32 {
	for i := range code {
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
		}
	}
	return result
}
