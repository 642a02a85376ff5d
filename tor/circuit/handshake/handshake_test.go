package handshake

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/crypto/curve25519"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Vectors from C tor's src/test/test_crypto.c (test_crypto_kdf_TAP).
func TestKDFTorVectors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `5ba93c9db0cff93f52b521d7420e43f6eda2784fbf8b4530d8
			d246dd74ac53a13471bba17941dff7c4ea21bb365bbeeaf5f2
			c654883e56d11e43c44e9842926af7ca0a8cca12604f945414
			f07b01e13da42c6cf1de3abfdea9b95f34687cbbe92b9a7383`},
		{"Tor", `776c6214fc647aaa5f683c737ee66ec44f03d0372e1cce6922
			7950f236ddf1e329a7ce7c227903303f525a8c6662426e8034
			870642a6dabbd41b5d97ec9bf2312ea729992f48f8ea2d0ba8
			3f45dfda1a80bdc8b80de01b23e3e0ffae099b3e4ccf28dc28`},
		{"AN ALARMING ITEM TO FIND ON A MONTHLY AUTO-DEBIT NOTICE", `a340b5d126086c3ab29c2af4179196dbf95e1c72431419d331
			4844bf8f6afb6098db952b95581fb6c33625709d6f4400b8e7
			ace18a70579fad83c0982ef73f89395bcc39493ad53a685854
			daf2ba9b78733b805d9a6824c907ee1dba5ac27a1e466d4d10`},
	} {
		got, err := KDFTor([]byte(tc.in), 100)
		if err != nil {
			t.Fatal(err)
		}
		if want := unhex(t, tc.want); !bytes.Equal(got, want) {
			t.Errorf("KDFTor(%q) = %x, want %x", tc.in, got, want)
		}
	}
	if _, err := KDFTor(nil, 256*HashLen+1); err == nil {
		t.Error("KDFTor accepted an output longer than 256 blocks")
	}
}

// Vectors from C tor's test_crypto_hkdf_sha256 (made with ntor_ref.py) and
// RFC 5869 test case 1.
func TestKDFRFC5869Vectors(t *testing.T) {
	salt := []byte("ntor-curve25519-sha256-1:key_extract")
	info := []byte("ntor-curve25519-sha256-1:key_expand")
	for _, tc := range []struct{ in, want string }{
		{"", `d3490ed48b12a48f9547861583573fe3f19aafe3f81dc7fc75
			eeed96d741b3290f941576c1f9f0b2d463d1ec7ab2c6bf71cd
			d7f826c6298c00dbfe6711635d7005f0269493edf6046cc7e7
			dcf6abe0d20c77cf363e8ffe358927817a3d3e73712cee28d8`},
		{"Tor", `5521492a85139a8d9107a2d5c0d9c91610d0f95989975ebee6
			c02a4f8d622a6cfdf9b7c7edd3832e2760ded1eac309b76f8d
			66c4a3c4d6225429b3a016e3c3d45911152fc87bc2de9630c3
			961be9fdb9f93197ea8e5977180801926d3321fa21513e59ac`},
		{"AN ALARMING ITEM TO FIND ON YOUR CREDIT-RATING STATEMENT", `a2aa9b50da7e481d30463adb8f233ff06e9571a0ca6ab6df0f
			b206fa34e5bc78d063fc291501beec53b36e5a0e434561200c
			5f8bd13e0f88b3459600b4dc21d69363e2895321c06184879d
			94b18f078411be70b767c7fc40679a9440a0c95ea83a23efbf`},
	} {
		got, err := KDFRFC5869([]byte(tc.in), salt, info, 100)
		if err != nil {
			t.Fatal(err)
		}
		if want := unhex(t, tc.want); !bytes.Equal(got, want) {
			t.Errorf("KDFRFC5869(%q) = %x, want %x", tc.in, got, want)
		}
	}
	// RFC 5869 A.1.
	got, err := KDFRFC5869(unhex(t, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
		unhex(t, "000102030405060708090a0b0c"), unhex(t, "f0f1f2f3f4f5f6f7f8f9"), 42)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
	if !bytes.Equal(got, want) {
		t.Errorf("RFC 5869 A.1: got %x, want %x", got, want)
	}
}

// ntorServer is the relay side of ntor, for tests only.
func ntorServer(t testing.TB, skin []byte, id [20]byte, bsec, bpub, ysec [32]byte) (reply []byte, km *KeyMaterial) {
	t.Helper()
	if !bytes.Equal(skin[:20], id[:]) || !bytes.Equal(skin[20:52], bpub[:]) {
		t.Fatal("ntor server: onionskin is not for this relay")
	}
	x := skin[52:84]
	y, _ := curve25519.X25519(ysec[:], curve25519.Basepoint)
	xy, err := curve25519.X25519(ysec[:], x)
	if err != nil {
		t.Fatal(err)
	}
	xb, err := curve25519.X25519(bsec[:], x)
	if err != nil {
		t.Fatal(err)
	}
	var secret []byte
	for _, p := range [][]byte{xy, xb, id[:], bpub[:], x, y, []byte(ntorProtoID)} {
		secret = append(secret, p...)
	}
	verify := hmacSHA256(ntorTVerify, secret)
	var authIn []byte
	for _, p := range [][]byte{verify, id[:], bpub[:], y, x, []byte(ntorProtoID + "Server")} {
		authIn = append(authIn, p...)
	}
	reply = append(append([]byte{}, y...), hmacSHA256(ntorTMac, authIn)...)
	k, err := KDFRFC5869(secret, ntorTKey, ntorMExpand, KeyMaterialLen)
	if err != nil {
		t.Fatal(err)
	}
	km, err = KeyMaterialFromRFC5869(k)
	if err != nil {
		t.Fatal(err)
	}
	return reply, km
}

func arr32(b []byte) (a [32]byte) { copy(a[:], b); return }

// Vector from Arti's tor-proto crypto/handshake/ntor.rs (testvec).
func TestNtorVector(t *testing.T) {
	bsec := arr32(unhex(t, "4820544f4c4420594f5520444f474954204b454550532048415050454e494e47"))
	bpub := arr32(unhex(t, "ccbc8541904d18af08753eae967874749e6149f873de937f57f8fd903a21c471"))
	xsec := arr32(unhex(t, "706f6461792069207075742e2e2e2e2e2e2e2e4a454c4c59206f6e2074686973"))
	ysec := arr32(unhex(t, "70686520737175697272656c2e2e2e2e2e2e2e2e686173206869732067616d65"))
	var id [20]byte
	copy(id[:], unhex(t, "69546f6c64596f7541626f75745374616972732e"))
	wantSkin := unhex(t, "69546f6c64596f7541626f75745374616972732eccbc8541904d18af08753eae967874749e6149f873de937f57f8fd903a21c471e65dfdbef8b2635837fe2cebc086a8096eae3213e6830dc407516083d412b078")
	wantReply := unhex(t, "390480a14362761d6aec1fea840f6e9e928fb2adb7b25c670be1045e35133a371cbdf68b89923e1f85e8e18ee6e805ea333fe4849c790ffd2670bd80fec95cc8")
	wantKeys := unhex(t, "0c62dee7f48893370d0ef896758d35729867beef1a5121df80e00f79ed349af39b51cae125719182f19d932a667dae1afbf2e336e6910e7822223e763afad0a13342157969dc6b79")

	c, skin, err := newNtorWithKey(id, bpub, xsec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(skin[:], wantSkin) {
		t.Fatalf("onionskin = %x, want %x", skin, wantSkin)
	}
	reply, skm := ntorServer(t, skin[:], id, bsec, bpub, ysec)
	if !bytes.Equal(reply, wantReply) {
		t.Fatalf("server reply = %x, want %x", reply, wantReply)
	}
	km, err := c.Finish(reply)
	if err != nil {
		t.Fatal(err)
	}
	got := append(append(append(append([]byte{}, km.Df[:]...), km.Db[:]...), km.Kf[:]...), km.Kb[:]...)
	if !bytes.Equal(got, wantKeys) {
		t.Fatalf("keys = %x, want %x", got, wantKeys)
	}
	if *km != *skm {
		t.Fatal("client and server key material differ")
	}
}

func TestNtorRejects(t *testing.T) {
	var bsec, ysec [32]byte
	rand.Read(bsec[:])
	rand.Read(ysec[:])
	bpub := arr32(must(curve25519.X25519(bsec[:], curve25519.Basepoint)))
	id := [20]byte{1, 2, 3}
	for i := 0; i < 64; i++ {
		c, skin, err := NewNtor(rand.Reader, id, bpub)
		if err != nil {
			t.Fatal(err)
		}
		reply, _ := ntorServer(t, skin[:], id, bsec, bpub, ysec)
		bad := append([]byte{}, reply...)
		bad[i] ^= 0x40
		if _, err := c.Finish(bad); err == nil {
			t.Fatalf("tampered byte %d accepted", i)
		}
	}
	c, _, _ := NewNtor(rand.Reader, id, bpub)
	if _, err := c.Finish(make([]byte, 64)); err == nil {
		t.Error("all-zero Y accepted")
	}
	if _, err := c.Finish(make([]byte, 63)); err == nil {
		t.Error("short reply accepted")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestFastRoundTrip(t *testing.T) {
	c, x, err := NewFast(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var y [HashLen]byte
	rand.Read(y[:])
	k, _ := KDFTor(append(x[:], y[:]...), KeyMaterialLen)
	reply := append(append([]byte{}, y[:]...), k[:HashLen]...)
	km, err := c.Finish(reply)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(km.Df[:], k[20:40]) || !bytes.Equal(km.Db[:], k[40:60]) ||
		!bytes.Equal(km.Kf[:], k[60:76]) || !bytes.Equal(km.Kb[:], k[76:92]) {
		t.Fatal("key material split wrongly")
	}
	c2, _, _ := NewFast(rand.Reader)
	if _, err := c2.Finish(reply); err == nil {
		t.Fatal("CREATED_FAST with wrong KH accepted")
	}
	if _, err := c2.Finish(reply[:39]); err == nil {
		t.Fatal("short CREATED_FAST accepted")
	}
}

func FuzzNtorFinish(f *testing.F) {
	f.Add(make([]byte, 64))
	f.Add([]byte{1, 2, 3})
	bpub := sha256.Sum256([]byte("B"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		c, _, err := newNtorWithKey([20]byte{}, bpub, sha256.Sum256([]byte("x")))
		if err != nil {
			t.Skip()
		}
		if _, err := c.Finish(reply); err == nil {
			t.Fatalf("random reply %x accepted", reply)
		}
	})
}

func FuzzFastFinish(f *testing.F) {
	f.Add(make([]byte, 40))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, reply []byte) {
		c := &FastClient{x: [20]byte{1}}
		if _, err := c.Finish(reply); err == nil {
			t.Fatalf("random reply %x accepted", reply)
		}
	})
}
