package equix

import (
	"context"
	"errors"

	"tinytor/onion/pow/hashx"
	"tinytor/tor/errfmt"
)

// Solver geometry, as the reference's solver_heap.h.
const (
	indexSpace        = 1 << 16
	numCoarseBuckets  = 256
	numFineBuckets    = 128
	coarseBucketItems = 336
	fineBucketItems   = 12
	// hashChunk is how many hashes stage 0 computes per batch.
	hashChunk = 1024
)

// Stage-2 and stage-3 entries pack the item (left item index, right item
// index, bucket: 9+9+8 = 26 bits) under the remaining bits of the partial sum
// (37 and 22 bits), so each fits in one uint64.
const itemBits = 26

func makeItem(bucket, left, right uint32) uint32 { return left<<17 | right<<8 | bucket }
func itemBucket(item uint32) uint32              { return item % numCoarseBuckets }
func itemLeft(item uint32) uint32                { return item >> 17 }
func itemRight(item uint32) uint32               { return (item >> 8) & 511 }
func invertBucket(b uint32) uint32               { return -b % numCoarseBuckets }
func invertFine(b uint64) uint64                 { return -b % numFineBuckets }

// Solver finds Equi-X solutions. It holds the solver's scratch memory (about
// 1.5 MB, allocated once by NewSolver and reused by every Solve) and a HashX
// context. A Solver is not safe for concurrent use; use one per goroutine.
type Solver struct {
	h hashx.HashX

	s1Counts [numCoarseBuckets]uint16
	s1Idx    [numCoarseBuckets][coarseBucketItems]uint16
	// s1Data holds the 52-bit stage-1 values; after stage 1 the same memory
	// holds the stage-3 entries (22-bit value << 26 | item), like the
	// reference's union.
	s1Data   [numCoarseBuckets][coarseBucketItems]uint64
	s2Counts [numCoarseBuckets]uint16
	s2       [numCoarseBuckets][coarseBucketItems]uint64 // 37-bit value << 26 | item
	s3Counts [numCoarseBuckets]uint16

	scratchCounts [numFineBuckets]uint8
	scratch       [numFineBuckets][fineBucketItems]uint16

	hashes [hashChunk]uint64
}

// NewSolver allocates a Solver.
func NewSolver() *Solver {
	return new(Solver)
}

// Solve finds the solutions of challenge (equix_solve), appends them to
// dst[:0] in the reference's order and returns the slice; it returns at most
// MaxSolutions and often none. ErrChallenge means the challenge gives no
// HashX function. With a dst of capacity MaxSolutions, Solve does not
// allocate.
func (s *Solver) Solve(challenge []byte, dst []Solution) ([]Solution, error) {
	return s.SolveContext(context.Background(), challenge, dst)
}

// SolveContext is Solve, abandoned with ctx's error when ctx ends (checked
// between stages and every 1024 hashes, so within a small fraction of one
// solve's time even on slow CPUs).
func (s *Solver) SolveContext(ctx context.Context, challenge []byte, dst []Solution) ([]Solution, error) {
	dst = dst[:0]
	if err := s.h.Make(challenge); err != nil {
		if errors.Is(err, hashx.ErrSeed) {
			return dst, ErrChallenge
		}
		return dst, errfmt.Errorf("equix: solve: %w", err)
	}
	if err := s.stage0(ctx); err != nil {
		return dst, err
	}
	s.stage1()
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	s.stage2()
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	return s.stage3(dst), nil
}

// Verify is Verify using the Solver's HashX context (no allocation).
func (s *Solver) Verify(challenge []byte, sol Solution) error {
	if !orderOK(&sol) {
		return ErrOrder
	}
	if err := s.h.Make(challenge); err != nil {
		if errors.Is(err, hashx.ErrSeed) {
			return ErrChallenge
		}
		return errfmt.Errorf("equix: verify: %w", err)
	}
	return verifySums(&s.h, &sol)
}

// stage0 hashes every index into the 256 coarse buckets by the hash's low 8
// bits, keeping the remaining 52 bits.
func (s *Solver) stage0(ctx context.Context) error {
	s.s1Counts = [numCoarseBuckets]uint16{}
	for base := 0; base < indexSpace; base += hashChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.h.Hash64Batch(uint64(base), s.hashes[:])
		for k, value := range s.hashes {
			b := value % numCoarseBuckets
			n := s.s1Counts[b]
			if n >= coarseBucketItems {
				continue
			}
			s.s1Counts[b] = n + 1
			s.s1Idx[b][n] = uint16(base + k)
			s.s1Data[b][n] = value / numCoarseBuckets
		}
	}
	return nil
}

// addScratch files item i (with value v) in the fine bucket of v's low 7
// bits; false when that bucket is full.
func (s *Solver) addScratch(v uint64, i uint32) bool {
	fb := v % numFineBuckets
	n := s.scratchCounts[fb]
	if n >= fineBucketItems {
		return false
	}
	s.scratchCounts[fb] = n + 1
	s.scratch[fb][n] = uint16(i)
	return true
}

// stage1 pairs stage-1 items of complementary coarse and fine buckets (their
// sum is 0 mod 2^15) into stage-2 entries, keyed by the next 8 bits.
func (s *Solver) stage1() {
	s.s2Counts = [numCoarseBuckets]uint16{}
	for b := uint32(0); b < numCoarseBuckets/2+1; b++ {
		cpl := invertBucket(b)
		s.scratchCounts = [numFineBuckets]uint8{}
		carry := uint64(0)
		if b != 0 {
			carry = 1
		}
		cplSize := uint32(s.s1Counts[cpl])
		for i := uint32(0); i < cplSize; i++ {
			if !s.addScratch(s.s1Data[cpl][i], i) {
				continue
			}
			if cpl == b {
				s.pairs1(b, cpl, i, carry)
			}
		}
		if cpl != b {
			size := uint32(s.s1Counts[b])
			for i := uint32(0); i < size; i++ {
				s.pairs1(b, cpl, i, carry)
			}
		}
	}
}

func (s *Solver) pairs1(b, cpl, i uint32, carry uint64) {
	value := s.s1Data[b][i] + carry
	fcpl := invertFine(value % numFineBuckets)
	n := int(s.scratchCounts[fcpl])
	for k := 0; k < n; k++ {
		ci := uint32(s.scratch[fcpl][k])
		sum := (value + s.s1Data[cpl][ci]) / numFineBuckets // 45 bits
		nb := sum % numCoarseBuckets
		m := s.s2Counts[nb]
		if m >= coarseBucketItems {
			continue
		}
		s.s2Counts[nb] = m + 1
		s.s2[nb][m] = (sum/numCoarseBuckets)<<itemBits | uint64(makeItem(b, i, ci)) // 37 bits of sum
	}
}

// stage2 does the same on the stage-2 entries (sum 0 mod 2^30), producing
// stage-3 entries in the memory of the stage-1 values.
func (s *Solver) stage2() {
	s.s3Counts = [numCoarseBuckets]uint16{}
	for b := uint32(0); b < numCoarseBuckets/2+1; b++ {
		cpl := invertBucket(b)
		s.scratchCounts = [numFineBuckets]uint8{}
		carry := uint64(0)
		if b != 0 {
			carry = 1
		}
		cplSize := uint32(s.s2Counts[cpl])
		for i := uint32(0); i < cplSize; i++ {
			if !s.addScratch(s.s2[cpl][i]>>itemBits, i) {
				continue
			}
			if cpl == b {
				s.pairs2(b, cpl, i, carry)
			}
		}
		if cpl != b {
			size := uint32(s.s2Counts[b])
			for i := uint32(0); i < size; i++ {
				s.pairs2(b, cpl, i, carry)
			}
		}
	}
}

func (s *Solver) pairs2(b, cpl, i uint32, carry uint64) {
	value := s.s2[b][i]>>itemBits + carry
	fcpl := invertFine(value % numFineBuckets)
	n := int(s.scratchCounts[fcpl])
	for k := 0; k < n; k++ {
		ci := uint32(s.scratch[fcpl][k])
		sum := (value + s.s2[cpl][ci]>>itemBits) / numFineBuckets // 30 bits
		nb := sum % numCoarseBuckets
		m := s.s3Counts[nb]
		if m >= coarseBucketItems {
			continue
		}
		s.s3Counts[nb] = m + 1
		s.s1Data[nb][m] = (sum/numCoarseBuckets)<<itemBits | uint64(makeItem(b, i, ci)) // 22 bits of sum
	}
}

// stage3 pairs stage-3 entries whose sum is 0 mod 2^60 in total: solutions.
func (s *Solver) stage3(dst []Solution) []Solution {
	for b := uint32(0); b < numCoarseBuckets/2+1; b++ {
		cpl := invertBucket(b)
		s.scratchCounts = [numFineBuckets]uint8{}
		carry := uint32(0)
		if b != 0 {
			carry = 1
		}
		cplSize := uint32(s.s3Counts[cpl])
		for i := uint32(0); i < cplSize; i++ {
			if !s.addScratch(s.s1Data[cpl][i]>>itemBits, i) {
				continue
			}
			if cpl == b {
				if dst = s.pairs3(dst, b, cpl, i, carry); len(dst) >= MaxSolutions {
					return dst
				}
			}
		}
		if cpl != b {
			size := uint32(s.s3Counts[b])
			for i := uint32(0); i < size; i++ {
				if dst = s.pairs3(dst, b, cpl, i, carry); len(dst) >= MaxSolutions {
					return dst
				}
			}
		}
	}
	return dst
}

func (s *Solver) pairs3(dst []Solution, b, cpl, i, carry uint32) []Solution {
	const itemMask = 1<<itemBits - 1
	e := s.s1Data[b][i]
	value := uint32(e>>itemBits) + carry
	fcpl := invertFine(uint64(value % numFineBuckets))
	n := int(s.scratchCounts[fcpl])
	for k := 0; k < n; k++ {
		ci := uint32(s.scratch[fcpl][k])
		ce := s.s1Data[cpl][ci]
		sum := (value + uint32(ce>>itemBits)) / numFineBuckets // 15 bits
		if sum&stage1Mask != 0 {
			continue
		}
		var sol Solution
		s.buildStage2(sol[0:4], uint32(e&itemMask))
		s.buildStage2(sol[4:8], uint32(ce&itemMask))
		if treeIdx4(sol[0:4]) > treeIdx4(sol[4:8]) {
			sol[0], sol[1], sol[2], sol[3], sol[4], sol[5], sol[6], sol[7] =
				sol[4], sol[5], sol[6], sol[7], sol[0], sol[1], sol[2], sol[3]
		}
		dst = append(dst, sol)
		if len(dst) >= MaxSolutions {
			return dst
		}
	}
	return dst
}

func (s *Solver) buildStage2(out []uint16, root uint32) {
	const itemMask = 1<<itemBits - 1
	b := itemBucket(root)
	left := uint32(s.s2[b][itemLeft(root)] & itemMask)
	right := uint32(s.s2[invertBucket(b)][itemRight(root)] & itemMask)
	s.buildStage1(out[0:2], left)
	s.buildStage1(out[2:4], right)
	if treeIdx2(out[0:2]) > treeIdx2(out[2:4]) {
		out[0], out[1], out[2], out[3] = out[2], out[3], out[0], out[1]
	}
}

func (s *Solver) buildStage1(out []uint16, root uint32) {
	b := itemBucket(root)
	out[0] = s.s1Idx[b][itemLeft(root)]
	out[1] = s.s1Idx[invertBucket(b)][itemRight(root)]
	if out[0] > out[1] {
		out[0], out[1] = out[1], out[0]
	}
}
