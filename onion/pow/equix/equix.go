// Package equix is Equi-X, tevador's asymmetric client puzzle built on HashX
// (the one C tor vendors in src/ext/equix and uses for the onion-service
// proof of work of proposal 327).
//
// A challenge selects a HashX function H. A solution is eight 16-bit indices
// whose hashes (the first 8 bytes of H, little-endian) sum to 0 mod 2^60,
// where each pair sums to 0 mod 2^15 and each group of four to 0 mod 2^30,
// and whose indices are in the canonical tree order. The Solver finds all the
// solutions (at most MaxSolutions) of a challenge in the reference solver's
// order, so its output is identical to C tor's.
package equix

import (
	"errors"

	"tinytor/onion/pow/hashx"
	"tinytor/tor/errfmt"
)

// NumIndices is the number of indices in a solution.
const NumIndices = 8

// MaxSolutions is the largest number of solutions Solve returns for one
// challenge (EQUIX_MAX_SOLS); a challenge has two on average.
const MaxSolutions = 8

// SolutionSize is the size of an encoded solution.
const SolutionSize = 2 * NumIndices

// Masks of the partial sums that must be zero at each level of the tree.
const (
	stage1Mask = 1<<15 - 1
	stage2Mask = 1<<30 - 1
	fullMask   = 1<<60 - 1
)

// Errors of Verify and Solve, as the reference's equix_result values.
var (
	// ErrChallenge means the challenge gives no HashX function (hashx.ErrSeed);
	// the caller should change the nonce.
	ErrChallenge = errors.New("equix: challenge gives no hash function")
	// ErrOrder means the indices are not in the canonical order.
	ErrOrder = errors.New("equix: indices not in the required order")
	// ErrPartialSum means a pair or quad of hashes lacks the trailing zeroes.
	ErrPartialSum = errors.New("equix: partial sum lacks the required zero bits")
	// ErrFinalSum means the eight hashes do not sum to zero mod 2^60.
	ErrFinalSum = errors.New("equix: hashes do not sum to zero")
)

// Solution is an Equi-X solution: eight indices.
type Solution [NumIndices]uint16

// Bytes returns the solution in its wire form: each index little-endian, as
// C tor's pack_equix_solution.
func (s Solution) Bytes() [SolutionSize]byte {
	var b [SolutionSize]byte
	for i, v := range s {
		b[2*i] = byte(v)
		b[2*i+1] = byte(v >> 8)
	}
	return b
}

// SolutionFromBytes decodes the wire form of a solution.
func SolutionFromBytes(b [SolutionSize]byte) Solution {
	var s Solution
	for i := range s {
		s[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return s
}

// treeIdx2 and treeIdx4 combine a subtree's indices with the last index most
// significant, as the reference's tree_idx2/tree_idx4 (endian-independent).
func treeIdx2(idx []uint16) uint32 {
	return uint32(idx[1])<<16 | uint32(idx[0])
}

func treeIdx4(idx []uint16) uint64 {
	return uint64(idx[3])<<48 | uint64(idx[2])<<32 | uint64(idx[1])<<16 | uint64(idx[0])
}

// orderOK reports whether the indices are in the canonical tree order. Like
// the reference, equal subtrees are allowed.
func orderOK(s *Solution) bool {
	return treeIdx4(s[0:4]) <= treeIdx4(s[4:8]) &&
		treeIdx2(s[0:2]) <= treeIdx2(s[2:4]) &&
		treeIdx2(s[4:6]) <= treeIdx2(s[6:8]) &&
		s[0] <= s[1] && s[2] <= s[3] && s[4] <= s[5] && s[6] <= s[7]
}

// Verify checks a solution of challenge (equix_verify): ErrOrder,
// ErrChallenge, ErrPartialSum or ErrFinalSum, nil when it is valid. Most of
// its cost (about 75 µs on amd64) is generating the challenge's HashX
// program; a Verifier avoids only the HashX context's allocation.
func Verify(challenge []byte, s Solution) error {
	var v Verifier
	return v.Verify(challenge, s)
}

// Verifier verifies solutions with a reusable HashX context; its zero value
// is ready. A Verifier is not safe for concurrent use.
type Verifier struct {
	h hashx.HashX
}

// Verify is the package's Verify on v's HashX context; it does not allocate.
func (v *Verifier) Verify(challenge []byte, s Solution) error {
	if !orderOK(&s) {
		return ErrOrder
	}
	if err := v.h.Make(challenge); err != nil {
		if errors.Is(err, hashx.ErrSeed) {
			return ErrChallenge
		}
		return errfmt.Errorf("equix: verify: %w", err)
	}
	return verifySums(&v.h, &s)
}

func verifySums(h *hashx.HashX, s *Solution) error {
	pair := func(a, b uint16) uint64 { return h.Hash64(uint64(a)) + h.Hash64(uint64(b)) }
	p0 := pair(s[0], s[1])
	if p0&stage1Mask != 0 {
		return ErrPartialSum
	}
	p1 := pair(s[2], s[3])
	if p1&stage1Mask != 0 {
		return ErrPartialSum
	}
	p4 := p0 + p1
	if p4&stage2Mask != 0 {
		return ErrPartialSum
	}
	p2 := pair(s[4], s[5])
	if p2&stage1Mask != 0 {
		return ErrPartialSum
	}
	p3 := pair(s[6], s[7])
	if p3&stage1Mask != 0 {
		return ErrPartialSum
	}
	p5 := p2 + p3
	if p5&stage2Mask != 0 {
		return ErrPartialSum
	}
	if (p4+p5)&fullMask != 0 {
		return ErrFinalSum
	}
	return nil
}
