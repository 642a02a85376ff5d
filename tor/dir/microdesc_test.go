package dir

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

func TestStemCachedMicrodescs(t *testing.T) {
	orig := mustRead(t, "cached-microdescs")
	// Stem's file is from 2013: two of its three microdescriptors have no
	// ntor-onion-key, which C tor requires since 0.4.5 (prop 315; T1 in
	// microdesc_parse.c's token table). They are skipped, and reported.
	mds, err := ParseMicrodescs(orig)
	var sk *SkippedMicrodescsError
	if !errors.As(err, &sk) || len(mds) != 1 || len(sk.Skipped) != 2 || sk.Kept != 1 {
		t.Fatalf("original file: %d kept, error %v", len(mds), err)
	}
	for i, line := range []int{1, 17} {
		if s := sk.Skipped[i]; s.Line != line || !strings.Contains(s.Error(), "missing ntor-onion-key") {
			t.Errorf("skipped %d: %v, want line %d, missing ntor-onion-key", i, s, line)
		}
	}
	if !mds[0].HasNtorKey || DigestString(mds[0].NtorOnionKey) != "r5572HzD+PMPBbXlZwBhsm6YEbxnYgis8vhZ1jmdI2k" {
		t.Errorf("kept the wrong one: %+v", mds[0])
	}

	// The same file with an ntor-onion-key added to those two: all kept.
	ntor := "ntor-onion-key AppBt6CSeb1kKid/36ototmFA24ddfW5JpjWPLuoJgs\n"
	parts := strings.SplitAfter(string(orig), "-----END RSA PUBLIC KEY-----\n")
	doc := []byte(parts[0] + ntor + parts[1] + parts[2] + ntor + parts[3])
	mds, err = ParseMicrodescs(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(mds) != 3 {
		t.Fatalf("got %d microdescriptors, want 3", len(mds))
	}
	// Digests cover each body from "onion-key" up to the next annotation.
	s := string(doc)
	bodies := strings.Split(s, "@last-listed ")
	for i, b := range bodies[1:] {
		body := b[strings.Index(b, "\n")+1:]
		if want := sha256.Sum256([]byte(body)); mds[i].Digest != want {
			t.Errorf("md %d digest %s, want %s", i, DigestString(mds[i].Digest), DigestString(want))
		}
	}
	if mds[0].Family != nil || mds[0].Policy != nil {
		t.Errorf("md 0 has unexpected fields: %+v", mds[0])
	}
	if !mds[1].HasNtorKey || DigestString(mds[1].NtorOnionKey) != "r5572HzD+PMPBbXlZwBhsm6YEbxnYgis8vhZ1jmdI2k" {
		t.Errorf("md 1 ntor key %s", DigestString(mds[1].NtorOnionKey))
	}
	var fam [20]byte
	copy(fam[:], []byte{0x61, 0x41, 0x62, 0x9F, 0xA0, 0xD1, 0x5A, 0x6A, 0xEA, 0xEF, 0x3A, 0x1B, 0xEB, 0x76, 0xE6, 0x4C, 0x76, 0x7B, 0x31, 0x74})
	if !mds[1].Family.ContainsID(fam) || len(mds[1].Family.IDs) != 1 {
		t.Errorf("md 1 family %+v", mds[1].Family)
	}
	m := mds[2]
	if m.IPv6.String() != "[2001:6b0:7:125::242]:9001" {
		t.Errorf("md 2 address %v", m.IPv6)
	}
	if m.Policy.String() != "accept 80,443" {
		t.Errorf("md 2 policy %v", m.Policy)
	}
	for port, want := range map[uint16]bool{80: true, 443: true, 22: false, 81: false, 65535: false} {
		if m.Policy.Allows(port) != want {
			t.Errorf("md 2 allows %d = %v", port, !want)
		}
	}
	if m.Policy6.Allows(80) {
		t.Error("missing p6 allows port 80")
	}

	// Requested digests: the first two only.
	b, err := ParseRequestedMicrodescs(doc, [][32]byte{mds[0].Digest, mds[1].Digest, {1}})
	if !errors.Is(err, ErrUnrequestedMicrodesc) {
		t.Errorf("unrequested: got %v", err)
	}
	if len(b.Found) != 2 || len(b.Missing) != 1 || b.Missing[0] != [32]byte{1} || len(b.Unrequested) != 1 || b.Unrequested[0] != mds[2].Digest {
		t.Errorf("batch %+v", b)
	}
	b, err = ParseRequestedMicrodescs(doc, [][32]byte{mds[0].Digest, mds[1].Digest, mds[2].Digest})
	if err != nil || len(b.Found) != 3 || len(b.Missing) != 0 {
		t.Errorf("all requested: %v %+v", err, b)
	}
}

func TestPortPolicy(t *testing.T) {
	cases := []struct {
		in      string
		allowed []uint16
		denied  []uint16
		err     string
	}{
		{in: "accept 1-65535", allowed: []uint16{1, 80, 65535}},
		{in: "reject 1-65535", denied: []uint16{1, 80, 65535}},
		{in: "reject 25,119,135-139,445,563,1214,4661-4666", allowed: []uint16{80, 24, 26, 140, 4667}, denied: []uint16{25, 135, 137, 139, 4661, 4666}},
		{in: "accept 20-23,43,53,79-81", allowed: []uint16{20, 23, 43, 80, 81}, denied: []uint16{24, 1, 82, 443}},
		{in: "accept 80,", err: "ends with a comma"},
		{in: "accept 0", err: "bad port range"},
		{in: "accept 443,80", err: "ascending"},
		{in: "allow 80", err: "neither"},
		{in: "accept 70000", err: "bad port range"},
	}
	for _, tc := range cases {
		f := strings.Fields(tc.in)
		args := [][]byte{[]byte(f[0]), []byte(f[1])}
		p, err := ParsePortPolicy(args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if p.String() != tc.in {
			t.Errorf("%q: String %q", tc.in, p.String())
		}
		for _, port := range tc.allowed {
			if !p.Allows(port) {
				t.Errorf("%q: denies %d", tc.in, port)
			}
		}
		for _, port := range tc.denied {
			if p.Allows(port) {
				t.Errorf("%q: allows %d", tc.in, port)
			}
		}
	}
}

func TestMicrodescErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "no microdescriptor"},
		{"p accept 80\n", "line 1: \"p\": item outside a microdescriptor"},
		{"ntor-onion-key AAAA\n", "line 1: \"ntor-onion-key\": base64 value"},
		{"ntor-onion-key r5572HzD+PMPBbXlZwBhsm6YEbxnYgis8vhZ1jmdI2k\np accept 80\np accept 80\n", "line 3: \"p\": appears more than once"},
		{"ntor-onion-key r5572HzD+PMPBbXlZwBhsm6YEbxnYgis8vhZ1jmdI2k\np accept 80", "last line does not end"},
		{"ntor-onion-key r5572HzD+PMPBbXlZwBhsm6YEbxnYgis8vhZ1jmdI2k\nid ed25519 xx\n", "line 2: \"id\": base64 value"},
	}
	for _, tc := range cases {
		_, err := ParseMicrodescs([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}
