package hashx

import (
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/blake2b"
)

func mustNew(t *testing.T, seed string) *HashX {
	t.Helper()
	h, err := New([]byte(seed))
	if err != nil {
		t.Fatalf("New(%q): %v", seed, err)
	}
	return h
}

// tevador's tests.c (also C tor's src/ext/equix/hashx/src/tests.c): the C
// seeds are sizeof(char[]), so they include the terminating NUL.
func TestReferenceVectors(t *testing.T) {
	cases := []struct {
		seed  string
		input uint64
		want  string
	}{
		{"This is a test\x00", 123456, "aebdd50aa67c93afb82a4c534603b65e46decd584c55161c526ebc099415ccf1"},
		{"This is a test\x00", 0, "2b2f54567dcbea98fdb5d5e5ce9a65983c4a4e35ab1464b1efb61e83b7074bb2"},
		{"Lorem ipsum dolor sit amet\x00", 123456, "ab3d155bf4bbb0aa3a71b7801089826186e44300e6932e6ffd287cf302bbb0ba"},
		{"Lorem ipsum dolor sit amet\x00", 987654321123456789, "8dfef0497c323274a60d1d93292b68d9a0496379ba407b4341cf868a14d30113"},
	}
	for _, c := range cases {
		h := mustNew(t, c.seed)
		got := h.Hash(c.input)
		if hex.EncodeToString(got[:]) != c.want {
			t.Errorf("seed %q input %d: got %x want %s", c.seed, c.input, got, c.want)
		}
		want64, _ := hex.DecodeString(c.want[:16])
		var w uint64
		for i := 7; i >= 0; i-- {
			w = w<<8 | uint64(want64[i])
		}
		if g := h.Hash64(c.input); g != w {
			t.Errorf("Hash64 seed %q input %d: got %#x want %#x", c.seed, c.input, g, w)
		}
	}
}

// C tor's tor-c-equix Rust wrapper tests (8-byte HASHX_SIZE, so prefixes).
func TestCTorVectors(t *testing.T) {
	h := mustNew(t, "ebrazua")
	got := h.Hash(0xebc19ba9cafb0863)
	if hex.EncodeToString(got[:8]) != "41cb0b4b24551d26" {
		t.Errorf("ebrazua: got %x", got[:8])
	}
}

func TestBadSeeds(t *testing.T) {
	cases := []struct {
		seed string
		ok   bool
	}{
		{"\xf8\x05\x00\x00", true},
		{"\xf9\x05\x00\x00", false},
		{"\x5d\x93\x02\x00", false},
		{"\x5e\x93\x02\x00", true},
		{"qfjsfv", false},
		{"llompmb", true},
		{"mhelht", false},
	}
	var h HashX
	for _, c := range cases {
		err := h.Make([]byte(c.seed))
		if c.ok && err != nil {
			t.Errorf("seed %x: unexpected %v", c.seed, err)
		}
		if !c.ok && !errors.Is(err, ErrSeed) {
			t.Errorf("seed %x: got %v, want ErrSeed", c.seed, err)
		}
	}
}

func TestUnpreparedPanics(t *testing.T) {
	var h HashX
	if err := h.Make([]byte("mhelht")); !errors.Is(err, ErrSeed) {
		t.Fatalf("Make: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Hash on a rejected seed did not panic")
		}
	}()
	h.Hash(1)
}

// The tor-c-equix rng_callback_read test: the stream is observed unchanged.
func TestRNGStreamRead(t *testing.T) {
	var seq []uint64
	h := &HashX{rngHook: func(v uint64) uint64 { seq = append(seq, v); return v }}
	if err := h.Make([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	got := h.Hash(12345)
	if hex.EncodeToString(got[:8]) != "c0bc95da7cc30f37" {
		t.Errorf("hash: got %x", got[:8])
	}
	if len(seq) != 563 {
		t.Errorf("stream length: got %d want 563", len(seq))
	}
	want := []uint64{0xf695edd02205449d, 0x51c1ac51cd19a7d1, 0xadf4cb303b9814cf, 0x79793a52d965083d}
	for i, w := range want {
		if i < len(seq) && seq[i] != w {
			t.Errorf("stream[%d]: got %#x want %#x", i, seq[i], w)
		}
	}
}

// The tor-c-equix rng_callback_replace test: a constant stream.
func TestRNGStreamReplace(t *testing.T) {
	n := 0
	h := &HashX{rngHook: func(uint64) uint64 { n++; return 0x0807060504030201 }}
	if err := h.Make([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	got := h.Hash(12345)
	if hex.EncodeToString(got[:8]) != "825a9b6dd5d074af" {
		t.Errorf("hash: got %x", got[:8])
	}
	if n != 575 {
		t.Errorf("stream length: got %d want 575", n)
	}
}

func TestBlake2bMatchesXCrypto(t *testing.T) {
	var zero [16]byte
	for _, n := range []int{0, 1, 63, 64, 127, 128, 129, 255, 256, 257, 1000} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + n)
		}
		got := blake2b512Salted(data, &zero)
		want := blake2b.Sum512(data)
		if got != want {
			t.Errorf("len %d: got %x want %x", n, got, want)
		}
	}
}

func TestMakeDoesNotAllocate(t *testing.T) {
	var h HashX
	seed := []byte("This is a test\x00")
	allocs := testing.AllocsPerRun(10, func() {
		if err := h.Make(seed); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Make allocates %v times", allocs)
	}
}

func BenchmarkMake(b *testing.B) {
	var h HashX
	seed := []byte("This is a test\x00")
	for i := 0; i < b.N; i++ {
		seed[0] = byte(i)
		_ = h.Make(seed)
	}
}

func BenchmarkHash(b *testing.B) {
	h, err := New([]byte("This is a test\x00"))
	if err != nil {
		b.Fatal(err)
	}
	var sink uint64
	for i := 0; i < b.N; i++ {
		sink += h.Hash64(uint64(i))
	}
	_ = sink
}

// The batch interpreter must agree with the scalar one, branches included.
func TestBatchMatchesScalar(t *testing.T) {
	var h HashX
	seed := []byte("batch seed 0000")
	out := make([]uint64, 300)
	checked := 0
	for s := 0; s < 40; s++ {
		seed[len(seed)-1] = byte(s)
		seed[len(seed)-2] = byte(s >> 8)
		if err := h.Make(seed); err != nil {
			continue
		}
		first := uint64(s) * 1000003
		h.Hash64Batch(first, out)
		for i, got := range out {
			if want := h.Hash64(first + uint64(i)); got != want {
				t.Fatalf("seed %d input %d: batch %#x scalar %#x", s, first+uint64(i), got, want)
			}
		}
		checked++
	}
	if checked < 30 {
		t.Fatalf("only %d seeds accepted", checked)
	}
}

func BenchmarkHashBatch(b *testing.B) {
	h, err := New([]byte("This is a test\x00"))
	if err != nil {
		b.Fatal(err)
	}
	out := make([]uint64, 1024)
	b.SetBytes(0)
	for i := 0; i < b.N; i += len(out) {
		h.Hash64Batch(uint64(i), out)
	}
}

// Any seed either gives a function whose batch and scalar interpreters agree
// or ErrSeed; nothing panics.
func FuzzMake(f *testing.F) {
	f.Add([]byte("This is a test\x00"), uint64(0))
	f.Add([]byte("qfjsfv"), uint64(1))
	f.Add([]byte{}, uint64(1<<63))
	var h HashX
	out := make([]uint64, 70)
	f.Fuzz(func(t *testing.T, seed []byte, first uint64) {
		if err := h.Make(seed); err != nil {
			if !errors.Is(err, ErrSeed) {
				t.Fatalf("Make: %v", err)
			}
			return
		}
		h.Hash64Batch(first, out)
		for i, got := range out {
			if want := h.Hash64(first + uint64(i)); got != want {
				t.Fatalf("input %d: batch %#x scalar %#x", first+uint64(i), got, want)
			}
		}
	})
}

// tor-c-equix rng_large_compiler_output: a crafted 558-word random stream
// (testdata/rng_large_program.txt, from C tor's src/ext/equix/src/lib.rs)
// that makes an especially large program out of a seed that normally fails.
func TestRNGLargeProgram(t *testing.T) {
	data, err := os.ReadFile("testdata/rng_large_program.txt")
	if err != nil {
		t.Fatal(err)
	}
	var seq []uint64
	for _, f := range strings.Fields(string(data)) {
		v, err := strconv.ParseUint(strings.TrimPrefix(f, "0x"), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		seq = append(seq, v)
	}
	if len(seq) != 558 {
		t.Fatalf("%d words", len(seq))
	}
	n := 0
	h := &HashX{rngHook: func(uint64) uint64 {
		if n >= len(seq) {
			t.Fatalf("stream read past its %d words", len(seq))
		}
		v := seq[n]
		n++
		return v
	}}
	if err := h.Make([]byte("qfjsfv")); err != nil {
		t.Fatal(err)
	}
	if n != len(seq) {
		t.Errorf("read %d words, want %d", n, len(seq))
	}
	for _, c := range []struct {
		in   uint64
		want string
	}{{0, "7d7442b95fc9ea3d"}, {123, "1519ee923bf1e699"}, {12345, "726c4073ff1bb595"}} {
		got := h.Hash(c.in)
		if hex.EncodeToString(got[:8]) != c.want {
			t.Errorf("input %d: got %x want %s", c.in, got[:8], c.want)
		}
	}
}
