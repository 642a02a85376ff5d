package hscell

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/circuit/handshake"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rend-spec-v3 Appendix G.1: the INTRODUCE1 header H and plaintext P.
const (
	specH = `000000000000000000000000000000000000000002002034E171E4358E501BFF
          21ED907E96AC6BFEF697C779D040BBAF49ACC30FC5D21F00`
	specP = `6BD364C12638DD5C3BE23D76ACA05B04E6CE932C0101000100200DE6130E4FCA
          C4EDDA24E21220CC3EADAE403EF6B7D11C8273AC71908DE565450300067F0000
          0113890214F823C4F8CC085C792E0AEE0283FE00AD7520B37D0320728D5DF39B
          7B7077A0118A900FF4456C382F0041300ACF9C58E51C392795EF870000000000
          0000000000000000000000000000000000000000000000000000000000000000
          000000000000000000000000000000000000000000000000000000000000`
	specCell = `000000000000000000000000000000000000000002002034E171E4358E501BFF
      21ED907E96AC6BFEF697C779D040BBAF49ACC30FC5D21F00BF04348B46D09AED
      726F1D66C618FDEA1DE58E8CB8B89738D7356A0C59111D5DADBECCCB38E37830
      4DCC179D3D9E437B452AF5702CED2CCFEC085BC02C4C175FA446525C1B9D5530
      563C362FDFFB802DAB8CD9EBC7A5EE17DA62E37DEEB0EB187FBB48C63298B0E8
      3F391B7566F42ADC97C46BA7588278273A44CE96BC68FFDAE31EF5F0913B9A9C
      7E0F173DBC0BDDCD4ACB4C4600980A7DDD9EAEC6E7F3FA3FC37CD95E5B8BFB3E
      35717012B78B4930569F895CB349A07538E42309C993223AEA77EF8AEA64F25D
      DEE97DA623F1AEC0A47F150002150455845C385E5606E41A9A199E7111D54EF2
      D1A51B7554D8B3692D85AC587FB9E69DF990EFB776D8`
)

func TestSpecIntroduce(t *testing.T) {
	h := unhex(t, specH)
	authKey := ed25519.PublicKey(h[23:55])
	got, err := IntroduceHeader(authKey, nil)
	if err != nil || !bytes.Equal(got, h) {
		t.Fatalf("header %x %v", got, err)
	}
	p, err := ParseIntroducePlaintext(unhex(t, specP))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(p.Cookie[:]) != "6bd364c12638dd5c3be23d76aca05b04e6ce932c" {
		t.Errorf("cookie %x", p.Cookie)
	}
	if len(p.Extensions) != 1 || p.Extensions[0].Type != ExtCCRequest || len(p.Extensions[0].Body) != 0 {
		t.Errorf("extensions %+v", p.Extensions)
	}
	if len(p.LinkSpecs) != 3 {
		t.Fatalf("link specs %+v", p.LinkSpecs)
	}
	ap, err := p.LinkSpecs[0].AddrPort()
	if err != nil || ap != netip.MustParseAddrPort("127.0.0.1:5001") {
		t.Errorf("addr %v %v", ap, err)
	}
	if p.LinkSpecs[1].Type != cell.LinkSpecLegacyID || p.LinkSpecs[2].Type != cell.LinkSpecEd25519 {
		t.Errorf("link spec types %v %v", p.LinkSpecs[1].Type, p.LinkSpecs[2].Type)
	}
	// Re-encoding gives the same padded plaintext (C tor's padding).
	enc, err := p.Encode(len(h))
	if err != nil || !bytes.Equal(enc, unhex(t, specP)) {
		t.Fatalf("re-encoded plaintext differs: %x %v", enc, err)
	}
	in, err := ParseIntroduce(unhex(t, specCell))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in.Header, h) || !in.AuthKey.Equal(authKey) || len(in.Encrypted) != 32+len(enc)+32 {
		t.Errorf("parsed INTRODUCE1: %+v", in)
	}
}

func TestEstablishIntro(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	kh := bytes.Repeat([]byte{7}, 20)
	b, err := BuildEstablishIntro(priv, []Extension{DoSExtension([]DoSParam{{1, 25}, {2, 200}})}, kh)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseEstablishIntro(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Verify(kh); err != nil {
		t.Fatal(err)
	}
	if !e.AuthKey.Equal(priv.Public()) {
		t.Error("auth key")
	}
	d, ok := handshake.FindExt(e.Extensions, ExtDoSParams)
	if !ok || len(d) != 1+2*9 || d[0] != 2 {
		t.Errorf("DoS extension %x", d)
	}
	if err := e.Verify(bytes.Repeat([]byte{8}, 20)); !errors.Is(err, ErrSignature) {
		t.Errorf("wrong KH: %v", err)
	}
	b[40] ^= 1
	e, err = ParseEstablishIntro(b)
	if err == nil {
		if err := e.Verify(kh); !errors.Is(err, ErrSignature) {
			t.Errorf("tampered: %v", err)
		}
	}
}

func TestSmallCells(t *testing.T) {
	ack, _ := BuildIntroduceAck(AckUnknownService, nil)
	st, exts, err := ParseIntroduceAck(ack)
	if err != nil || st != AckUnknownService || len(exts) != 0 {
		t.Errorf("ack %d %v %v", st, exts, err)
	}
	if _, _, err := ParseIntroduceAck([]byte{0}); !errors.Is(err, ErrMalformed) {
		t.Error("short ack accepted")
	}
	var cookie [CookieLen]byte
	copy(cookie[:], "0123456789abcdefghij")
	c, err := ParseEstablishRendezvous(append(BuildEstablishRendezvous(cookie), 1, 2))
	if err != nil || c != cookie {
		t.Error("ESTABLISH_RENDEZVOUS")
	}
	info := bytes.Repeat([]byte{9}, 64)
	c, hi, err := ParseRendezvous1(BuildRendezvous1(cookie, info))
	if err != nil || c != cookie || !bytes.Equal(hi, info) {
		t.Error("RENDEZVOUS1")
	}
	if hi, err := ParseRendezvous2(info); err != nil || !bytes.Equal(hi, info) {
		t.Error("RENDEZVOUS2")
	}
	if _, err := ParseRendezvous2(info[:63]); !errors.Is(err, ErrMalformed) {
		t.Error("short RENDEZVOUS2")
	}
	if exts, err := ParseIntroEstablished(nil); err != nil || exts != nil {
		t.Error("empty INTRO_ESTABLISHED")
	}
	ie, _ := BuildIntroEstablished([]Extension{{Type: 5, Body: []byte{1}}})
	if exts, err := ParseIntroEstablished(ie); err != nil || len(exts) != 1 || exts[0].Type != 5 {
		t.Error("INTRO_ESTABLISHED")
	}
}

func TestParseErrors(t *testing.T) {
	good := unhex(t, specCell)
	for name, b := range map[string][]byte{
		"empty":     nil,
		"legacy":    append([]byte{1}, good[1:]...),
		"key type":  append(append(bytes.Clone(good[:20]), 1), good[21:]...),
		"short enc": good[:56+10],
	} {
		if _, err := ParseIntroduce(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	p := unhex(t, specP)
	bad := bytes.Clone(p)
	bad[23] = 2 // onion key type
	if _, err := ParseIntroducePlaintext(bad); !errors.Is(err, ErrMalformed) {
		t.Error("onion key type 2 accepted")
	}
	bad = bytes.Clone(p)
	bad[60] = 5 // IPv4 link specifier length
	if _, err := ParseIntroducePlaintext(bad); !errors.Is(err, ErrMalformed) {
		t.Error("bad link specifier length accepted")
	}
	if _, err := ParseIntroducePlaintext(p[:70]); !errors.Is(err, ErrMalformed) {
		t.Error("truncated plaintext accepted")
	}
}

func TestReplayCache(t *testing.T) {
	c := NewReplayCache(3, time.Minute)
	t0 := time.Unix(1000, 0)
	if c.Seen([]byte("a"), t0) {
		t.Fatal("new cell reported as replay")
	}
	if !c.Seen([]byte("a"), t0.Add(time.Second)) {
		t.Fatal("replay not detected")
	}
	c.Seen([]byte("b"), t0)
	c.Seen([]byte("c"), t0)
	c.Seen([]byte("d"), t0) // evicts "a", the oldest
	if c.Len() != 3 {
		t.Errorf("Len = %d", c.Len())
	}
	if c.Seen([]byte("a"), t0.Add(2*time.Second)) {
		t.Error("evicted entry still remembered")
	}
	if !c.Seen([]byte("d"), t0.Add(59*time.Second)) {
		t.Error("d forgotten early")
	}
	if c.Seen([]byte("d"), t0.Add(61*time.Second)) {
		t.Error("expired entry still a replay")
	}
	if c.Len() != 2 { // "a" (at +2s) and the new "d"
		t.Errorf("after expiry Len = %d", c.Len())
	}
	for i := 0; i < 1000; i++ {
		c.Seen([]byte{byte(i), byte(i >> 8)}, t0.Add(time.Duration(i)*time.Second))
	}
	if c.Len() > 3 || len(c.order)-c.head > 3+1 {
		t.Errorf("cache grew: %d entries, queue %d", c.Len(), len(c.order)-c.head)
	}
}

func FuzzParseIntroduce2(f *testing.F) {
	f.Add(unhex(f, specCell))
	f.Add(unhex(f, specP))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if in, err := ParseIntroduce(b); err == nil {
			if !bytes.Equal(append(bytes.Clone(in.Header), in.Encrypted...), b) {
				t.Fatal("header and encrypted do not cover the body")
			}
		}
		if p, err := ParseIntroducePlaintext(b); err == nil {
			if _, err := p.Encode(0); err != nil && len(b) < 400 {
				t.Fatalf("re-encode: %v", err)
			}
		}
		ParseEstablishIntro(b)
		ParseIntroduceAck(b)
		ParseIntroEstablished(b)
		ParseLinkSpecs(b)
	})
}
