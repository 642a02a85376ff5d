package hashx

import "math/bits"

// batchLanes is how many inputs Hash64Batch runs through the program side by
// side. Interpreting one instruction for many inputs at once replaces an
// unpredictable dispatch per instruction and input by one per instruction
// and batch, and gives the per-lane loops predictable branches.
const batchLanes = 64

// lanes holds the registers of up to batchLanes inputs, one row per register,
// and each input's last high-multiplication result.
type lanes struct {
	r      [8][batchLanes]uint64
	result [batchLanes]uint32
}

type batchState struct {
	main    lanes
	enabled [batchLanes]bool
	// sub holds the lanes that take a branch while they re-run its segment.
	sub    lanes
	subIdx [batchLanes]uint8
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
	m := &st.main
	var regs [8]uint64
	for j := 0; j < n; j++ {
		siphash24CtrState512(&h.keys, first+uint64(j), &regs)
		for k := 0; k < 8; k++ {
			m.r[k][j] = regs[k]
		}
		m.result[j] = 0
		st.enabled[j] = true
	}
	code := h.code[:h.size]
	target := 0
	for i := range code {
		in := &code[i]
		switch in.op {
		case opTarget:
			target = i
		case opBranch:
			st.branch(code[target+1:i+1], uint32(in.imm), n)
		default:
			m.step(in, n)
		}
	}
	for j := 0; j < n; j++ {
		for k := 0; k < 8; k++ {
			regs[k] = m.r[k][j]
		}
		h.finalize(&regs)
		out[j] = regs[0] ^ regs[4]
	}
}

// branch handles a BRANCH instruction with the given mask: the enabled lanes
// whose last high multiplication has no bit of mask take it, which means they
// re-run segment (the instructions after the last TARGET, up to this branch)
// with their branches disabled, then go on with the others.
func (st *batchState) branch(segment []instr, mask uint32, n int) {
	m := &st.main
	k := 0
	for j := 0; j < n; j++ {
		if st.enabled[j] && m.result[j]&mask == 0 {
			st.enabled[j] = false
			st.subIdx[k] = uint8(j)
			k++
		}
	}
	if k == 0 {
		return
	}
	sub := &st.sub
	for x, j := range st.subIdx[:k] {
		for r := 0; r < 8; r++ {
			sub.r[r][x] = m.r[r][j]
		}
		sub.result[x] = m.result[j]
	}
	for i := range segment {
		if op := segment[i].op; op != opTarget && op != opBranch {
			sub.step(&segment[i], k)
		}
	}
	for x, j := range st.subIdx[:k] {
		for r := 0; r < 8; r++ {
			m.r[r][j] = sub.r[r][x]
		}
		m.result[j] = sub.result[x]
	}
}

// step applies one arithmetic instruction to the first n lanes.
func (l *lanes) step(in *instr, n int) {
	rd := l.r[in.dst&7][:n]
	rs := l.r[in.src&7][:len(rd)]
	switch in.op {
	case opUmulhR:
		res := l.result[:len(rd)]
		for j := range rd {
			hi, _ := bits.Mul64(rd[j], rs[j])
			rd[j] = hi
			res[j] = uint32(hi)
		}
	case opSmulhR:
		res := l.result[:len(rd)]
		for j := range rd {
			hi := smulh(rd[j], rs[j])
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
	}
}
