package desc

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"filippo.io/edwards25519"

	"tinytor/onion/keys"
	"tinytor/tor/cell"
)

func TestCurve25519ToEd25519(t *testing.T) {
	for i := 0; i < 50; i++ {
		pub, _, _ := ed25519.GenerateKey(nil)
		p, err := new(edwards25519.Point).SetBytes(pub)
		if err != nil {
			t.Fatal(err)
		}
		var u [32]byte
		copy(u[:], p.BytesMontgomery())
		got, err := Curve25519ToEd25519(u)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(pub)
		want[31] &^= 0x80
		if !bytes.Equal(got[:], want) {
			t.Fatalf("key %x: got %x", pub, got)
		}
	}
}

type fixture struct {
	id      *keys.SigningKey
	blinded *keys.SigningKey
	params  Params
}

func newFixture(t *testing.T, clients [][32]byte) *fixture {
	t.Helper()
	id, _ := keys.GenerateKey()
	bk := id.Blind(20000, 1440)
	_, sk, _ := ed25519.GenerateKey(nil)
	var ips []NewIntroPoint
	for i := 0; i < 3; i++ {
		auth, _, _ := ed25519.GenerateKey(nil)
		enc, _ := ecdh.X25519().GenerateKey(rand.Reader)
		var ek, ok [32]byte
		copy(ek[:], enc.PublicKey().Bytes())
		rand.Read(ok[:])
		var rsa [20]byte
		var edid [32]byte
		rand.Read(rsa[:])
		rand.Read(edid[:])
		ips = append(ips, NewIntroPoint{
			LinkSpecs: []cell.LinkSpec{
				cell.LinkSpecAddr(netip.MustParseAddrPort("127.0.0.1:5000")),
				cell.LinkSpecRSAID(rsa), cell.LinkSpecEdID(edid),
			},
			OnionKey: ok, AuthKey: auth, EncKey: ek,
		})
	}
	return &fixture{id: id, blinded: bk, params: Params{
		Identity: id.Public(), Blinded: bk, SigningKey: sk, RevisionCounter: 7,
		Now: time.Unix(1728000000, 0), IntroPoints: ips, FlowControl: []string{"1-2", "31"},
		AuthorizedClients: clients, Rand: rand.Reader,
	}}
}

func TestBuildRoundTrip(t *testing.T) {
	f := newFixture(t, nil)
	doc, err := Build(f.params)
	if err != nil {
		t.Fatal(err)
	}
	now := f.params.Now.Add(time.Hour)
	d, err := Decode(doc, f.id.Public(), f.blinded.Public(), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Outer.RevisionCounter != 7 || d.Outer.Lifetime != DefaultLifetime {
		t.Errorf("outer %+v", d.Outer)
	}
	if len(d.Middle.Clients) != 16 {
		t.Errorf("%d auth-client lines, want 16 fake ones", len(d.Middle.Clients))
	}
	if len(d.Inner.IntroPoints) != 3 || len(d.Inner.Skipped) != 0 {
		t.Fatalf("intro points %d skipped %v", len(d.Inner.IntroPoints), d.Inner.Skipped)
	}
	for i, ip := range d.Inner.IntroPoints {
		w := f.params.IntroPoints[i]
		if !ip.AuthKey.Equal(w.AuthKey) || ip.EncKey != w.EncKey || ip.OnionKey != w.OnionKey || len(ip.LinkSpecs) != 3 {
			t.Errorf("intro point %d differs", i)
		}
		edEnc, _ := Curve25519ToEd25519(w.EncKey)
		if ip.EncKeyCert.CertifiedKey != edEnc {
			t.Errorf("enc-key-cert certifies %x", ip.EncKeyCert.CertifiedKey)
		}
	}
	if strings.Join(d.Inner.FlowControl, " ") != "1-2 31" {
		t.Errorf("flow control %v", d.Inner.FlowControl)
	}
	if d.Inner.PoW != nil {
		t.Errorf("pow-params %+v in a descriptor built without", d.Inner.PoW)
	}
	// First layer padded to 10000 bytes; the second not padded.
	if n := len(d.Outer.Superencrypted) - SaltLen - macLen; n != 10000 {
		t.Errorf("first layer ciphertext %d bytes", n)
	}
	inner, _ := innerPlaintext(f.params, f.params.SigningKey.Public().(ed25519.PublicKey), f.params.Now.Add(DefaultCertLifetime))
	if n := len(d.Middle.Encrypted) - SaltLen - macLen; n != len(inner) {
		t.Errorf("second layer ciphertext %d bytes, plaintext %d", n, len(inner))
	}
	if !strings.HasSuffix(string(doc), "\n") || !strings.HasPrefix(string(doc), "hs-descriptor 3\ndescriptor-lifetime 180\n") {
		t.Errorf("document framing: %q", doc[:60])
	}
	// Expired certificates.
	if _, err := Decode(doc, f.id.Public(), nil, nil, f.params.Now.Add(55*time.Hour)); !errors.Is(err, ErrInvalid) {
		t.Errorf("expired: %v", err)
	}
}

func TestBuildClientAuth(t *testing.T) {
	var keysList []*ecdh.PrivateKey
	var pubs [][32]byte
	for i := 0; i < 3; i++ {
		k, _ := ecdh.X25519().GenerateKey(rand.Reader)
		keysList = append(keysList, k)
		var p [32]byte
		copy(p[:], k.PublicKey().Bytes())
		pubs = append(pubs, p)
	}
	f := newFixture(t, pubs)
	doc, err := Build(f.params)
	if err != nil {
		t.Fatal(err)
	}
	now := f.params.Now
	for i, k := range keysList {
		d, err := Decode(doc, f.id.Public(), nil, k, now)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if len(d.Middle.Clients) != 16 || len(d.Inner.IntroPoints) != 3 {
			t.Errorf("client %d: %d entries, %d intro points", i, len(d.Middle.Clients), len(d.Inner.IntroPoints))
		}
	}
	if _, err := Decode(doc, f.id.Public(), nil, nil, now); !errors.Is(err, ErrNeedClientAuth) {
		t.Errorf("no key: %v", err)
	}
	stranger, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, err := Decode(doc, f.id.Public(), nil, stranger, now); !errors.Is(err, ErrBadClientAuth) {
		t.Errorf("wrong key: %v", err)
	}
	// A client key with a service that does not use client auth works.
	f2 := newFixture(t, nil)
	doc2, _ := Build(f2.params)
	if _, err := Decode(doc2, f2.id.Public(), nil, stranger, now); err != nil {
		t.Errorf("client key on an open service: %v", err)
	}
	// 17 clients pad to 32 entries.
	for len(pubs) < 17 {
		k, _ := ecdh.X25519().GenerateKey(rand.Reader)
		var p [32]byte
		copy(p[:], k.PublicKey().Bytes())
		pubs = append(pubs, p)
	}
	f.params.AuthorizedClients = pubs
	doc, _ = Build(f.params)
	d, err := Decode(doc, f.id.Public(), nil, keysList[0], now)
	if err != nil || len(d.Middle.Clients) != 32 {
		t.Errorf("17 clients: %v", err)
	}
}

func FuzzParseOuter(f *testing.F) {
	f.Add(readFile(f, "hidden_service_v3"))
	f.Add([]byte("hs-descriptor 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseOuter(b, time.Unix(1500000000, 0))
	})
}

func FuzzParseMiddle(f *testing.F) {
	f.Add(readFile(f, "hidden_service_v3_outer_layer"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMiddle(b)
		if err == nil {
			k, _ := ecdh.X25519().NewPrivateKey(make([]byte, 32))
			m.Cookie(k, [32]byte{})
		}
	})
}

func FuzzParseInner(f *testing.F) {
	f.Add(readFile(f, "hidden_service_v3_inner_layer"))
	f.Add(readFile(f, "hidden_service_v3_intro_point"))
	f.Add([]byte("create2-formats 2\npow-params v1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= 42 2026-12-03T18:04:05\n"))
	f.Add([]byte("create2-formats 2\npow-params v2\npow-params v1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8 -0 2026-12-03T18:04:05 x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseInner(b, make(ed25519.PublicKey, 32), time.Unix(1500000000, 0))
	})
}

// TestBuildPoWParams: the pow-params line a service writes is the one the
// client's parser reads (and the text C tor writes).
func TestBuildPoWParams(t *testing.T) {
	f := newFixture(t, nil)
	want := PoWParams{SuggestedEffort: 42, Expires: time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)}
	for i := range want.Seed {
		want.Seed[i] = byte(i)
	}
	f.params.PoW = &want
	line := string(want.append(nil))
	if line != "pow-params v1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8 42 2026-12-03T20:00:00\n" {
		t.Errorf("line %q", line)
	}
	doc, err := Build(f.params)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(doc, f.id.Public(), f.blinded.Public(), nil, f.params.Now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d.Inner.PoW == nil || *d.Inner.PoW != want {
		t.Fatalf("pow-params read back as %+v, want %+v", d.Inner.PoW, want)
	}
}
