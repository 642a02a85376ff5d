package dir

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"testing"
)

func addSeeds(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseConsensus(f *testing.F) {
	addSeeds(f, "testnet-consensus-microdesc")
	f.Add([]byte("network-status-version 3 microdesc\n"))
	f.Add([]byte("network-status-version 3 microdesc\nvote-status consensus\nconsensus-method 35\nvalid-after 2026-11-27 02:55:40\nfresh-until 2026-11-27 02:56:00\nvalid-until 2026-11-27 02:56:40\nvoting-delay 4 4\nr a AAAAAAAAAAAAAAAAAAAAAAAAAAA 2038-01-01 00:00:00 1.2.3.4 1 0\nm AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\ndirectory-footer\ndirectory-signature A B\n"))
	certs, err := ParseAuthCerts(mustRead(f, "testnet-certs"))
	if err != nil {
		f.Fatal(err)
	}
	orig := mustRead(f, "testnet-consensus-microdesc")
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := ParseConsensus(doc)
		if err != nil {
			return
		}
		if !c.ValidAfter.Before(c.FreshUntil) || !c.FreshUntil.Before(c.ValidUntil) {
			t.Fatal("accepted times out of order")
		}
		for i := 1; i < len(c.Relays); i++ {
			if bytes.Compare(c.Relays[i-1].Identity[:], c.Relays[i].Identity[:]) >= 0 {
				t.Fatal("accepted unsorted relays")
			}
		}
		rep := c.CheckSignatures(certs, testnetAuthorities, testnetTime)
		if rep.OK() {
			// Only a change outside the signed portion (the signature
			// section) may still verify.
			end := bytes.Index(orig, []byte("directory-signature "))
			if len(doc) < end || !bytes.Equal(doc[:end], orig[:end]) {
				t.Fatal("consensus with a changed signed portion verifies")
			}
		}
		NextConsensusFetch(c, c.ValidAfter, fixedRand{1, 2})
	})
}

func FuzzParseMicrodescs(f *testing.F) {
	addSeeds(f, "cached-microdescs", "testnet-microdescs", "testnet-cached-microdescs.new", "ctor-md-parse-test-data")
	f.Add([]byte("ntor-onion-key AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\np accept 1-65535\np6 reject 25\nfamily $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA x\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		// Malformed entries are skipped, the others kept alongside the
		// error.
		mds, spans, err := parseMicrodescs(doc)
		var sk *SkippedMicrodescsError
		if err != nil && !errors.As(err, &sk) {
			return
		}
		if len(mds) != len(spans) {
			t.Fatal("spans and microdescriptors differ in number")
		}
		if sk != nil && (sk.Kept != len(mds) || len(sk.Skipped) == 0) {
			t.Fatalf("error counts %d kept, %d skipped; %d returned", sk.Kept, len(sk.Skipped), len(mds))
		}
		for i, md := range mds {
			if md.Digest != sha256.Sum256(doc[spans[i].start:spans[i].end]) || !md.HasNtorKey {
				t.Fatal("kept a microdescriptor whose digest is not its span's or without ntor key")
			}
			md.Policy.Allows(80)
			md.Policy6.Allows(443)
		}
	})
}

func FuzzParseCerts(f *testing.F) {
	addSeeds(f, "cached-certs", "testnet-certs")
	f.Fuzz(func(t *testing.T, doc []byte) {
		certs, err := ParseAuthCerts(doc)
		if err != nil {
			return
		}
		for _, c := range certs {
			// Signatures are not checked here: RSA makes each execution
			// slow enough to stall the fuzzer's minimization.
			if c.IdentityKey == nil || c.SigningKey == nil || len(c.Raw) == 0 {
				t.Fatal("certificate without keys accepted")
			}
		}
	})
}

func FuzzHTTPResponse(f *testing.F) {
	addSeeds(f, "testnet-keys-all.http", "testnet-404.http")
	f.Add([]byte("HTTP/1.0 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: 8\r\n\r\nx\x9c\x03\x00\x00\x00\x00\x01"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nabc"))
	f.Add([]byte("HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\x4b\x4c\x4a\x06\x00\xc2\x41\x24\x35\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, resp []byte) {
		c := &conn{resp: bytes.NewReader(resp)}
		body, err := Get(c, "/tor/keys/all", 4096)
		if err == nil && len(body) > 4096 {
			t.Fatalf("body of %d bytes exceeds the limit", len(body))
		}
	})
}
