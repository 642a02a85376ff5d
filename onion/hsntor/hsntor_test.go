package hsntor

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func arr(t *testing.T, s string) (a [32]byte) {
	copy(a[:], unhex(t, s))
	return
}

// rend-spec-v3 Appendix G.1.
const (
	vAuthKey = "34E171E4358E501BFF21ED907E96AC6BFEF697C779D040BBAF49ACC30FC5D21F"
	vB       = "8E5127A40E83AABF6493E41F142B6EE3604B85A3961CD7E38D247239AFF71979"
	vb       = "A0ED5DBF94EEB2EDB3B514E4CF6ABFF6022051CC5F103391F1970A3FCD15296A"
	vSubcred = "0085D26A9DEBA252263BF0231AEAC59B17CA11BAD8A218238AD6487CBAD68B57"
	vH       = `000000000000000000000000000000000000000002002034E171E4358E501BFF
          21ED907E96AC6BFEF697C779D040BBAF49ACC30FC5D21F00`
	vP = `6BD364C12638DD5C3BE23D76ACA05B04E6CE932C0101000100200DE6130E4FCA
          C4EDDA24E21220CC3EADAE403EF6B7D11C8273AC71908DE565450300067F0000
          0113890214F823C4F8CC085C792E0AEE0283FE00AD7520B37D0320728D5DF39B
          7B7077A0118A900FF4456C382F0041300ACF9C58E51C392795EF870000000000
          0000000000000000000000000000000000000000000000000000000000000000
          000000000000000000000000000000000000000000000000000000000000`
	vx      = "60B4D6BF5234DCF87A4E9D7487BDF3F4A69B6729835E825CA29089CFDDA1E341"
	vX      = "BF04348B46D09AED726F1D66C618FDEA1DE58E8CB8B89738D7356A0C59111D5D"
	vEncKey = "9B8917BA3D05F3130DACCE5300C3DC27F6D012912F1C733036F822D0ED238706"
	vMACKey = "FC4058DA59D4DF61E7B40985D122F502FD59336BC21C30CAF5E7F0D4A2C38FD5"
	vCell   = `000000000000000000000000000000000000000002002034E171E4358E501BFF
      21ED907E96AC6BFEF697C779D040BBAF49ACC30FC5D21F00BF04348B46D09AED
      726F1D66C618FDEA1DE58E8CB8B89738D7356A0C59111D5DADBECCCB38E37830
      4DCC179D3D9E437B452AF5702CED2CCFEC085BC02C4C175FA446525C1B9D5530
      563C362FDFFB802DAB8CD9EBC7A5EE17DA62E37DEEB0EB187FBB48C63298B0E8
      3F391B7566F42ADC97C46BA7588278273A44CE96BC68FFDAE31EF5F0913B9A9C
      7E0F173DBC0BDDCD4ACB4C4600980A7DDD9EAEC6E7F3FA3FC37CD95E5B8BFB3E
      35717012B78B4930569F895CB349A07538E42309C993223AEA77EF8AEA64F25D
      DEE97DA623F1AEC0A47F150002150455845C385E5606E41A9A199E7111D54EF2
      D1A51B7554D8B3692D85AC587FB9E69DF990EFB776D8`
	vy       = "68CB5188CA0CD7924250404FAB54EE1392D3D2B9C049A2E446513875952F8F55"
	vY       = "8FBE0DB4D4A9C7FF46701E3E0EE7FD05CD28BE4F302460ADDEEC9E93354EE700"
	vAuthMAC = "4A92E8437B8424D5E5EC279245D5C72B25A0327ACF6DAF902079FCB643D8B208"
	vKeySeed = "4D0C72FE8AFF35559D95ECC18EB5A36883402B28CDFD48C8A530A5A3D7D578DB"
)

func TestSpecVector(t *testing.T) {
	authKey := ed25519.PublicKey(unhex(t, vAuthKey))
	x, err := ecdh.X25519().NewPrivateKey(unhex(t, vx))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x.PublicKey().Bytes(), unhex(t, vX)) {
		t.Fatalf("X = %x", x.PublicKey().Bytes())
	}
	c, err := NewClientWithKey(x, authKey, arr(t, vB), arr(t, vSubcred))
	if err != nil {
		t.Fatal(err)
	}
	k := c.IntroKeys()
	if k.Enc != arr(t, vEncKey) || k.MAC != arr(t, vMACKey) {
		t.Fatalf("intro keys %x %x", k.Enc, k.MAC)
	}
	header := unhex(t, vH)
	enc := c.Encrypt(header, unhex(t, vP))
	cell := append(bytes.Clone(header), enc...)
	if !bytes.Equal(cell, unhex(t, vCell)) {
		t.Fatalf("INTRODUCE1 body differs:\n got %x\nwant %x", cell, unhex(t, vCell))
	}

	// Service side.
	b, err := ecdh.X25519().NewPrivateKey(unhex(t, vb))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.PublicKey().Bytes(), unhex(t, vB)) {
		t.Fatal("B != b's public key")
	}
	s := &Service{AuthKey: authKey, EncKey: b}
	wrong := arr(t, vKeySeed)
	in, err := s.Decrypt(header, enc, [][32]byte{wrong, arr(t, vSubcred)})
	if err != nil {
		t.Fatal(err)
	}
	if in.Subcredential != 1 || !bytes.Equal(in.Plaintext, unhex(t, vP)) || in.ClientKey != arr(t, vX) {
		t.Fatalf("decrypted introduction differs: %+v", in)
	}
	y, _ := ecdh.X25519().NewPrivateKey(unhex(t, vy))
	info, skeys, sseed, err := s.RespondWithKey(y, in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info, unhex(t, vY+vAuthMAC)) {
		t.Fatalf("HANDSHAKE_INFO = %x", info)
	}
	if sseed != arr(t, vKeySeed) {
		t.Fatalf("service seed = %x", sseed)
	}
	ckeys, cseed, err := c.Complete(info)
	if err != nil {
		t.Fatal(err)
	}
	if cseed != sseed || ckeys != skeys {
		t.Fatal("client and service keys differ")
	}
	if ckeys != ExpandKeys(arr(t, vKeySeed)) {
		t.Fatal("keys are not the expansion of the seed")
	}
}

func TestTamper(t *testing.T) {
	authKey, _, _ := ed25519.GenerateKey(nil)
	b, _ := ecdh.X25519().GenerateKey(rand.Reader)
	var B, sc [32]byte
	copy(B[:], b.PublicKey().Bytes())
	rand.Read(sc[:])
	c, err := NewClient(rand.Reader, authKey, B, sc)
	if err != nil {
		t.Fatal(err)
	}
	header := []byte("header")
	enc := c.Encrypt(header, []byte("plaintext body"))
	s := &Service{AuthKey: authKey, EncKey: b}
	for i := range enc {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x80
		if _, err := s.Decrypt(header, bad, [][32]byte{sc}); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, err := s.Decrypt([]byte("headex"), enc, [][32]byte{sc}); !errors.Is(err, ErrMAC) {
		t.Errorf("changed header: %v", err)
	}
	if _, err := s.Decrypt(header, enc[:40], [][32]byte{sc}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short: %v", err)
	}
	in, err := s.Decrypt(header, enc, [][32]byte{sc})
	if err != nil || string(in.Plaintext) != "plaintext body" {
		t.Fatalf("decrypt: %v", err)
	}
	info, _, _, err := s.Respond(rand.Reader, in)
	if err != nil {
		t.Fatal(err)
	}
	info[40] ^= 1
	if _, _, err := c.Complete(info); !errors.Is(err, ErrAuth) {
		t.Errorf("tampered AUTH: %v", err)
	}
	if _, _, err := c.Complete(info[:10]); !errors.Is(err, ErrMalformed) {
		t.Errorf("short info: %v", err)
	}
	// A low-order Y (all zeros) is refused.
	zero := make([]byte, HandshakeInfoLen)
	if _, _, err := c.Complete(zero); !errors.Is(err, ErrKey) {
		t.Errorf("zero Y: %v", err)
	}
}
