package tor

import (
	"crypto/sha256"
	"testing"

	"tinytor/tor/config"
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

func TestControlAccessorsUnstarted(t *testing.T) {
	cfg, err := config.Parse([]byte("DataDirectory "+t.TempDir()+"\n"), "torrc", config.Env{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Torrc: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := c.RelayStatus([20]byte{1}); ok {
		t.Error("RelayStatus without a directory")
	}
	if s := c.NetworkStatusAll(); s != "" {
		t.Errorf("NetworkStatusAll = %q", s)
	}
	if err := c.CloseCircuit(1, false); err == nil {
		t.Error("CloseCircuit of an unknown circuit succeeded")
	}
	if err := c.CloseStream(1); err == nil {
		t.Error("CloseStream of an unknown stream succeeded")
	}
	if c.Config() == nil {
		t.Error("Config is nil")
	}
}
