package hashx

// Opcodes of the HashX instruction set (the reference's instr_type order,
// which the generator's "group" comparisons and multiplication count rely on).
const (
	opUmulhR = iota // unsigned high multiplication by a register
	opSmulhR        // signed high multiplication by a register
	opMulR          // multiplication by a register
	opSubR          // subtraction of a register
	opXorR          // xor with a register
	opAddRS         // addition of a shifted register
	opRorC          // rotation by a constant
	opAddC          // addition of a sign-extended 32-bit constant
	opXorC          // xor with a sign-extended 32-bit constant
	opTarget        // branch target
	opBranch        // conditional branch (taken at most once per hash)
)

// opNone stands for the reference's "-1" instruction type: no previous
// instruction / no previous operation on a register.
const opNone = -1

// Generator parameters, as in the reference.
const (
	targetCycle        = 192 // instructions are generated until this cycle
	requirementSize    = 512 // accepted programs have exactly this many instructions,
	requirementMuls    = 192 // this many multiplications,
	requirementLatency = 195 // and this latency (in cycles)
	// registerNeedsDisplacement (r5, x86 r13) cannot be the destination of
	// ADD_RS (limitation of the x86 lea encoding the reference's JIT uses).
	registerNeedsDisplacement = 5
	portMapSize               = targetCycle + 4
	numPorts                  = 3
	maxRetries                = 1
	log2BranchProb            = 4
	branchMask                = 0x80000000
	// maxProgramSize bounds the generated program (accepted ones have
	// exactly requirementSize instructions).
	maxProgramSize = 512
)

// Execution ports of the modelled CPU (Ivy Bridge P0, P1, P5).
const (
	portNone = 0
	portP0   = 1
	portP1   = 2
	portP5   = 4
	portP01  = portP0 | portP1
	portP05  = portP0 | portP5
	portP015 = portP0 | portP1 | portP5
)

type template struct {
	typ         int
	latency     int
	uop1, uop2  uint8
	immMask     uint32
	group       int
	immCanBe0   bool
	distinctDst bool // dst and src must differ
	opParSrc    bool // the operation parameter is the source register
	hasSrc      bool
	hasDst      bool
}

var (
	tplUmulhR = template{typ: opUmulhR, latency: 4, uop1: portP1, uop2: portP5, group: opUmulhR, hasSrc: true, hasDst: true}
	tplSmulhR = template{typ: opSmulhR, latency: 4, uop1: portP1, uop2: portP5, group: opSmulhR, hasSrc: true, hasDst: true}
	tplMulR   = template{typ: opMulR, latency: 3, uop1: portP1, group: opMulR, distinctDst: true, opParSrc: true, hasSrc: true, hasDst: true}
	tplSubR   = template{typ: opSubR, latency: 1, uop1: portP015, group: opAddRS, distinctDst: true, opParSrc: true, hasSrc: true, hasDst: true}
	tplXorR   = template{typ: opXorR, latency: 1, uop1: portP015, group: opXorR, distinctDst: true, opParSrc: true, hasSrc: true, hasDst: true}
	tplAddRS  = template{typ: opAddRS, latency: 1, uop1: portP01, immMask: 3, group: opAddRS, immCanBe0: true, distinctDst: true, opParSrc: true, hasSrc: true, hasDst: true}
	tplRorC   = template{typ: opRorC, latency: 1, uop1: portP05, immMask: 63, group: opRorC, distinctDst: true, hasDst: true}
	tplAddC   = template{typ: opAddC, latency: 1, uop1: portP015, immMask: 0xffffffff, group: opAddC, distinctDst: true, hasDst: true}
	tplXorC   = template{typ: opXorC, latency: 1, uop1: portP015, immMask: 0xffffffff, group: opXorC, distinctDst: true, hasDst: true}
	tplTarget = template{typ: opTarget, latency: 1, uop1: portP015, uop2: portP015, group: opTarget, distinctDst: true}
	tplBranch = template{typ: opBranch, latency: 1, uop1: portP015, uop2: portP015, immMask: branchMask, group: opBranch, distinctDst: true}
)

// programItem is one slot of the repeating program layout.
type programItem struct {
	templates  []*template
	mask0      uint8
	mask1      uint8 // mask used on a retry: only instructions without a source
	duplicates bool  // may repeat the previous instruction's group
}

var (
	itemMul     = programItem{templates: []*template{&tplMulR}, duplicates: true}
	itemTarget  = programItem{templates: []*template{&tplTarget}, duplicates: true}
	itemBranch  = programItem{templates: []*template{&tplBranch}, duplicates: true}
	itemWideMul = programItem{templates: []*template{&tplSmulhR, &tplUmulhR}, mask0: 1, mask1: 1, duplicates: true}
	itemAny     = programItem{templates: []*template{&tplRorC, &tplXorC, &tplAddC, &tplAddC, &tplSubR, &tplXorR, &tplXorC, &tplAddRS}, mask0: 7, mask1: 3}
)

var programLayout = [36]*programItem{
	&itemMul, &itemTarget, &itemAny, &itemMul, &itemAny, &itemAny,
	&itemMul, &itemAny, &itemAny, &itemMul, &itemAny, &itemAny,
	&itemWideMul, &itemAny, &itemAny, &itemMul, &itemAny, &itemAny,
	&itemMul, &itemBranch, &itemAny, &itemMul, &itemAny, &itemAny,
	&itemWideMul, &itemAny, &itemAny, &itemMul, &itemAny, &itemAny,
	&itemMul, &itemAny, &itemAny, &itemMul, &itemAny, &itemAny,
}

// genInstr is an instruction as the generator builds it.
type genInstr struct {
	opcode int
	src    int
	dst    int
	imm32  uint32
	opPar  uint32
}

type registerInfo struct {
	latency   int    // cycle when the value will be ready
	lastOp    int    // group of the last operation applied to it
	lastOpPar uint32 // parameter of that operation (all ones: a constant)
}

type generator struct {
	cycle    int
	subCycle int // 3 sub-cycles = 1 cycle
	mulCount int
	chainMul bool
	latency  int
	rng      sipRNG
	regs     [8]registerInfo
	ports    [portMapSize][numPorts]uint8
}

func (g *generator) selectTemplate(lastInstr, attempt int) *template {
	item := programLayout[g.subCycle%36]
	for {
		index := 0
		if item.mask0 != 0 {
			mask := item.mask0
			if attempt > 0 {
				mask = item.mask1
			}
			index = int(g.rng.u8() & mask)
		}
		tpl := item.templates[index]
		if item.duplicates || tpl.group != lastInstr {
			return tpl
		}
	}
}

func (g *generator) branchMask() uint32 {
	var mask uint32
	popcnt := 0
	for popcnt < log2BranchProb {
		bit := g.rng.u8() % 32
		bitmask := uint32(1) << bit
		if mask&bitmask == 0 {
			mask |= bitmask
			popcnt++
		}
	}
	return mask
}

func (g *generator) instrFromTemplate(tpl *template, in *genInstr) {
	in.opcode = tpl.typ
	if tpl.immMask != 0 {
		if tpl.immMask == branchMask {
			in.imm32 = g.branchMask()
		} else {
			for {
				in.imm32 = g.rng.u32() & tpl.immMask
				if in.imm32 != 0 || tpl.immCanBe0 {
					break
				}
			}
		}
	}
	if !tpl.opParSrc {
		if tpl.distinctDst {
			in.opPar = 0xffffffff
		} else {
			in.opPar = g.rng.u32()
		}
	}
	if !tpl.hasSrc {
		in.src = -1
	}
	if !tpl.hasDst {
		in.dst = -1
	}
}

func (g *generator) selectRegister(avail []int) (int, bool) {
	switch len(avail) {
	case 0:
		return 0, false
	case 1:
		return avail[0], true
	default:
		return avail[g.rng.u32()%uint32(len(avail))], true
	}
}

func (g *generator) selectDestination(tpl *template, in *genInstr, cycle int) bool {
	var buf [8]int
	avail := buf[:0]
	// The destination must be ready at the cycle, differ from the source
	// unless allowed, not be multiplied twice in a row (unless chainMul),
	// not repeat the same operation with the same parameter, and r5 is never
	// the destination of ADD_RS.
	for i := 0; i < 8; i++ {
		r := &g.regs[i]
		ok := r.latency <= cycle
		ok = ok && (!tpl.distinctDst || i != in.src)
		ok = ok && (g.chainMul || tpl.group != opMulR || r.lastOp != opMulR)
		ok = ok && (r.lastOp != tpl.group || r.lastOpPar != in.opPar)
		ok = ok && (in.opcode != opAddRS || i != registerNeedsDisplacement)
		if ok {
			avail = append(avail, i)
		}
	}
	reg, ok := g.selectRegister(avail)
	if ok {
		in.dst = reg
	}
	return ok
}

func (g *generator) selectSource(tpl *template, in *genInstr, cycle int) bool {
	var buf [8]int
	avail := buf[:0]
	for i := 0; i < 8; i++ {
		if g.regs[i].latency <= cycle {
			avail = append(avail, i)
		}
	}
	// With only two candidates for ADD_RS and one of them r5, r5 must be the
	// source since it cannot be the destination.
	if len(avail) == 2 && in.opcode == opAddRS {
		if avail[0] == registerNeedsDisplacement || avail[1] == registerNeedsDisplacement {
			in.src = registerNeedsDisplacement
			in.opPar = registerNeedsDisplacement
			return true
		}
	}
	reg, ok := g.selectRegister(avail)
	if !ok {
		return false
	}
	in.src = reg
	if tpl.opParSrc {
		in.opPar = uint32(reg)
	}
	return true
}

// scheduleUop finds the first cycle from the given one with a free port for
// the micro-op, trying P5, then P0, then P1.
func (g *generator) scheduleUop(uop uint8, cycle int, commit bool) int {
	for ; cycle < portMapSize; cycle++ {
		if uop&portP5 != 0 && g.ports[cycle][2] == 0 {
			if commit {
				g.ports[cycle][2] = uop
			}
			return cycle
		}
		if uop&portP0 != 0 && g.ports[cycle][0] == 0 {
			if commit {
				g.ports[cycle][0] = uop
			}
			return cycle
		}
		if uop&portP1 != 0 && g.ports[cycle][1] == 0 {
			if commit {
				g.ports[cycle][1] = uop
			}
			return cycle
		}
	}
	return -1
}

func (g *generator) scheduleInstr(tpl *template, commit bool) int {
	if tpl.uop2 == portNone {
		return g.scheduleUop(tpl.uop1, g.cycle, commit)
	}
	// Two micro-ops are scheduled conservatively: both in the same cycle.
	for cycle := g.cycle; cycle < portMapSize; cycle++ {
		c1 := g.scheduleUop(tpl.uop1, cycle, false)
		c2 := g.scheduleUop(tpl.uop2, cycle, false)
		if c1 >= 0 && c1 == c2 {
			if commit {
				g.scheduleUop(tpl.uop1, cycle, true)
				g.scheduleUop(tpl.uop2, cycle, true)
			}
			return c1
		}
	}
	return -1
}

// generateProgram runs the reference's program generator with the given key,
// writing the accepted instructions to out, and reports the program size and
// whether the program meets the uniform complexity requirements (size,
// multiplication count and latency); about 1 seed in 10,000 does not.
func generateProgram(key *sipState, hook func(uint64) uint64, out *[maxProgramSize]instr) (int, bool) {
	g := &generator{}
	g.rng.init(key, hook)
	for i := range g.regs {
		g.regs[i] = registerInfo{lastOp: opNone, lastOpPar: 0xffffffff}
	}
	size := 0
	attempt := 0
	lastInstr := opNone
	// The reference fills a program slot in place and retries in the same
	// slot; every field it reads during an attempt is written earlier in the
	// same attempt, so one reused instruction is equivalent.
	var cur genInstr
	for size < maxProgramSize {
		in := &cur
		tpl := g.selectTemplate(lastInstr, attempt)
		lastInstr = tpl.group
		g.instrFromTemplate(tpl, in)

		// Earliest cycle when all of the instruction's micro-ops can execute.
		scheduleCycle := g.scheduleInstr(tpl, false)
		if scheduleCycle < 0 {
			break
		}
		g.chainMul = attempt > 0

		if tpl.hasSrc && !g.selectSource(tpl, in, scheduleCycle) {
			if attempt < maxRetries {
				attempt++
				continue
			}
			g.subCycle += 3
			g.cycle = g.subCycle / 3
			attempt = 0
			continue
		}
		if tpl.hasDst && !g.selectDestination(tpl, in, scheduleCycle) {
			if attempt < maxRetries {
				attempt++
				continue
			}
			g.subCycle += 3
			g.cycle = g.subCycle / 3
			attempt = 0
			continue
		}
		attempt = 0

		// Schedule for real now that the operands are known.
		scheduleCycle = g.scheduleInstr(tpl, true)
		if scheduleCycle < 0 || scheduleCycle >= targetCycle {
			break
		}
		if tpl.hasDst {
			r := &g.regs[in.dst]
			retire := scheduleCycle + tpl.latency
			r.latency = retire
			r.lastOp = tpl.group
			r.lastOpPar = in.opPar
			if retire > g.latency {
				g.latency = retire
			}
		}
		out[size] = compileInstr(in)
		size++
		if in.opcode <= opMulR {
			g.mulCount++
		}
		g.subCycle++
		if tpl.uop2 != portNone {
			g.subCycle++
		}
		g.cycle = g.subCycle / 3
	}
	ok := size == requirementSize && g.mulCount == requirementMuls && g.latency == requirementLatency-1
	return size, ok
}

// instr is an instruction in the interpreter's form.
type instr struct {
	op  uint8
	dst uint8
	src uint8
	imm uint64 // rotation, shift, sign-extended constant or branch mask
}

func compileInstr(in *genInstr) instr {
	c := instr{op: uint8(in.opcode), dst: uint8(in.dst & 7), src: uint8(in.src & 7)}
	switch in.opcode {
	case opAddC, opXorC:
		c.imm = uint64(int64(int32(in.imm32)))
	case opRorC, opAddRS, opBranch:
		c.imm = uint64(in.imm32)
	}
	return c
}
