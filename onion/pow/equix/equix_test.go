package equix

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
)

// tor-c-equix (C tor's Rust wrapper of src/ext/equix) equix_solve_only.
func TestSolveVector(t *testing.T) {
	s := NewSolver()
	sols, err := s.Solve([]byte("01234567890123456789"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Solution{
		{0x4803, 0x6775, 0xc5c9, 0xd1b0, 0x1bc3, 0xe4f6, 0x4027, 0xf5ad},
		{0x5a8a, 0x9542, 0xef99, 0xf0b9, 0x4905, 0x4e29, 0x2da5, 0xfbd5},
		{0x4c79, 0xc935, 0x2bcb, 0xcd0f, 0x0362, 0x9fa9, 0xa62e, 0xf83a},
		{0x5878, 0x6edf, 0x1e00, 0xf5e3, 0x43de, 0x9212, 0xd01e, 0xfd11},
		{0x0b69, 0x2d17, 0x01be, 0x6cb4, 0x0fba, 0x4a9e, 0x8d75, 0xa50f},
	}
	if len(sols) != len(want) {
		t.Fatalf("got %d solutions %x, want %d", len(sols), sols, len(want))
	}
	for i := range want {
		if sols[i] != want[i] {
			t.Errorf("solution %d: got %04x want %04x", i, sols[i], want[i])
		}
		if err := Verify([]byte("01234567890123456789"), sols[i]); err != nil {
			t.Errorf("solution %d does not verify: %v", i, err)
		}
	}
}

// tor-c-equix equix_verify_only.
func TestVerifyVectors(t *testing.T) {
	cases := []struct {
		sol  Solution
		want error
	}{
		{Solution{0x2227, 0xa173, 0x365a, 0xb47d, 0x1bb2, 0xa077, 0x0d5e, 0xf25f}, nil},
		{Solution{0x1bb2, 0xa077, 0x0d5e, 0xf25f, 0x2220, 0xa173, 0x365a, 0xb47d}, ErrOrder},
		{Solution{0x2220, 0xa173, 0x365a, 0xb47d, 0x1bb2, 0xa077, 0x0d5e, 0xf25f}, ErrPartialSum},
	}
	var v Verifier
	for _, c := range cases {
		if err := v.Verify([]byte("a"), c.sol); !errors.Is(err, c.want) {
			t.Errorf("%04x: got %v want %v", c.sol, err, c.want)
		}
		if err := Verify([]byte("a"), c.sol); !errors.Is(err, c.want) {
			t.Errorf("Verify %04x: got %v want %v", c.sol, err, c.want)
		}
	}
}

// The reference's tests.c: the first nonce (a 4-byte little-endian int) with
// solutions; order and partial-sum rejections; exactly one of the 8!
// permutations of a solution's indices is valid.
func TestReferenceSuite(t *testing.T) {
	s := NewSolver()
	var sols []Solution
	var ch [4]byte
	nonce := 0
	for ; nonce < 20; nonce++ {
		binary.LittleEndian.PutUint32(ch[:], uint32(nonce))
		var err error
		sols, err = s.Solve(ch[:], sols)
		if err != nil {
			t.Fatalf("nonce %d: %v", nonce, err)
		}
		if len(sols) > 0 {
			break
		}
	}
	if len(sols) == 0 {
		t.Fatal("no solutions for nonces 0..19")
	}
	sol := sols[0]
	if err := s.Verify(ch[:], sol); err != nil {
		t.Fatalf("verify: %v", err)
	}
	bad := sol
	bad[0], bad[1] = bad[1], bad[0]
	if err := s.Verify(ch[:], bad); !errors.Is(err, ErrOrder) {
		t.Errorf("swapped 0,1: %v", err)
	}
	bad = sol
	copy(bad[0:4], sol[4:8])
	copy(bad[4:8], sol[0:4])
	if err := s.Verify(ch[:], bad); !errors.Is(err, ErrOrder) {
		t.Errorf("swapped halves: %v", err)
	}
	valid := 0
	var permute func(k int)
	p := sol
	permute = func(k int) {
		if k == NumIndices-1 {
			if s.Verify(ch[:], p) == nil {
				valid++
			}
			return
		}
		for i := k; i < NumIndices; i++ {
			p[k], p[i] = p[i], p[k]
			permute(k + 1)
			p[k], p[i] = p[i], p[k]
		}
	}
	if testing.Short() {
		return
	}
	permute(0)
	if valid != 1 {
		t.Errorf("%d of the permutations verify, want 1", valid)
	}
}

func TestSolutionBytes(t *testing.T) {
	s := Solution{0x0102, 0x0304, 0x0506, 0x0708, 0x090a, 0x0b0c, 0x0d0e, 0x0f10}
	b := s.Bytes()
	if b[0] != 0x02 || b[1] != 0x01 || b[15] != 0x0f {
		t.Errorf("Bytes: %x", b)
	}
	if SolutionFromBytes(b) != s {
		t.Errorf("round trip: %x", SolutionFromBytes(b))
	}
}

// Every solution the solver finds verifies, over many challenges, and the
// average count is near the expected 2.
func TestSolveVerifyMany(t *testing.T) {
	n := 40
	if testing.Short() {
		n = 8
	}
	s := NewSolver()
	var sols []Solution
	total, rejected := 0, 0
	var ch [8]byte
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(ch[:], uint64(i)*0x9e3779b97f4a7c15)
		var err error
		sols, err = s.Solve(ch[:], sols)
		if errors.Is(err, ErrChallenge) {
			rejected++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, sol := range sols {
			if err := Verify(ch[:], sol); err != nil {
				t.Fatalf("challenge %x solution %04x: %v", ch, sol, err)
			}
		}
		total += len(sols)
	}
	if avg := float64(total) / float64(n-rejected); avg < 1 || avg > 3 {
		t.Errorf("average %.2f solutions per challenge", avg)
	}
}

func TestSolveDoesNotAllocate(t *testing.T) {
	s := NewSolver()
	dst := make([]Solution, 0, MaxSolutions)
	ch := []byte("01234567890123456789")
	allocs := testing.AllocsPerRun(2, func() {
		if _, err := s.Solve(ch, dst); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Solve allocates %v times", allocs)
	}
	var v Verifier
	sol := Solution{0x2227, 0xa173, 0x365a, 0xb47d, 0x1bb2, 0xa077, 0x0d5e, 0xf25f}
	allocs = testing.AllocsPerRun(5, func() { _ = v.Verify([]byte("a"), sol) })
	if allocs != 0 {
		t.Errorf("Verifier.Verify allocates %v times", allocs)
	}
}

func TestChallengeRejected(t *testing.T) {
	s := NewSolver()
	if _, err := s.Solve([]byte("qfjsfv"), nil); !errors.Is(err, ErrChallenge) {
		t.Errorf("Solve: %v", err)
	}
	sol := Solution{1, 2, 3, 4, 5, 6, 7, 8}
	if err := Verify([]byte("qfjsfv"), sol); !errors.Is(err, ErrChallenge) {
		t.Errorf("Verify: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte("a"), []byte{0x27, 0x22, 0x73, 0xa1, 0x5a, 0x36, 0x7d, 0xb4, 0xb2, 0x1b, 0x77, 0xa0, 0x5e, 0x0d, 0x5f, 0xf2})
	f.Add([]byte("qfjsfv"), make([]byte, 16))
	f.Add([]byte{}, []byte{1, 2, 3})
	var v Verifier
	f.Fuzz(func(t *testing.T, challenge, sol []byte) {
		var b [SolutionSize]byte
		copy(b[:], sol)
		s := SolutionFromBytes(b)
		err := v.Verify(challenge, s)
		if err == nil && !orderOK(&s) {
			t.Fatalf("accepted out-of-order %04x", s)
		}
		if s.Bytes() != b {
			t.Fatalf("round trip %x", b)
		}
	})
}

func BenchmarkSolve(b *testing.B) {
	s := NewSolver()
	dst := make([]Solution, 0, MaxSolutions)
	var ch [8]byte
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(ch[:], uint64(i))
		dst, _ = s.Solve(ch[:], dst)
	}
}

func BenchmarkVerify(b *testing.B) {
	var v Verifier
	sol := Solution{0x2227, 0xa173, 0x365a, 0xb47d, 0x1bb2, 0xa077, 0x0d5e, 0xf25f}
	b.ReportAllocs()
	defer reportCPU(b, cpuTime())
	for i := 0; i < b.N; i++ {
		if err := v.Verify([]byte("a"), sol); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSolveContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := NewSolver()
	if _, err := s.SolveContext(ctx, []byte("01234567890123456789"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	// The solver is still usable afterwards.
	sols, err := s.Solve([]byte("01234567890123456789"), nil)
	if err != nil || len(sols) != 5 {
		t.Errorf("after cancel: %d solutions, %v", len(sols), err)
	}
}
