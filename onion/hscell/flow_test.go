package hscell

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/netip"
	"testing"
	"time"

	"tinytor/onion/hsntor"
	"tinytor/tor/cell"
)

// A whole introduction and rendezvous, client and service, through the
// codecs and hs-ntor.
func TestIntroduceRendezvousFlow(t *testing.T) {
	authPub, _, _ := ed25519.GenerateKey(nil)
	encKey, _ := ecdh.X25519().GenerateKey(rand.Reader)
	var B, sub [32]byte
	copy(B[:], encKey.PublicKey().Bytes())
	rand.Read(sub[:])

	c, err := hsntor.NewClient(rand.Reader, authPub, B, sub)
	if err != nil {
		t.Fatal(err)
	}
	p := &IntroducePlaintext{
		LinkSpecs: []cell.LinkSpec{cell.LinkSpecAddr(netip.MustParseAddrPort("127.0.0.1:9001")), cell.LinkSpecRSAID([20]byte{1})},
	}
	rand.Read(p.Cookie[:])
	rand.Read(p.OnionKey[:])
	body, err := BuildIntroduce1(c, authPub, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) != Introduce1MinLen+64 {
		t.Errorf("INTRODUCE1 body is %d bytes, want %d", len(body), Introduce1MinLen+64)
	}

	s := &hsntor.Service{AuthKey: authPub, EncKey: encKey}
	var other [32]byte
	in, intro, got, err := OpenIntroduce2(body, s, [][32]byte{other, sub})
	if err != nil {
		t.Fatal(err)
	}
	if got.Cookie != p.Cookie || got.OnionKey != p.OnionKey || len(got.LinkSpecs) != 2 || intro.Subcredential != 1 {
		t.Fatalf("decoded %+v", got)
	}
	rc := NewReplayCache(100, time.Hour)
	if rc.Seen(in.Encrypted, time.Now()) {
		t.Fatal("fresh cell seen")
	}
	info, skeys, _, err := s.Respond(rand.Reader, intro)
	if err != nil {
		t.Fatal(err)
	}
	cookie, hi, err := ParseRendezvous1(BuildRendezvous1(got.Cookie, info))
	if err != nil || cookie != p.Cookie {
		t.Fatal("RENDEZVOUS1")
	}
	ckeys, _, err := c.Complete(hi)
	if err != nil || ckeys != skeys {
		t.Fatalf("keys differ: %v", err)
	}
	// Replayed INTRODUCE2 is caught; wrong subcredentials fail.
	in2, _, _, err := OpenIntroduce2(body, s, [][32]byte{sub})
	if err != nil || !rc.Seen(in2.Encrypted, time.Now()) {
		t.Error("replay not detected")
	}
	if _, _, _, err := OpenIntroduce2(body, s, [][32]byte{other}); !errors.Is(err, hsntor.ErrMAC) {
		t.Errorf("wrong subcredential: %v", err)
	}
	s2 := &hsntor.Service{AuthKey: make(ed25519.PublicKey, 32), EncKey: encKey}
	if _, _, _, err := OpenIntroduce2(body, s2, [][32]byte{sub}); !errors.Is(err, ErrMalformed) {
		t.Errorf("other auth key: %v", err)
	}
}
