package handshake

import (
	"bytes"
	"crypto/rand"
	"crypto/sha3"
	"crypto/subtle"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/crypto/curve25519"
)

// ntorV3Relay is the relay side of ntor v3, for tests only.
type ntorV3Relay struct {
	id         [32]byte // Ed25519 identity
	bsec, bpub [32]byte // ntor onion key
}

func newNtorV3Relay(t testing.TB) ntorV3Relay {
	t.Helper()
	var r ntorV3Relay
	rand.Read(r.id[:])
	rand.Read(r.bsec[:])
	r.bpub = arr32(must(curve25519.X25519(r.bsec[:], curve25519.Basepoint)))
	return r
}

// serve checks the client handshake skin, decrypts its message CM, and
// answers with the message respond(CM) using the ephemeral secret ysec. It
// returns CM, the server handshake and the first n KEYSTREAM bytes.
func (r ntorV3Relay) serve(skin []byte, ysec [32]byte, ver []byte, n int, respond func(cm []byte) []byte) (cm, reply, keys []byte, err error) {
	if len(skin) < NtorV3ClientOverhead {
		return nil, nil, nil, errors.New("server: short onionskin")
	}
	if !bytes.Equal(skin[0:32], r.id[:]) || !bytes.Equal(skin[32:64], r.bpub[:]) {
		return nil, nil, nil, errors.New("server: onionskin is not for this relay")
	}
	x := skin[64:96]
	encCM := skin[96 : len(skin)-32]
	mac := skin[len(skin)-32:]
	xb, err := curve25519.X25519(r.bsec[:], x)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("server: EXP(X,b): %w", err)
	}
	var k1 [64]byte
	xof := sha3.NewSHAKE256()
	encapXOF(xof, ntorV3TMsgKDF)
	for _, p := range [][]byte{xb, r.id[:], x, r.bpub[:], []byte(ntorV3ProtoID)} {
		xof.Write(p)
	}
	encapXOF(xof, ver)
	xof.Read(k1[:])
	h := sha3.New256()
	encapHash(h, ntorV3TMsgMAC)
	encapHash(h, k1[32:])
	h.Write(skin[:len(skin)-32])
	if subtle.ConstantTimeCompare(h.Sum(nil), mac) != 1 {
		return nil, nil, nil, errors.New("server: client MAC does not match")
	}
	cm = make([]byte, len(encCM))
	if err := aes256CTR(k1[:32], cm, encCM); err != nil {
		return nil, nil, nil, err
	}
	sm := respond(cm)

	y := must(curve25519.X25519(ysec[:], curve25519.Basepoint))
	xy, err := curve25519.X25519(ysec[:], x)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("server: EXP(X,y): %w", err)
	}
	hs, hv := sha3.New256(), sha3.New256()
	encapHash(hs, ntorV3TKeySeed)
	encapHash(hv, ntorV3TVerify)
	for _, p := range [][]byte{xy, xb, r.id[:], r.bpub[:], x, y, []byte(ntorV3ProtoID)} {
		hs.Write(p)
		hv.Write(p)
	}
	encapHash(hs, ver)
	encapHash(hv, ver)
	keySeed, verify := hs.Sum(nil), hv.Sum(nil)

	fin := sha3.NewSHAKE256()
	encapXOF(fin, ntorV3TFinal)
	fin.Write(keySeed)
	encKey := make([]byte, 32)
	fin.Read(encKey)
	keys = make([]byte, n)
	fin.Read(keys)
	encSM := make([]byte, len(sm))
	if err := aes256CTR(encKey, encSM, sm); err != nil {
		return nil, nil, nil, err
	}
	ha := sha3.New256()
	encapHash(ha, ntorV3TAuth)
	for _, p := range [][]byte{verify, r.id[:], r.bpub[:], y, x, mac} {
		ha.Write(p)
	}
	encapHash(ha, encSM)
	ha.Write([]byte(ntorV3ProtoID + "Server"))
	reply = append(append(append([]byte{}, y...), ha.Sum(nil)...), encSM...)
	return cm, reply, keys, nil
}

func fixedReply(b []byte) func([]byte) []byte { return func([]byte) []byte { return b } }

// The vector of proposal 332 X.2, also in C tor's src/test/test_ntor_v3.c
// (test_ntor3_testvecs) and Arti's ntor_v3.rs (test_ntor3_testvec).
func TestNtorV3Vector(t *testing.T) {
	r := ntorV3Relay{
		id:   arr32(unhex(t, "9fad2af287ef942632833d21f946c6260c33fae6172b60006e86e4a6911753a2")),
		bsec: arr32(unhex(t, "4051daa5921cfa2a1c27b08451324919538e79e788a81b38cbed097a5dff454a")),
		bpub: arr32(unhex(t, "f8307a2bc1870b00b828bb74dbb8fd88e632a6375ab3bcd1ae706aaa8b6cdd1d")),
	}
	xsec := arr32(unhex(t, "b825a3719147bcbe5fb1d0b0fcb9c09e51948048e2e3283d2ab7b45b5ef38b49"))
	wantX := unhex(t, "252fe9ae91264c91d4ecb8501f79d0387e34ad8ca0f7c995184f7d11d5da4f46")
	ysec := arr32(unhex(t, "4865a5b7689dafd978f529291c7171bc159be076b92186405d13220b80e2a053"))
	wantY := unhex(t, "4bf4814326fdab45ad5184f5518bd7fae25dc59374062698201a50a22954246d")
	cm := unhex(t, "68656c6c6f20776f726c64") // "hello world"
	ver := unhex(t, "78797a7a79")            // "xyzzy"
	sm := unhex(t, "486f6c61204d756e646f")   // "Hola Mundo"
	wantSkin := unhex(t, `9fad2af287ef942632833d21f946c6260c33fae6172b60006e86e4a6911753a2
		f8307a2bc1870b00b828bb74dbb8fd88e632a6375ab3bcd1ae706aaa8b6cdd1d
		252fe9ae91264c91d4ecb8501f79d0387e34ad8ca0f7c995184f7d11d5da4f46
		3bebd9151fd3b47c180abc
		9e044d53565f04d82bbb3bebed3d06cea65db8be9c72b68cd461942088502f67`)
	wantReply := unhex(t, `4bf4814326fdab45ad5184f5518bd7fae25dc59374062698201a50a22954246d
		2fc5f8773ca824542bc6cf6f57c7c29bbf4e5476461ab130c5b18ab0a9127665
		1202c3e1e87c0d32054c`)
	wantKeys := unhex(t, `9c19b631fd94ed86a817e01f6c80b0743a43f5faebd39cfaa8b00fa8bcc65c3b
		feaa403d91acbd68a821bf6ee8504602b094a254392a07737d5662768c7a9fb1
		b2814bb34780eaee6e867c773e28c212ead563e98a1cd5d5b4576f5ee61c59bd
		e025ff2851bb19b721421694f263818e3531e43a9e4e3e2c661e2ad547d8984c
		aa28ebecd3e4525452299be26b9185a20a90ce1eac20a91f2832d731b54502b0
		9749b5a2a2949292f8cfcbeffb790c7790ed935a9d251e7e336148ea83b063a5
		618fcff674a44581585fd22077ca0e52c59a24347a38d1a1ceebddbf238541f2
		26b8f88d0fb9c07a1bcd2ea764bbbb5dacdaf5312a14c0b9e4f06309b0333b4a`)
	if y := must(curve25519.X25519(ysec[:], curve25519.Basepoint)); !bytes.Equal(y, wantY) {
		t.Fatalf("Y = %x, want %x", y, wantY)
	}

	newClient := func() (*NtorV3Client, []byte) {
		c, skin, err := newNtorV3WithKey(r.id, r.bpub, xsec, ver, cm)
		if err != nil {
			t.Fatal(err)
		}
		return c, skin
	}
	c, skin := newClient()
	if !bytes.Equal(c.pubX[:], wantX) {
		t.Fatalf("X = %x, want %x", c.pubX, wantX)
	}
	if !bytes.Equal(skin, wantSkin) {
		t.Fatalf("client handshake =\n%x\nwant\n%x", skin, wantSkin)
	}
	gotCM, reply, skeys, err := r.serve(skin, ysec, ver, 256, fixedReply(sm))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotCM, cm) {
		t.Fatalf("server decrypted CM %x, want %x", gotCM, cm)
	}
	if !bytes.Equal(reply, wantReply) {
		t.Fatalf("server handshake =\n%x\nwant\n%x", reply, wantReply)
	}
	if !bytes.Equal(skeys, wantKeys) {
		t.Fatalf("server KEYSTREAM =\n%x\nwant\n%x", skeys, wantKeys)
	}

	keys, gotSM, err := c.FinishKeys(reply, 256)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotSM, sm) {
		t.Fatalf("client decrypted SM %x, want %x", gotSM, sm)
	}
	if !bytes.Equal(keys, wantKeys) {
		t.Fatalf("client KEYSTREAM =\n%x\nwant\n%x", keys, wantKeys)
	}

	// Finish splits the start of the same KEYSTREAM as C tor does:
	// Df | Db | Kf | Kb, then KH (the nonce).
	c, _ = newClient()
	km, gotSM, err := c.Finish(reply)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotSM, sm) {
		t.Fatalf("Finish: SM %x, want %x", gotSM, sm)
	}
	for _, f := range []struct {
		name string
		got  []byte
		off  int
	}{{"Df", km.Df[:], 0}, {"Db", km.Db[:], 20}, {"Kf", km.Kf[:], 40}, {"Kb", km.Kb[:], 56}, {"KH", km.KH[:], 72}} {
		if want := wantKeys[f.off : f.off+len(f.got)]; !bytes.Equal(f.got, want) {
			t.Errorf("%s = %x, want %x", f.name, f.got, want)
		}
	}
}

func TestNtorV3RoundTrip(t *testing.T) {
	r := newNtorV3Relay(t)
	for _, tc := range []struct {
		name    string
		req     NtorV3Request
		sm      []byte
		want    NtorV3Reply
		skinLen int
	}{
		{"plain", NtorV3Request{}, []byte{0}, NtorV3Reply{}, NtorV3ClientOverhead + 1},
		{"cc", NtorV3Request{CongestionControl: true}, []byte{1, ExtCCResponse, 1, 31},
			NtorV3Reply{CongestionControl: true, SendmeInc: 31}, NtorV3ClientOverhead + 3},
		{"cc refused", NtorV3Request{CongestionControl: true}, []byte{0}, NtorV3Reply{}, NtorV3ClientOverhead + 3},
		{"cc+subproto", NtorV3Request{CongestionControl: true, Subprotocols: []Subproto{{ProtoRelay, 6}}},
			[]byte{2, 9, 1, 0xff, ExtCCResponse, 1, 33}, NtorV3Reply{CongestionControl: true, SendmeInc: 33}, NtorV3ClientOverhead + 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := tc.req.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			c, skin, err := NewNtorV3(rand.Reader, r.id, r.bpub, msg)
			if err != nil {
				t.Fatal(err)
			}
			if len(skin) != tc.skinLen {
				t.Errorf("client handshake of %d bytes, want %d", len(skin), tc.skinLen)
			}
			var ysec [32]byte
			rand.Read(ysec[:])
			cm, reply, skeys, err := r.serve(skin, ysec, []byte(NtorV3CircuitVerification), KeyMaterialLen, fixedReply(tc.sm))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(cm, msg) {
				t.Fatalf("relay got CM %x, want %x", cm, msg)
			}
			if len(reply) != NtorV3ServerOverhead+len(tc.sm) {
				t.Errorf("server handshake of %d bytes, want %d", len(reply), NtorV3ServerOverhead+len(tc.sm))
			}
			km, sm, err := c.Finish(reply)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sm, tc.sm) {
				t.Fatalf("SM = %x, want %x", sm, tc.sm)
			}
			wantKM, _ := KeyMaterialFromRFC5869(skeys)
			if *km != *wantKM {
				t.Fatal("client and relay key material differ")
			}
			got, err := ParseNtorV3Reply(sm, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("reply = %+v, want %+v", got, tc.want)
			}
			if _, _, err := c.Finish(reply); err == nil {
				t.Fatal("second Finish succeeded")
			}
		})
	}
}

func TestNtorV3Rejects(t *testing.T) {
	r := newNtorV3Relay(t)
	ver := []byte(NtorV3CircuitVerification)
	var ysec [32]byte
	rand.Read(ysec[:])
	sm := []byte{1, ExtCCResponse, 1, 31}
	msg := []byte{1, ExtCCRequest, 0}

	_, skin, err := NewNtorV3(rand.Reader, r.id, r.bpub, msg)
	if err != nil {
		t.Fatal(err)
	}
	_, reply, _, err := r.serve(skin, ysec, ver, 0, fixedReply(sm))
	if err != nil {
		t.Fatal(err)
	}
	for i := range reply {
		c, skin, err := NewNtorV3(rand.Reader, r.id, r.bpub, msg)
		if err != nil {
			t.Fatal(err)
		}
		_, reply, _, err := r.serve(skin, ysec, ver, 0, fixedReply(sm))
		if err != nil {
			t.Fatal(err)
		}
		reply[i] ^= 0x40
		if _, _, err := c.Finish(reply); err == nil {
			t.Fatalf("tampered reply byte %d accepted", i)
		}
	}
	// The relay rejects any change to the client handshake (MAC covers
	// ID, B, X and the encrypted message; ID and B are checked directly).
	for i := range skin {
		bad := append([]byte{}, skin...)
		bad[i] ^= 0x02
		if _, _, _, err := r.serve(bad, ysec, ver, 0, fixedReply(sm)); err == nil {
			t.Fatalf("relay accepted tampered onionskin byte %d", i)
		}
	}

	newC := func() (*NtorV3Client, []byte) {
		c, skin, err := NewNtorV3(rand.Reader, r.id, r.bpub, msg)
		if err != nil {
			t.Fatal(err)
		}
		return c, skin
	}
	t.Run("other verification string", func(t *testing.T) {
		c, skin := newC()
		_, reply, _, err := r.serve(skin, ysec, []byte("circuit extenD"), 0, fixedReply(sm))
		if err == nil {
			_, _, err = c.Finish(reply)
			t.Fatalf("relay with another VER accepted the client MAC; Finish: %v", err)
		}
	})
	t.Run("reply for another client", func(t *testing.T) {
		c, _ := newC()
		_, skin2 := newC()
		_, reply, _, err := r.serve(skin2, ysec, ver, 0, fixedReply(sm))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Finish(reply); !errors.Is(err, ErrNtorV3Auth) {
			t.Fatalf("got %v, want ErrNtorV3Auth", err)
		}
	})
	t.Run("truncated and extended reply", func(t *testing.T) {
		for _, n := range []int{-1, +1} {
			c, skin := newC()
			_, reply, _, err := r.serve(skin, ysec, ver, 0, fixedReply(sm))
			if err != nil {
				t.Fatal(err)
			}
			if n < 0 {
				reply = reply[:len(reply)-1]
			} else {
				reply = append(reply, 0) // cell padding must not be passed
			}
			if _, _, err := c.Finish(reply); !errors.Is(err, ErrNtorV3Auth) {
				t.Fatalf("reply changed by %d bytes: got %v, want ErrNtorV3Auth", n, err)
			}
		}
	})
	t.Run("short reply", func(t *testing.T) {
		c, _ := newC()
		if _, _, err := c.Finish(make([]byte, NtorV3ServerOverhead-1)); err == nil {
			t.Fatal("short reply accepted")
		}
	})
	t.Run("all-zero Y", func(t *testing.T) {
		c, _ := newC()
		if _, _, err := c.Finish(make([]byte, NtorV3ServerOverhead+1)); err == nil {
			t.Fatal("all-zero Y accepted")
		}
	})
	t.Run("unknown identity", func(t *testing.T) {
		if _, _, err := NewNtorV3(rand.Reader, [32]byte{}, r.bpub, msg); err == nil {
			t.Fatal("all-zero Ed25519 identity accepted")
		}
	})
	t.Run("low-order onion key", func(t *testing.T) {
		if _, _, err := NewNtorV3(rand.Reader, r.id, [32]byte{}, msg); err == nil {
			t.Fatal("all-zero onion key accepted")
		}
	})
	t.Run("rand failure", func(t *testing.T) {
		if _, _, err := NewNtorV3(bytes.NewReader(make([]byte, 31)), r.id, r.bpub, msg); err == nil {
			t.Fatal("short random source accepted")
		}
	})
}

func TestNtorV3RequestMarshal(t *testing.T) {
	for _, tc := range []struct {
		req  NtorV3Request
		want []byte
	}{
		{NtorV3Request{}, []byte{0}},
		// C tor's congestion_control_build_ext_request.
		{NtorV3Request{CongestionControl: true}, []byte{1, 1, 0}},
		{NtorV3Request{CongestionControl: true, Subprotocols: []Subproto{{ProtoRelay, 6}}}, []byte{2, 1, 0, 3, 2, 2, 6}},
		// Sorted and deduplicated.
		{NtorV3Request{Subprotocols: []Subproto{{ProtoRelay, 6}, {ProtoFlowCtrl, 2}, {ProtoRelay, 5}, {ProtoRelay, 6}}},
			[]byte{1, 3, 6, 2, 5, 2, 6, 11, 2}},
	} {
		got, err := tc.req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%+v: %x, want %x", tc.req, got, tc.want)
		}
	}
	many := make([]Subproto, 128)
	for i := range many {
		many[i] = Subproto{Protocol: byte(i), Capability: 1}
	}
	if _, err := (NtorV3Request{Subprotocols: many}).Marshal(); err == nil {
		t.Error("128 subprotocol capabilities (256 bytes) accepted")
	}
}

func TestParseExts(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want []Ext
		err  string
	}{
		{[]byte{0}, nil, ""},
		{[]byte{1, 1, 0}, []Ext{{1, []byte{}}}, ""},
		{[]byte{2, 2, 1, 31, 200, 2, 'h', 'i'}, []Ext{{2, []byte{31}}, {200, []byte("hi")}}, ""},
		{nil, nil, "empty"},
		{[]byte{1}, nil, "extension 1 of 1 at byte 1: header needs 2 bytes, 0 left"},
		{[]byte{1, 2}, nil, "header needs 2 bytes, 1 left"},
		{[]byte{1, 2, 1}, nil, "extension 1 of 1 (type 2) at byte 1: body of 1 bytes, 0 left"},
		{[]byte{2, 1, 0}, nil, "extension 2 of 2 at byte 3"},
		{[]byte{0, 0}, nil, "1 bytes after the 0 extensions"},
		{[]byte{1, 1, 0, 9}, nil, "1 bytes after the 1 extensions"},
	} {
		got, err := ParseExts(tc.in)
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrMalformedExt) || !bytes.Contains([]byte(err.Error()), []byte(tc.err)) {
				t.Errorf("ParseExts(%x) error %v, want one containing %q wrapping ErrMalformedExt", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseExts(%x): %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("ParseExts(%x) = %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i].Type != tc.want[i].Type || !bytes.Equal(got[i].Body, tc.want[i].Body) {
				t.Errorf("ParseExts(%x)[%d] = %v, want %v", tc.in, i, got[i], tc.want[i])
			}
		}
		back, err := AppendExts(nil, got)
		if err != nil || !bytes.Equal(back, tc.in) {
			t.Errorf("AppendExts(ParseExts(%x)) = %x, %v", tc.in, back, err)
		}
	}
	if _, err := AppendExts(nil, []Ext{{1, make([]byte, 256)}}); err == nil {
		t.Error("AppendExts accepted a 256-byte body")
	}
	if _, err := AppendExts(nil, make([]Ext, 256)); err == nil {
		t.Error("AppendExts accepted 256 extensions")
	}
	if b, ok := FindExt([]Ext{{3, []byte{1}}, {2, []byte{2}}, {2, []byte{3}}}, 2); !ok || !bytes.Equal(b, []byte{2}) {
		t.Errorf("FindExt = %x %v, want the first of the type", b, ok)
	}
	if _, ok := FindExt(nil, 2); ok {
		t.Error("FindExt found a type in an empty list")
	}
}

func TestParseSubprotoRequest(t *testing.T) {
	got, err := ParseSubprotoRequest([]byte{2, 5, 2, 6, 11, 2})
	if err != nil || len(got) != 3 || got[0] != (Subproto{2, 5}) || got[2] != (Subproto{11, 2}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := ParseSubprotoRequest(nil); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v, %v", got, err)
	}
	for _, bad := range [][]byte{{2}, {2, 6, 2}, {2, 6, 2, 5}, {2, 6, 2, 6}, {11, 2, 2, 6}} {
		if _, err := ParseSubprotoRequest(bad); !errors.Is(err, ErrMalformedExt) {
			t.Errorf("ParseSubprotoRequest(%x): %v, want ErrMalformedExt", bad, err)
		}
	}
}

func TestParseNtorV3Reply(t *testing.T) {
	cc := NtorV3Request{CongestionControl: true}
	for _, tc := range []struct {
		name string
		sm   []byte
		req  NtorV3Request
		want NtorV3Reply
		err  error
	}{
		{"no extensions", []byte{0}, cc, NtorV3Reply{}, nil},
		{"cc", []byte{1, 2, 1, 31}, cc, NtorV3Reply{true, 31}, nil},
		{"cc, unknown ignored", []byte{2, 7, 0, 2, 1, 30}, cc, NtorV3Reply{true, 30}, nil},
		{"first cc counts", []byte{2, 2, 1, 31, 2, 1, 0}, cc, NtorV3Reply{true, 31}, nil},
		{"extra cc body bytes ignored", []byte{1, 2, 2, 31, 9}, cc, NtorV3Reply{true, 31}, nil},
		{"unsolicited", []byte{1, 2, 1, 31}, NtorV3Request{}, NtorV3Reply{}, ErrUnsolicitedCC},
		{"empty cc body", []byte{1, 2, 0}, cc, NtorV3Reply{}, ErrMalformedExt},
		{"sendme_inc 0", []byte{1, 2, 1, 0}, cc, NtorV3Reply{}, ErrMalformedExt},
		{"empty message", []byte{}, cc, NtorV3Reply{}, ErrMalformedExt},
		{"trailing byte", []byte{0, 0}, cc, NtorV3Reply{}, ErrMalformedExt},
	} {
		got, err := ParseNtorV3Reply(tc.sm, tc.req)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: error %v, want %v", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestSendmeIncAcceptable(t *testing.T) {
	for _, tc := range []struct {
		got       uint8
		consensus int
		ok        bool
	}{
		{31, 31, true}, {15, 31, true}, {14, 31, false}, {62, 31, true}, {63, 31, false},
		{0, 31, false}, {0, 0, false}, {1, 1, true}, {2, 1, true}, {3, 1, false}, {255, 200, true},
	} {
		if ok := SendmeIncAcceptable(tc.got, tc.consensus); ok != tc.ok {
			t.Errorf("SendmeIncAcceptable(%d, %d) = %v, want %v", tc.got, tc.consensus, ok, tc.ok)
		}
	}
}

func FuzzNtorV3Finish(f *testing.F) {
	f.Add(make([]byte, 64))
	f.Add(make([]byte, 70))
	f.Add([]byte{1, 2, 3})
	id := sha3.Sum256([]byte("ID"))
	b := sha3.Sum256([]byte("B"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		c, _, err := newNtorV3WithKey(id, b, sha3.Sum256([]byte("x")), []byte(NtorV3CircuitVerification), []byte{0})
		if err != nil {
			t.Skip()
		}
		if _, _, err := c.Finish(reply); err == nil {
			t.Fatalf("random reply %x accepted", reply)
		}
	})
}

func FuzzParseExts(f *testing.F) {
	for _, s := range [][]byte{{0}, {1, 1, 0}, {1, 2, 1, 31}, {2, 1, 0, 3, 2, 2, 6}, {3, 1}, {}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		exts, err := ParseExts(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedExt) {
				t.Fatalf("error %v does not wrap ErrMalformedExt", err)
			}
			return
		}
		back, err := AppendExts(nil, exts)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("re-encoding %x gives %x", b, back)
		}
		for _, req := range []NtorV3Request{{}, {CongestionControl: true}} {
			r, err := ParseNtorV3Reply(b, req)
			if err == nil && r.CongestionControl && (r.SendmeInc == 0 || !req.CongestionControl) {
				t.Fatalf("reply %+v accepted for request %+v", r, req)
			}
		}
		if body, ok := FindExt(exts, ExtSubprotoRequest); ok {
			if reqs, err := ParseSubprotoRequest(body); err == nil {
				back, err := AppendSubprotoRequest(nil, reqs)
				if err != nil || !bytes.Equal(back, body) {
					t.Fatalf("subprotocol request %x re-encodes as %x, %v", body, back, err)
				}
			}
		}
	})
}

func FuzzParseSubprotoRequest(f *testing.F) {
	f.Add([]byte{2, 6})
	f.Add([]byte{2, 6, 2, 5})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		reqs, err := ParseSubprotoRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedExt) {
				t.Fatalf("error %v does not wrap ErrMalformedExt", err)
			}
			return
		}
		back, err := AppendSubprotoRequest(nil, reqs)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("%x re-encodes as %x, %v", b, back, err)
		}
	})
}

// repeatReader yields the same 32 bytes for every read, so that every
// handshake of a benchmark uses the same x and one relay reply fits all.
type repeatReader [32]byte

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], r[:])
	}
	return n, nil
}

// BenchmarkNtorV3Client measures the client side of one ntor v3 circuit
// handshake with a congestion control request: NewNtorV3 and Finish.
func BenchmarkNtorV3Client(b *testing.B) {
	r := newNtorV3Relay(b)
	var rr repeatReader
	rand.Read(rr[:])
	msg, _ := NtorV3Request{CongestionControl: true}.Marshal()
	_, skin, err := NewNtorV3(&rr, r.id, r.bpub, msg)
	if err != nil {
		b.Fatal(err)
	}
	var ysec [32]byte
	rand.Read(ysec[:])
	_, reply, _, err := r.serve(skin, ysec, []byte(NtorV3CircuitVerification), 0, fixedReply([]byte{1, ExtCCResponse, 1, 31}))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("create+finish", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, _, err := NewNtorV3(&rr, r.id, r.bpub, msg)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := c.Finish(reply); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("create", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := NewNtorV3(&rr, r.id, r.bpub, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	// For comparison: the ntor (v1) client, create and finish.
	b.Run("ntor-v1 create+finish", func(b *testing.B) {
		var rsaID [20]byte
		_, skin1, _ := NewNtor(&rr, rsaID, r.bpub)
		reply1, _ := ntorServer(b, skin1[:], rsaID, r.bsec, r.bpub, ysec)
		b.ReportAllocs()
		for b.Loop() {
			c, _, err := NewNtor(&rr, rsaID, r.bpub)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Finish(reply1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
