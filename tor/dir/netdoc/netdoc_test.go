package netdoc

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func items(t *testing.T, doc string) ([]Item, error) {
	t.Helper()
	tok := NewTokenizer("test", []byte(doc))
	var out []Item
	for {
		it, err := tok.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		it.Args = append([][]byte(nil), it.Args...)
		out = append(out, it)
	}
}

func TestTokenizer(t *testing.T) {
	doc := "kw-one a b\tc\n\nkw2\nsig\n-----BEGIN SIGNATURE-----\nAAEC\nAw==\n-----END SIGNATURE-----\nlast  x  \n"
	its, err := items(t, doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(its) != 4 {
		t.Fatalf("%d items", len(its))
	}
	if !its[0].Is("kw-one") || len(its[0].Args) != 3 || string(its[0].Args[2]) != "c" || its[0].Line != 1 {
		t.Errorf("item 0: %+v", its[0])
	}
	if !its[1].Is("kw2") || its[1].Line != 3 || len(its[1].Args) != 0 || its[1].HasObject() {
		t.Errorf("item 1: %+v", its[1])
	}
	sig := its[2]
	if !sig.HasObject() || string(sig.ObjectType) != "SIGNATURE" || sig.Line != 4 {
		t.Errorf("item 2: %+v", sig)
	}
	obj, err := sig.Object()
	if err != nil || string(obj) != "\x00\x01\x02\x03" {
		t.Errorf("object %x %v", obj, err)
	}
	if doc[sig.Start:sig.ArgsEnd] != "sig" || !strings.HasSuffix(doc[:sig.End], "-----END SIGNATURE-----\n") {
		t.Errorf("offsets %d %d %d", sig.Start, sig.ArgsEnd, sig.End)
	}
	if its[3].Line != 9 || len(its[3].Args) != 1 {
		t.Errorf("item 3: %+v", its[3])
	}
	if _, err := its[1].Object(); err == nil {
		t.Error("Object without object succeeded")
	}
}

func TestTokenizerErrors(t *testing.T) {
	cases := []struct{ doc, want string }{
		{"a\n b\n", "test: line 2: line starts with whitespace"},
		{"a\nb", "test: line 2: last line does not end with a newline"},
		{"-bad\n", "invalid keyword start"},
		{"a_b x\n", "invalid keyword character 0x5f"},
		{"@ann x\n", "invalid keyword start character 0x40"},
		{"a \x01\n", "line 1: \"a\": non-printable character 0x01"},
		{"a\n-----BEGIN X-----\nAA==\n", "line 2: \"a\": object \"X\" has no END line"},
		{"a\n-----BEGIN X-----\nAA==\n-----END Y-----\n", "line 4: \"a\": object END line \"-----END Y-----\" does not match BEGIN \"X\""},
		{"a\n-----BEGIN X-----\nA*==\n-----END X-----\n", "line 3: \"a\": object \"X\": invalid base64 character 0x2a"},
		{"a\n-----BEGIN X\n", "malformed object BEGIN line"},
		{"-----END X-----\n", "unexpected object line"},
	}
	for _, tc := range cases {
		_, err := items(t, tc.doc)
		var pe *Error
		if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.doc, err, tc.want)
		}
	}
	tok := NewTokenizer("test", []byte("@ann x\n"))
	tok.Annotations = true
	if it, err := tok.Next(); err != nil || string(it.Keyword) != "@ann" {
		t.Errorf("annotation: %v", err)
	}
}

func TestHelpers(t *testing.T) {
	tm, err := ParseTime([]byte("2026-11-27"), []byte("02:55:40"))
	if err != nil || tm.Format(TimeLayout) != "2026-11-27 02:55:40" {
		t.Errorf("%v %v", tm, err)
	}
	for _, bad := range [][2]string{{"2026-11-27", "2:55:40"}, {"2026-13-27", "02:55:40"}, {"", ""}} {
		if _, err := ParseTime([]byte(bad[0]), []byte(bad[1])); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var d [3]byte
	if err := DecodeHex(d[:], []byte("0aFf10")); err != nil || d != [3]byte{0x0a, 0xff, 0x10} {
		t.Errorf("hex %x %v", d, err)
	}
	if DecodeHex(d[:], []byte("0aFf1")) == nil || DecodeHex(d[:], []byte("0aFg10")) == nil {
		t.Error("bad hex accepted")
	}
	var k [4]byte
	for _, s := range []string{"AAECAw", "AAECAw=="} {
		if err := DecodeBase64NoPad(k[:], []byte(s)); err != nil || k != [4]byte{0, 1, 2, 3} {
			t.Errorf("base64 %q: %x %v", s, k, err)
		}
	}
	if DecodeBase64NoPad(k[:], []byte("AAEC")) == nil || DecodeBase64NoPad(k[:], []byte("AAE*Aw")) == nil {
		t.Error("bad base64 accepted")
	}
}

func FuzzTokenizer(f *testing.F) {
	f.Add([]byte("kw-one a b\tc\n\nkw2\nsig\n-----BEGIN SIGNATURE-----\nAAEC\nAw==\n-----END SIGNATURE-----\n"))
	f.Add([]byte("@last-listed 2013-02-24 00:18:36\nonion-key\n-----BEGIN RSA PUBLIC KEY-----\nAA==\n-----END RSA PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		tok := NewTokenizer("fuzz", doc)
		tok.Annotations = true
		last := 0
		for {
			it, err := tok.Next()
			if err != nil {
				return
			}
			if it.Start < last || it.End <= it.Start || it.End > len(doc) || it.ArgsEnd >= it.End {
				t.Fatalf("bad offsets %d %d %d (previous end %d)", it.Start, it.ArgsEnd, it.End, last)
			}
			last = it.End
			if it.HasObject() {
				it.Object()
			}
		}
	})
}
