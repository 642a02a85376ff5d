package relaycrypto

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha3"
	"encoding/hex"
	"hash"
	"os"
	"strconv"
	"strings"
	"testing"

	"tinytor/tor/circuit/handshake"
)

// Key material of C tor's test_relaycrypt.c: Df | Db | Kf | Kb.
var vectorKeys = []string{
	"    'My public key is in this signed x509 object', said Tom assertively.",
	"'Let's chart the pedal phlanges in the tomb', said Tom cryptographically",
	"     'Segmentation fault bugs don't _just happen_', said Tom seethingly.",
}

func layerFrom72(t testing.TB, k string) *Layer {
	t.Helper()
	if len(k) != 72 {
		t.Fatalf("key material of %d bytes", len(k))
	}
	b := []byte(k)
	l, err := NewLayer(sha1.New, b[0:20], b[20:40], b[40:56], b[56:72])
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestTor1Vectors checks the client's outbound encryption against cells
// produced by C tor (see testdata/cell_crypt.txt).
func TestTor1Vectors(t *testing.T) {
	f, err := os.Open("testdata/cell_crypt.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[int][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4096)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		fields := strings.Fields(line)
		n, _ := strconv.Atoi(fields[0])
		b, err := hex.DecodeString(fields[1])
		if err != nil || len(b) != PayloadLen {
			t.Fatalf("bad vector line %q", line[:20])
		}
		want[n] = b
	}
	if len(want) != 8 {
		t.Fatalf("read %d vectors, want 8", len(want))
	}
	var path Path
	for _, k := range vectorKeys {
		path.Add(layerFrom72(t, k))
	}
	xof := sha3.NewSHAKE256()
	xof.Write([]byte("'You mean to tell me that there's a version of Sha-3 with no limit on the output length?', said Tom shakily."))
	checked := 0
	for n := 0; n <= 50; n++ {
		var p Payload
		p[0] = 2 // DATA
		p[4] = 1 // stream 1
		p[9] = 1 // length 498
		p[10] = 242
		xof.Read(p[11:])
		if err := path.Encrypt(&p, 2); err != nil {
			t.Fatal(err)
		}
		if w, ok := want[n]; ok {
			checked++
			if !bytes.Equal(p[:], w) {
				t.Fatalf("cell %d:\n got %x\nwant %x", n, p, w)
			}
		}
	}
	if checked != len(want) {
		t.Fatalf("checked %d vectors", checked)
	}
}

// relayHops builds client and relay views of the same n-hop keys.
func relayHops(t testing.TB, n int) (*Path, []*Layer) {
	t.Helper()
	var path Path
	var relays []*Layer
	for i := 0; i < n; i++ {
		var km handshake.KeyMaterial
		rand.Read(km.Df[:])
		rand.Read(km.Db[:])
		rand.Read(km.Kf[:])
		rand.Read(km.Kb[:])
		path.Add(NewTor1(&km))
		relays = append(relays, NewTor1(&km))
	}
	return &path, relays
}

func randomCell(cmd byte) *Payload {
	var p Payload
	rand.Read(p[11:])
	p[0] = cmd
	p[1], p[2] = 0, 0
	p[3], p[4] = 0, 7
	clear(p[5:9])
	p[9], p[10] = 0, 100
	return &p
}

func TestRoundTrip(t *testing.T) {
	path, relays := relayHops(t, 3)
	for round := 0; round < 200; round++ {
		for target := 0; target < 3; target++ {
			// Outbound: client to target.
			orig := randomCell(2)
			p := *orig
			if err := path.Encrypt(&p, target); err != nil {
				t.Fatal(err)
			}
			for i := 0; i <= target; i++ {
				rec := relays[i].DecryptForward(&p)
				if rec != (i == target) {
					t.Fatalf("round %d: hop %d recognized=%v for a cell to hop %d", round, i, rec, target)
				}
			}
			if !bytes.Equal(p[11:], orig[11:]) || p[0] != orig[0] {
				t.Fatal("outbound cell altered")
			}
			var cd, rd [SendmeDigestLen]byte
			path.Layer(target).ForwardDigest(&cd)
			relays[target].ForwardDigest(&rd)
			if cd != rd {
				t.Fatal("forward SENDME digests differ")
			}
			// Inbound: target to client.
			orig = randomCell(2)
			p = *orig
			relays[target].OriginateBackward(&p)
			for i := target - 1; i >= 0; i-- {
				relays[i].EncryptBackward(&p)
			}
			hop, err := path.Decrypt(&p)
			if err != nil || hop != target {
				t.Fatalf("round %d: inbound from hop %d decrypted as hop %d (%v)", round, target, hop, err)
			}
			if !bytes.Equal(p[11:], orig[11:]) {
				t.Fatal("inbound cell altered")
			}
			path.Layer(target).BackwardDigest(&cd)
			relays[target].BackwardDigest(&rd)
			if cd != rd {
				t.Fatal("backward SENDME digests differ")
			}
		}
	}
}

func TestTamperedCellRejected(t *testing.T) {
	path, relays := relayHops(t, 2)
	p := randomCell(2)
	relays[1].OriginateBackward(p)
	relays[0].EncryptBackward(p)
	p[100] ^= 1
	if _, err := path.Decrypt(p); err == nil {
		t.Fatal("tampered cell recognized")
	}
}

func TestOtherDigests(t *testing.T) {
	// The onion service hop: SHA3-256 and AES-256.
	k := make([]byte, 32*4)
	rand.Read(k)
	c, err := NewLayer(func() hashT { return sha3.New256() }, k[0:32], k[32:64], k[64:96], k[96:128])
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewLayer(func() hashT { return sha3.New256() }, k[0:32], k[32:64], k[64:96], k[96:128])
	p := randomCell(2)
	c.Originate(p)
	if !r.DecryptForward(p) {
		t.Fatal("SHA3 layer did not recognize its own cell")
	}
	if _, err := NewLayer(sha1.New, nil, nil, []byte{1}, make([]byte, 16)); err == nil {
		t.Fatal("1-byte AES key accepted")
	}
}

func BenchmarkRelayDecrypt(b *testing.B) {
	path, relays := relayHops(b, 3)
	p := randomCell(2)
	b.ReportAllocs()
	b.SetBytes(PayloadLen)
	for b.Loop() {
		// The relays' side of each cell is part of the loop; it allocates
		// nothing either.
		relays[2].OriginateBackward(p)
		relays[1].EncryptBackward(p)
		relays[0].EncryptBackward(p)
		if hop, err := path.Decrypt(p); hop != 2 || err != nil {
			b.Fatal("not recognized")
		}
	}
}

func BenchmarkRelayEncrypt(b *testing.B) {
	path, _ := relayHops(b, 3)
	p := randomCell(2)
	b.ReportAllocs()
	b.SetBytes(PayloadLen)
	for b.Loop() {
		clear(p[1:3])
		path.Encrypt(p, 2)
	}
}

func TestDecryptAllocs(t *testing.T) {
	path, relays := relayHops(t, 3)
	p := randomCell(2)
	allocs := testing.AllocsPerRun(100, func() {
		relays[2].OriginateBackward(p)
		relays[1].EncryptBackward(p)
		relays[0].EncryptBackward(p)
		if _, err := path.Decrypt(p); err != nil {
			t.Fatal(err)
		}
		var d [SendmeDigestLen]byte
		path.Layer(2).BackwardDigest(&d)
	})
	if allocs != 0 {
		t.Fatalf("decrypt path allocates %v times per cell", allocs)
	}
}

type hashT = hash.Hash
