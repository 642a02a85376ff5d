// Package pow is the onion-service proof of work "v1" of proposal 327 as C
// tor implements it (src/feature/hs/hs_pow.c): an Equi-X puzzle over the
// challenge P || ID || C || N || E whose solution S also satisfies
// R * E <= 2^32-1 with R = ntohl(blake2b_32(challenge || S)).
//
// It holds the pure parts: building the challenge, solving (a reusable,
// cancellable Solver), verifying, and the INTRODUCE1 PoW extension's
// encoding. Seed rotation, the replay cache and effort policy belong to the
// callers.
package pow

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"golang.org/x/crypto/blake2b"

	"tinytor/onion/pow/equix"
	"tinytor/tor/errfmt"
)

// Sizes of the v1 scheme (hs_pow.h).
const (
	NonceLen     = 16
	SeedLen      = 32
	SeedHeadLen  = 4
	IDLen        = 32
	SolutionLen  = equix.SolutionSize
	ChallengeLen = len(personalization) + IDLen + SeedLen + NonceLen + 4
	// nonceOffset is where the nonce sits in the challenge.
	nonceOffset = len(personalization) + IDLen + SeedLen
)

// Extension constants for INTRODUCE1's encrypted part (proposal 327).
const (
	// ExtensionType is the EXT_FIELD_TYPE of the PoW extension.
	ExtensionType = 0x02
	// Version1 is POW_VERSION for this scheme.
	Version1 = 1
	// ExtensionLen is the length of a v1 extension body.
	ExtensionLen = 1 + NonceLen + 4 + SeedHeadLen + SolutionLen
)

// personalization is the string P that starts every challenge.
const personalization = "Tor hs intro v1\x00"

// Errors of Verify and ParseExtension.
var (
	// ErrEffort means R * E exceeds 2^32-1 for the claimed effort.
	ErrEffort = errors.New("pow: solution does not meet the claimed effort")
	// ErrSeedHead means the solution's seed head is not the seed's.
	ErrSeedHead = errors.New("pow: solution is for another seed")
	// ErrExtension means a PoW extension body is malformed.
	ErrExtension = errors.New("pow: malformed proof-of-work extension")
)

// Input is what a client needs to solve for a service: the service's blinded
// public key for the current descriptor, the seed from the descriptor's
// pow-params, and the effort to solve at.
type Input struct {
	BlindedID [IDLen]byte
	Seed      [SeedLen]byte
	Effort    uint32
}

// Solution is a solved puzzle as carried in INTRODUCE1.
type Solution struct {
	Nonce    [NonceLen]byte
	Effort   uint32
	SeedHead [SeedHeadLen]byte
	Equix    [SolutionLen]byte // equix.Solution.Bytes()
}

// Challenge returns P || ID || C || N || INT_32(E) (build_equix_challenge).
func Challenge(id *[IDLen]byte, seed *[SeedLen]byte, nonce *[NonceLen]byte, effort uint32) [ChallengeLen]byte {
	var c [ChallengeLen]byte
	n := copy(c[:], personalization)
	n += copy(c[n:], id[:])
	n += copy(c[n:], seed[:])
	n += copy(c[n:], nonce[:])
	binary.BigEndian.PutUint32(c[n:], effort)
	return c
}

// EffortOK reports whether R * effort <= 2^32-1, where R is the big-endian
// 32-bit BLAKE2b-32 of challenge || solution (validate_equix_challenge).
// Effort 0 accepts every solution.
func EffortOK(challenge *[ChallengeLen]byte, sol *[SolutionLen]byte, effort uint32) bool {
	h, err := blake2b.New(4, nil)
	if err != nil {
		panic(fmt.Sprintf("pow: blake2b-32: %v", err)) // size 4 without key cannot fail
	}
	h.Write(challenge[:])
	h.Write(sol[:])
	var sum [4]byte
	r := binary.BigEndian.Uint32(h.Sum(sum[:0]))
	return uint64(r)*uint64(effort) <= math.MaxUint32
}

// incrementNonce adds one to the nonce read as a little-endian number
// (C tor's increment_and_set_nonce).
func incrementNonce(n *[NonceLen]byte) {
	for i := range n {
		n[i]++
		if n[i] != 0 {
			return
		}
	}
}

// Solver solves v1 puzzles, reusing the Equi-X solver's memory (about
// 1.5 MB) across nonces and calls. It is not safe for concurrent use.
type Solver struct {
	eq   *equix.Solver
	sols []equix.Solution
}

// NewSolver allocates a Solver.
func NewSolver() *Solver {
	return &Solver{eq: equix.NewSolver(), sols: make([]equix.Solution, 0, equix.MaxSolutions)}
}

// Solve searches nonces from start (incremented as C tor does) for an
// Equi-X solution meeting in.Effort, and returns the first one in C tor's
// order. It returns ctx's error when ctx ends. The expected number of
// nonces is about max(1, Effort/2): each nonce has two solutions on
// average, and each passes with probability 1/Effort.
func (s *Solver) Solve(ctx context.Context, in Input, start [NonceLen]byte) (Solution, error) {
	nonce := start
	challenge := Challenge(&in.BlindedID, &in.Seed, &nonce, in.Effort)
	for {
		if err := ctx.Err(); err != nil {
			return Solution{}, errfmt.Errorf("pow: solve at effort %d: %w", in.Effort, err)
		}
		var err error
		s.sols, err = s.eq.SolveContext(ctx, challenge[:], s.sols)
		switch {
		case errors.Is(err, equix.ErrChallenge):
			// HashX rejected this challenge: same as no solutions.
		case err != nil:
			return Solution{}, errfmt.Errorf("pow: solve at effort %d: %w", in.Effort, err)
		}
		for _, sol := range s.sols {
			b := sol.Bytes()
			if EffortOK(&challenge, &b, in.Effort) {
				out := Solution{Nonce: nonce, Effort: in.Effort, Equix: b}
				copy(out.SeedHead[:], in.Seed[:SeedHeadLen])
				return out, nil
			}
		}
		incrementNonce(&nonce)
		copy(challenge[nonceOffset:], nonce[:])
	}
}

// Solve solves in from a random nonce with a new Solver (hs_pow_solve).
func Solve(ctx context.Context, in Input) (Solution, error) {
	var nonce [NonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return Solution{}, errfmt.Errorf("pow: nonce: %w", err)
	}
	return NewSolver().Solve(ctx, in, nonce)
}

// Verify checks sol against the service's blinded key and the seed whose
// head sol names (the caller picks the current or previous seed by
// sol.SeedHead and keeps the replay cache): ErrSeedHead, ErrEffort, or an
// equix error (equix.ErrOrder, ErrPartialSum, ErrFinalSum, ErrChallenge),
// nil when valid. It does the cheap effort check first, as C tor.
func Verify(id *[IDLen]byte, seed *[SeedLen]byte, sol *Solution) error {
	var v Verifier
	return v.Verify(id, seed, sol)
}

// Verifier is Verify with a reusable Equi-X context; its zero value is
// ready. It is not safe for concurrent use.
type Verifier struct {
	eq equix.Verifier
}

// Verify is the package's Verify.
func (v *Verifier) Verify(id *[IDLen]byte, seed *[SeedLen]byte, sol *Solution) error {
	if [SeedHeadLen]byte(seed[:SeedHeadLen]) != sol.SeedHead {
		return ErrSeedHead
	}
	challenge := Challenge(id, seed, &sol.Nonce, sol.Effort)
	if !EffortOK(&challenge, &sol.Equix, sol.Effort) {
		return ErrEffort
	}
	if err := v.eq.Verify(challenge[:], equix.SolutionFromBytes(sol.Equix)); err != nil {
		return errfmt.Errorf("pow: %w", err)
	}
	return nil
}

// AppendExtension appends the v1 extension body (POW_VERSION, POW_NONCE,
// POW_EFFORT big-endian, POW_SEED head, POW_SOLUTION) to b.
func (s *Solution) AppendExtension(b []byte) []byte {
	b = append(b, Version1)
	b = append(b, s.Nonce[:]...)
	b = binary.BigEndian.AppendUint32(b, s.Effort)
	b = append(b, s.SeedHead[:]...)
	return append(b, s.Equix[:]...)
}

// ParseExtension decodes a PoW extension body as C tor's trunnel parser
// (trn_cell_extension_pow): the version must be 1, the body at least
// ExtensionLen bytes, and bytes after those are ignored.
func ParseExtension(b []byte) (Solution, error) {
	var s Solution
	if len(b) < 1 {
		return s, errfmt.Errorf("%w: empty", ErrExtension)
	}
	if b[0] != Version1 {
		return s, errfmt.Errorf("%w: version %d", ErrExtension, b[0])
	}
	if len(b) < ExtensionLen {
		return s, errfmt.Errorf("%w: %d bytes, want %d", ErrExtension, len(b), ExtensionLen)
	}
	b = b[1:]
	copy(s.Nonce[:], b)
	b = b[NonceLen:]
	s.Effort = binary.BigEndian.Uint32(b)
	b = b[4:]
	copy(s.SeedHead[:], b)
	b = b[SeedHeadLen:]
	copy(s.Equix[:], b)
	return s, nil
}
