package state

import (
	"bytes"
	"strings"
	"testing"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, p := range []string{"", "\n", "a", "hello\nworld\n", strings.Repeat("x", 5000),
		"payload\n#tinytor-state v1 len=3 sha256=00\n"} {
		got, err := decode(encode([]byte(p)))
		if err != nil {
			t.Fatalf("decode(encode(%q)): %v", p, err)
		}
		if string(got) != p {
			t.Fatalf("round trip: got %q want %q", got, p)
		}
	}
}

func TestDecodeRejectsEveryTruncationAndFlip(t *testing.T) {
	file := encode([]byte("guard sampled_on=2026-11-01\nline two\n"))
	for i := 0; i < len(file); i++ {
		if _, err := decode(file[:i]); err == nil {
			t.Fatalf("truncation to %d of %d bytes accepted", i, len(file))
		}
		c := bytes.Clone(file)
		c[i] ^= 0x20
		if p, err := decode(c); err == nil {
			t.Fatalf("flip at %d accepted, payload %q", i, p)
		}
	}
	zeroed := bytes.Clone(file)
	copy(zeroed[4:12], make([]byte, 8))
	if _, err := decode(zeroed); err == nil {
		t.Fatal("zeroed block accepted")
	}
}

func TestDecodeErrorsArePrecise(t *testing.T) {
	cases := map[string]string{
		"":                             "empty",
		"abc":                          "newline",
		"abc\n":                        "no checksum trailer",
		"x\nnot a trailer\n":           "is not a",
		"x\n#tinytor-state v1 len=1\n": "no sha256",
		"x\n#tinytor-state v1 len=01 sha256=" + strings.Repeat("0", 64) + "\n": "bad length",
		"x\n#tinytor-state v1 len=2 sha256=" + strings.Repeat("0", 64) + "\n":  "says 2",
		"x\n#tinytor-state v1 len=1 sha256=00\n":                               "characters",
		"x\n#tinytor-state v1 len=1 sha256=" + strings.Repeat("z", 64) + "\n":  "bad sha256 hex",
		"x\n#tinytor-state v1 len=1 sha256=" + strings.Repeat("0", 64) + "\n":  "does not match",
	}
	for in, want := range cases {
		_, err := decode([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("decode(%q) = %v, want error containing %q", in, err, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode([]byte("hello")))
	f.Add(encode(nil))
	f.Add([]byte("x\n#tinytor-state v1 len=1 sha256=00\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decode(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encode(p), b) {
			t.Fatalf("accepted %q but it is not the canonical encoding of its payload", b)
		}
	})
}
