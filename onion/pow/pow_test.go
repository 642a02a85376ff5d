package pow

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// C tor src/test/test_hs_pow.c test_hs_pow_vectors: encoding and verification
// of PoW-extended introductions. (Its replay vector is the caller's replay
// cache, not Verify's, so Verify accepts it again here.)
func TestCTorIntroVectors(t *testing.T) {
	vectors := []struct {
		claimedEffort uint32
		valid         bool
		seed, id      string
		nonce, sol    string
		encoded       string
	}{
		{1, false,
			"0000000000000000000000000000000000000000000000000000000000000000",
			"1111111111111111111111111111111111111111111111111111111111111111",
			"00000000000000000000000000000000", "00000000000000000000000000000000",
			"01" + "00000000000000000000000000000000" + "00000001" + "00000000" + "00000000000000000000000000000000"},
		{0, true,
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			"1111111111111111111111111111111111111111111111111111111111111111",
			"55555555555555555555555555555555", "4312f87ceab844c78e1c793a913812d7",
			"01" + "55555555555555555555555555555555" + "00000000" + "aaaaaaaa" + "4312f87ceab844c78e1c793a913812d7"},
		{1000000, true,
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			"1111111111111111111111111111111111111111111111111111111111111111",
			"59217255555555555555555555555555", "0f3db97b9cac20c1771680a1a34848d3",
			"01" + "59217255555555555555555555555555" + "000f4240" + "aaaaaaaa" + "0f3db97b9cac20c1771680a1a34848d3"},
		{99999, false,
			"86fb0acf4932cda44dbb451282f415479462dd10cb97ff5e7e8e2a53c3767a7f",
			"bfd298428562e530c52bdb36d81a0e293ef4a0e94d787f0f8c0c611f4f9e78ed",
			"2eff9fdbc34326d9d2f18ed277469c63", "400cb091139f86b352119f6e131802d6",
			"01" + "2eff9fdbc34326d9d2f18ed277469c63" + "0001869f" + "86fb0acf" + "400cb091139f86b352119f6e131802d6"},
		{100000, false,
			"86fb0acf4932cda44dbb451282f415479462dd10cb97ff5e7e8e2a53c3767a7f",
			"bfd298428562e530c52bdb36d81a0e293ef4a0e94d787f0f8c0c611f4f9e78ed",
			"2eff9fdbc34326d9a2f18ed277469c63", "400cb091139f86b352119f6e131802d6",
			"01" + "2eff9fdbc34326d9a2f18ed277469c63" + "000186a0" + "86fb0acf" + "400cb091139f86b352119f6e131802d6"},
		{100000, true,
			"86fb0acf4932cda44dbb451282f415479462dd10cb97ff5e7e8e2a53c3767a7f",
			"bfd298428562e530c52bdb36d81a0e293ef4a0e94d787f0f8c0c611f4f9e78ed",
			"2eff9fdbc34326d9d2f18ed277469c63", "400cb091139f86b352119f6e131802d6",
			"01" + "2eff9fdbc34326d9d2f18ed277469c63" + "000186a0" + "86fb0acf" + "400cb091139f86b352119f6e131802d6"},
	}
	var v Verifier
	for i, vec := range vectors {
		var seed [SeedLen]byte
		var id [IDLen]byte
		copy(seed[:], unhex(t, vec.seed))
		copy(id[:], unhex(t, vec.id))
		sol := Solution{Effort: vec.claimedEffort}
		copy(sol.Nonce[:], unhex(t, vec.nonce))
		copy(sol.Equix[:], unhex(t, vec.sol))
		copy(sol.SeedHead[:], seed[:])

		enc := sol.AppendExtension(nil)
		if hex.EncodeToString(enc) != vec.encoded {
			t.Errorf("vector %d: encoded %x want %s", i, enc, vec.encoded)
		}
		back, err := ParseExtension(enc)
		if err != nil || back != sol {
			t.Errorf("vector %d: parse back %+v, %v", i, back, err)
		}
		err = v.Verify(&id, &seed, &sol)
		if vec.valid && err != nil {
			t.Errorf("vector %d: %v", i, err)
		}
		if !vec.valid && err == nil {
			t.Errorf("vector %d: accepted", i)
		}
		if err2 := Verify(&id, &seed, &sol); (err2 == nil) != (err == nil) {
			t.Errorf("vector %d: Verify %v, Verifier.Verify %v", i, err2, err)
		}
	}
}

type slowVector struct {
	effort               uint32
	startNonce, seed, id string
	nonce, sol           string
	increments           int // nonces tried before the solution
}

// C tor src/test/test_hs_pow_slow.c test_hs_pow_vectors: solve from a given
// first nonce, then the verification variants of testing_one_hs_pow_solution.
var slowVectors = []slowVector{
	{0, "55555555555555555555555555555555", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "55555555555555555555555555555555", "4312f87ceab844c78e1c793a913812d7", 0},
	{1, "55555555555555555555555555555555", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "55555555555555555555555555555555", "84355542ab2b3f79532ef055144ac5ab", 0},
	{1, "55555555555555555555555555555555", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111110", "55555555555555555555555555555555", "115e4b70da858792fc205030b8c83af9", 0},
	{2, "55555555555555555555555555555555", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "55555555555555555555555555555555", "4600a93a535ed76dc746c99942ab7de2", 0},
	{10, "55555555555555555555555555555555", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "56555555555555555555555555555555", "128bbda5df2929c3be086de2aad34aed", 1},
	{10, "ffffffffffffffffffffffffffffffff", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "01000000000000000000000000000000", "203af985537fadb23f3ed5873b4c81ce", 2},
	{1337, "7fffffffffffffffffffffffffffffff", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "4111111111111111111111111111111111111111111111111111111111111111", "01000000000000000000000000000000", "31c377cb72796ed80ae77df6ac1d6bfd", 130},
	{31337, "34a20000000000000000000000000000", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "36a20000000000000000000000000000", "ca6899b91113aaf7536f28db42526bff", 2},
	{100, "55555555555555555555555555555555", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "56555555555555555555555555555555", "3a4122a240bd7abfc922ab3cbb9479ed", 1},
	{1000, "d3555555555555555555555555555555", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "d4555555555555555555555555555555", "338cc08f57697ce8ac2e4b453057d6e9", 1},
	{10000, "c5715555555555555555555555555555", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "c8715555555555555555555555555555", "9f2d3d4ed831ac96ad34c25fb59ff3e2", 3},
	{100000, "418d5655555555555555555555555555", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "428d5655555555555555555555555555", "9863f3acd2d15adfd244a7ca61d4c6ff", 1},
	{1000000, "58217255555555555555555555555555", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111111111111111111111111111111111111", "59217255555555555555555555555555", "0f3db97b9cac20c1771680a1a34848d3", 1},
	{1, "d0aec1669384bfe5ed39cd724d6c7954", "c52be1f8a5e6cc3b8fb71cfdbe272cbc91d4d035400f2f94fb0d0074794e0a07", "bfd298428562e530c52bdb36d81a0e293ef4a0e94d787f0f8c0c611f4f9e78ed", "d1aec1669384bfe5ed39cd724d6c7954", "462606e5f8c2f3f844127b8bfdd6b4ff", 1},
	{1, "b4d0e611e6935750fcf9406aae131f62", "86fb0acf4932cda44dbb451282f415479462dd10cb97ff5e7e8e2a53c3767a7f", "bfd298428562e530c52bdb36d81a0e293ef4a0e94d787f0f8c0c611f4f9e78ed", "b4d0e611e6935750fcf9406aae131f62", "9f3fbd50b1a83fb63284bde44318c0fd", 0},
	{1, "b4d0e611e6935750fcf9406aae131f62", "9dfbd06d86fed8e12de3ab214e1a63ea61f46253fe08346a20378da70c4a327d", "bec632eb76123956f99a06d394fcbee8f135b8ed01f2e90aabe404cb0346744a", "b4d0e611e6935750fcf9406aae131f62", "161baa7490356292d020065fdbe55ffc", 0},
	{1, "40559fdbc34326d9d2f18ed277469c63", "86fb0acf4932cda44dbb451282f415479462dd10cb97ff5e7e8e2a53c3767a7f", "bfd298428562e530c52bdb36d81a0e293ef4a0e94d787f0f8c0c611f4f9e78ed", "40559fdbc34326d9d2f18ed277469c63", "fa649c6a2c5c0bb6a3511b9ea4b448d1", 0},
	{10000, "34569fdbc34326d9d2f18ed277469c63", "86fb0acf4932cda44dbb451282f415479462dd10cb97ff5e7e8e2a53c3767a7f", "bfd298428562e530c52bdb36d81a0e293ef4a0e94d787f0f8c0c611f4f9e78ed", "36569fdbc34326d9d2f18ed277469c63", "2802951e623c74adc443ab93e99633ee", 2},
	{100000, "2cff9fdbc34326d9d2f18ed277469c63", "86fb0acf4932cda44dbb451282f415479462dd10cb97ff5e7e8e2a53c3767a7f", "bfd298428562e530c52bdb36d81a0e293ef4a0e94d787f0f8c0c611f4f9e78ed", "2eff9fdbc34326d9d2f18ed277469c63", "400cb091139f86b352119f6e131802d6", 2},
	{1000000, "5243b3dbc34326d9d2f18ed277469c63", "86fb0acf4932cda44dbb451282f415479462dd10cb97ff5e7e8e2a53c3767a7f", "bfd298428562e530c52bdb36d81a0e293ef4a0e94d787f0f8c0c611f4f9e78ed", "5543b3dbc34326d9d2f18ed277469c63", "b47c718b56315e9697173a6bac1feaa4", 3},
}

func (vec *slowVector) parse(t testing.TB) (Input, [NonceLen]byte, Solution) {
	var in Input
	in.Effort = vec.effort
	copy(in.Seed[:], unhex(t, vec.seed))
	copy(in.BlindedID[:], unhex(t, vec.id))
	var start [NonceLen]byte
	copy(start[:], unhex(t, vec.startNonce))
	want := Solution{Effort: vec.effort}
	copy(want.Nonce[:], unhex(t, vec.nonce))
	copy(want.Equix[:], unhex(t, vec.sol))
	copy(want.SeedHead[:], in.Seed[:])
	return in, start, want
}

// Verification side of the slow vectors, with the corruption variants.
func TestCTorSolutionVectorsVerify(t *testing.T) {
	var v Verifier
	for i := range slowVectors {
		in, _, want := slowVectors[i].parse(t)
		if err := v.Verify(&in.BlindedID, &in.Seed, &want); err != nil {
			t.Errorf("vector %d: %v", i, err)
		}
		for variant := 1; variant < 10; variant++ {
			bad := want
			if variant&1 == 1 {
				bad.Nonce[variant/2%NonceLen]++
			} else {
				bad.Equix[variant/2%SolutionLen]++
			}
			if err := v.Verify(&in.BlindedID, &in.Seed, &bad); err == nil {
				t.Errorf("vector %d variant %d: corrupted solution accepted", i, variant)
			}
		}
		other := in.Seed
		other[0] ^= 1
		if err := v.Verify(&in.BlindedID, &other, &want); !errors.Is(err, ErrSeedHead) {
			t.Errorf("vector %d: other seed: %v", i, err)
		}
	}
}

// Solving side: from the vector's first nonce the Solver finds C tor's nonce
// and solution. In -short mode only vectors needing at most one extra nonce.
func TestCTorSolutionVectorsSolve(t *testing.T) {
	s := NewSolver()
	for i := range slowVectors {
		vec := &slowVectors[i]
		if testing.Short() && vec.increments > 1 {
			continue
		}
		in, start, want := vec.parse(t)
		got, err := s.Solve(context.Background(), in, start)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if got != want {
			t.Errorf("vector %d (effort %d): got nonce %x sol %x, want nonce %x sol %x",
				i, vec.effort, got.Nonce, got.Equix, want.Nonce, want.Equix)
		}
	}
}

func TestSolveCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var in Input
	in.Effort = 1 << 31 // effectively unsolvable
	start := time.Now()
	_, err := Solve(ctx, in)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
}

func TestSolveRandomNonce(t *testing.T) {
	var in Input
	in.Effort = 4
	copy(in.Seed[:], "seed seed seed seed seed seed se")
	copy(in.BlindedID[:], "id id id id id id id id id id id")
	sol, err := Solve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(&in.BlindedID, &in.Seed, &sol); err != nil {
		t.Fatalf("own solution: %v", err)
	}
	if sol.Effort != 4 || !bytes.Equal(sol.SeedHead[:], in.Seed[:4]) {
		t.Errorf("solution fields: %+v", sol)
	}
}

func TestIncrementNonce(t *testing.T) {
	n := [NonceLen]byte{0xff, 0xff, 0x01}
	incrementNonce(&n)
	if n != ([NonceLen]byte{0, 0, 0x02}) {
		t.Errorf("got %x", n)
	}
	var all [NonceLen]byte
	for i := range all {
		all[i] = 0xff
	}
	incrementNonce(&all)
	if all != ([NonceLen]byte{}) {
		t.Errorf("wrap: got %x", all)
	}
}

func TestParseExtensionErrors(t *testing.T) {
	good := (&Solution{Effort: 7}).AppendExtension(nil)
	if len(good) != ExtensionLen {
		t.Fatalf("length %d", len(good))
	}
	for _, b := range [][]byte{nil, {2}, good[:ExtensionLen-1], append([]byte{0}, good[1:]...)} {
		if _, err := ParseExtension(b); !errors.Is(err, ErrExtension) {
			t.Errorf("%x: %v", b, err)
		}
	}
	long := append(append([]byte{}, good...), 0xee)
	if s, err := ParseExtension(long); err != nil || s.Effort != 7 {
		t.Errorf("trailing byte: %+v %v", s, err)
	}
}

func FuzzParseExtension(f *testing.F) {
	f.Add((&Solution{Effort: 1}).AppendExtension(nil))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseExtension(b)
		if err != nil {
			return
		}
		if got := s.AppendExtension(nil); !bytes.Equal(got, b[:ExtensionLen]) {
			t.Fatalf("round trip %x -> %x", b, got)
		}
		var id [IDLen]byte
		var seed [SeedLen]byte
		copy(seed[:], s.SeedHead[:])
		_ = Verify(&id, &seed, &s) // must not panic
	})
}

func BenchmarkSolveEffort1(b *testing.B) {
	s := NewSolver()
	var in Input
	in.Effort = 1
	var nonce [NonceLen]byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		nonce[0], nonce[1] = byte(i), byte(i>>8)
		if _, err := s.Solve(context.Background(), in, nonce); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	var v Verifier
	in, _, sol := slowVectors[12].parse(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := v.Verify(&in.BlindedID, &in.Seed, &sol); err != nil {
			b.Fatal(err)
		}
	}
}
