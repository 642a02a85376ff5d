package dir

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStemCachedCerts(t *testing.T) {
	doc := mustRead(t, "cached-certs")
	certs, err := ParseAuthCerts(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Fatalf("got %d certs, want 2", len(certs))
	}
	wantFP := []string{"BCB380A633592C218757BEE11E630511A485658A", "596CD48D61FDA4E868F4AA10FF559917BE3B1A35"}
	for i, c := range certs {
		if got := strings.ToUpper(hexs(c.Fingerprint[:])); got != wantFP[i] {
			t.Errorf("cert %d fingerprint %s, want %s", i, got, wantFP[i])
		}
		if err := c.VerifySignatures(); err != nil {
			t.Errorf("cert %d: %v", i, err)
		}
		if err := c.Verify(time.Date(2017, 6, 1, 0, 0, 0, 0, time.UTC)); err != nil {
			t.Errorf("cert %d at 2017-06-01: %v", i, err)
		}
		if err := c.Verify(time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrCertExpired) {
			t.Errorf("cert %d in 2019: got %v, want ErrCertExpired", i, err)
		}
		if err := c.Verify(time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrCertNotYetValid) {
			t.Errorf("cert %d in 2016: got %v, want ErrCertNotYetValid", i, err)
		}
	}
	if certs[0].Address != "127.0.0.1:7000" {
		t.Errorf("address %q", certs[0].Address)
	}
	if !certs[0].Published.Equal(time.Date(2017, 5, 25, 4, 45, 52, 0, time.UTC)) {
		t.Errorf("published %v", certs[0].Published)
	}
	if !bytes.Equal(append(append([]byte{}, certs[0].Raw...), certs[1].Raw...), doc) {
		t.Error("Raw of both certs does not reproduce the file")
	}
}

func hexs(b []byte) string {
	const h = "0123456789ABCDEF"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = h[c>>4], h[c&15]
	}
	return string(out)
}

func TestCertTampered(t *testing.T) {
	doc := mustRead(t, "cached-certs")
	// Change one character in the dir-key-published line of the first cert.
	bad := bytes.Replace(doc, []byte("2017-05-25 04:45:52\ndir-key-expires"), []byte("2017-05-25 04:45:53\ndir-key-expires"), 1)
	certs, err := ParseAuthCerts(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs[0].VerifySignatures(); err == nil || !strings.Contains(err.Error(), "dir-key-certification signature by identity key invalid") {
		t.Errorf("tampered cert: got %v", err)
	}
	if err := certs[1].VerifySignatures(); err != nil {
		t.Errorf("untouched cert: %v", err)
	}

	// Signed by the wrong key: swap cert 0's certification for cert 1's.
	parts := bytes.SplitAfter(doc, []byte("dir-key-certification\n"))
	if len(parts) != 3 {
		t.Fatalf("split into %d parts", len(parts))
	}
	// parts[0] is cert 0 up to its certification item; parts[2] is cert
	// 1's signature object.
	swapped := append(append([]byte{}, parts[0]...), parts[2]...)
	certs, err = ParseAuthCerts(swapped)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs[0].VerifySignatures(); err == nil {
		t.Error("cert with another authority's certification verified")
	}

	// Wrong fingerprint line.
	fpbad := bytes.Replace(doc, []byte("fingerprint BCB380A6"), []byte("fingerprint BCB380A7"), 1)
	certs, err = ParseAuthCerts(fpbad)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs[0].VerifySignatures(); err == nil || !strings.Contains(err.Error(), "fingerprint does not match") {
		t.Errorf("bad fingerprint: got %v", err)
	}
}

func TestCertParseErrors(t *testing.T) {
	doc := mustRead(t, "cached-certs")
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", "no certificate"},
		{"version", strings.Replace(string(doc), "dir-key-certificate-version 3", "dir-key-certificate-version 4", 1), "line 1: \"dir-key-certificate-version\": unsupported certificate version"},
		{"truncated", string(doc[:len(doc)/3]), ""},
		{"dup", strings.Replace(string(doc), "dir-address 127.0.0.1:7000\n", "dir-address 127.0.0.1:7000\ndir-address 127.0.0.1:7000\n", 1), "line 3: \"dir-address\": appears more than once"},
		{"badtime", strings.Replace(string(doc), "dir-key-expires 2018-05-25 04:45:52", "dir-key-expires 2018-05-25 4:45:52", 1), "line 5: \"dir-key-expires\": bad time"},
	}
	for _, tc := range cases {
		_, err := ParseAuthCerts([]byte(tc.in))
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not contain %q", tc.name, err, tc.want)
		}
	}
}
