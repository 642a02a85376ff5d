package dirmgr

import (
	"crypto/sha256"
	"testing"
)

func TestFindMicrodesc(t *testing.T) {
	md1 := "onion-key\n-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\nntor-onion-key Zm9v\n"
	md2 := "onion-key\nntor-onion-key YmFy\np accept 80\n"
	doc := []byte(md1 + md2)
	if got := string(findMicrodesc(doc, sha256.Sum256([]byte(md2)))); got != md2 {
		t.Errorf("second microdesc = %q", got)
	}
	if got := string(findMicrodesc(doc, sha256.Sum256([]byte(md1)))); got != md1 {
		t.Errorf("first microdesc = %q", got)
	}
	if got := findMicrodesc(doc, [32]byte{1}); got != nil {
		t.Errorf("unknown digest found %q", got)
	}
	if got := findMicrodesc(nil, [32]byte{}); got != nil {
		t.Errorf("empty doc found %q", got)
	}
}
