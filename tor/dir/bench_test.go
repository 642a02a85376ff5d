package dir

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
)

const benchRelays = 7000

// syntheticConsensus builds a live-sized microdesc consensus (unsigned:
// the signatures are random bytes) and the relays' microdescriptors.
func syntheticConsensus(n int) (cons, mds []byte) {
	r := rand.New(rand.NewPCG(7, 7))
	b64 := base64.RawStdEncoding
	rnd := func(k int) []byte {
		out := make([]byte, k)
		for i := range out {
			out[i] = byte(r.IntN(256))
		}
		return out
	}
	var c, m bytes.Buffer
	c.WriteString("network-status-version 3 microdesc\nvote-status consensus\nconsensus-method 34\n" +
		"valid-after 2026-11-27 02:00:00\nfresh-until 2026-11-27 03:00:00\nvalid-until 2026-11-27 05:00:00\n" +
		"voting-delay 300 300\nclient-versions 0.4.8.1-alpha,0.4.8.12,0.4.9.1-alpha\nserver-versions 0.4.8.12\n" +
		"known-flags Authority BadExit Exit Fast Guard HSDir MiddleOnly NoEdConsensus Running Stable StaleDesc Sybil V2Dir Valid\n" +
		"recommended-client-protocols Cons=2 Desc=2 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4 HSRend=2 Link=4-5 Microdesc=2 Relay=2-4\n" +
		"required-client-protocols Cons=2 Desc=2 FlowCtrl=1 Link=4 Microdesc=2 Relay=2\n" +
		"params AuthDirMaxServersPerAddr=8 CircuitPriorityHalflifeMsec=30000 bwweightscale=10000 cc_alg=2 guard-n-primary-guards=3 hsdir_spread_store=4\n" +
		"shared-rand-previous-value 9 " + b64.EncodeToString(rnd(32)) + "=\n" +
		"shared-rand-current-value 9 " + b64.EncodeToString(rnd(32)) + "=\n")
	auths := make([][20]byte, 9)
	for i := range auths {
		copy(auths[i][:], rnd(20))
		fmt.Fprintf(&c, "dir-source auth%d %X 192.0.2.%d 192.0.2.%d 80 443\ncontact admin%d <a@example.org>\nvote-digest %X\n",
			i, auths[i], i+1, i+1, i, rnd(20))
	}
	ids := make([][20]byte, n)
	for i := range ids {
		copy(ids[i][:], rnd(20))
	}
	// Sort identities, as in a real consensus.
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && bytes.Compare(ids[j-1][:], ids[j][:]) > 0; j-- {
			ids[j-1], ids[j] = ids[j], ids[j-1]
		}
	}
	flags := []string{"Fast Running Stable V2Dir Valid", "Fast Guard HSDir Running Stable V2Dir Valid",
		"Exit Fast Guard HSDir Running Stable V2Dir Valid", "Running Valid", "Fast HSDir Running Stable StaleDesc V2Dir Valid"}
	protos := []string{
		"Conflux=1 Cons=1-2 Desc=1-2 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 HSRend=1-2 Link=1-5 LinkAuth=1,3 Microdesc=1-2 Padding=2 Relay=1-4",
		"Cons=1-2 Desc=1-2 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 HSRend=1-2 Link=1-5 LinkAuth=1,3 Microdesc=1-2 Padding=2 Relay=1-4",
		"Conflux=1 Cons=1-2 Desc=1-4 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 HSRend=1-2 Link=3-5 LinkAuth=3 Microdesc=1-3 Padding=2 Relay=2-6",
	}
	policies := []string{"reject 1-65535", "reject 1-65535", "reject 1-65535",
		"accept 20-23,43,53,79-81,88,110,143,194,220,389,443,464-465,531,543-544,554,563,587,636,706,749,853,873,902-904,981,989-995,1194,1220,1293,1500,1533,1677,1723,1755,1863,2082-2083,2086-2087,2095-2096,2102-2104,3128,3389,3690,4321,4643,5050,5190,5222-5223,5228,5900,6660-6669,6679,6697,8000,8008,8074,8080,8082,8087-8088,8232-8233,8332-8333,8443,8888,9418,9999-10000,11371,19294,19638,50002,64738",
		"reject 25,119,135-139,445,563,1214,4661-4666,6346-6429,6699,6881-6999"}
	for i, id := range ids {
		var onion bytes.Buffer
		onion.WriteString("onion-key\n-----BEGIN RSA PUBLIC KEY-----\n")
		// A well-formed 1024-bit RSA key with exponent 65537, as C tor
		// and ParseMicrodescs require: random modulus with its top bit set.
		der := append([]byte{0x30, 0x81, 0x89, 0x02, 0x81, 0x81, 0x00}, rnd(133)...)
		der[7] |= 0x80
		copy(der[len(der)-5:], []byte{0x02, 0x03, 0x01, 0x00, 0x01})
		key := base64.StdEncoding.EncodeToString(der)
		for len(key) > 64 {
			onion.WriteString(key[:64] + "\n")
			key = key[64:]
		}
		onion.WriteString(key + "\n-----END RSA PUBLIC KEY-----\n")
		md := onion.String() + "ntor-onion-key " + b64.EncodeToString(rnd(32)) + "\n"
		if r.IntN(5) == 0 {
			md += "family"
			for k := 0; k < 2+r.IntN(8); k++ {
				md += fmt.Sprintf(" $%X", rnd(20))
			}
			md += "\n"
		}
		md += "p " + policies[r.IntN(len(policies))] + "\n"
		md += "id ed25519 " + b64.EncodeToString(rnd(32)) + "\n"
		m.WriteString(md)
		sum := sha256Sum([]byte(md))
		fmt.Fprintf(&c, "r relay%013d %s 2026-11-26 12:34:56 %d.%d.%d.%d %d 0\n", i, b64.EncodeToString(id[:]),
			1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254), 443+r.IntN(9000))
		if r.IntN(3) == 0 {
			fmt.Fprintf(&c, "a [2001:db8:%x::%x]:%d\n", r.IntN(65536), r.IntN(65536), 443+r.IntN(9000))
		}
		fmt.Fprintf(&c, "m %s\ns %s\nv Tor 0.4.8.%d\npr %s\nw Bandwidth=%d\n", b64.EncodeToString(sum[:]),
			flags[r.IntN(len(flags))], r.IntN(14), protos[r.IntN(len(protos))], r.IntN(100000))
	}
	c.WriteString("directory-footer\nbandwidth-weights Wbd=0 Wbe=0 Wbg=4142 Wbm=10000 Wdb=10000 Web=10000 Wed=10000 Wee=10000 Weg=10000 Wem=10000 Wgb=10000 Wgd=0 Wgg=5858 Wgm=5858 Wmb=10000 Wmd=0 Wme=0 Wmg=4142 Wmm=10000\n")
	for _, a := range auths {
		fmt.Fprintf(&c, "directory-signature sha256 %X %X\n-----BEGIN SIGNATURE-----\n", a, rnd(20))
		sig := base64.StdEncoding.EncodeToString(rnd(256))
		for len(sig) > 64 {
			c.WriteString(sig[:64] + "\n")
			sig = sig[64:]
		}
		c.WriteString(sig + "\n-----END SIGNATURE-----\n")
	}
	return c.Bytes(), m.Bytes()
}

// retained returns the heap bytes still held by the value build returns
// (input is kept alive throughout so that it is not counted as freed).
func retained(input []byte, build func() any) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	runtime.KeepAlive(input)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}

func BenchmarkParseConsensus(b *testing.B) {
	cons, _ := syntheticConsensus(benchRelays)
	c, err := ParseConsensus(cons)
	if err != nil {
		b.Fatal(err)
	}
	if len(c.Relays) != benchRelays {
		b.Fatalf("%d relays", len(c.Relays))
	}
	b.SetBytes(int64(len(cons)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := ParseConsensus(cons); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	held := retained(cons, func() any { c, _ := ParseConsensus(cons); return c })
	b.ReportMetric(float64(held)/benchRelays, "retained-B/relay")
	b.ReportMetric(float64(len(cons))/benchRelays, "doc-B/relay")
}

func BenchmarkParseMicrodescs(b *testing.B) {
	_, mds := syntheticConsensus(benchRelays)
	got, err := ParseMicrodescs(mds)
	if err != nil {
		b.Fatal(err)
	}
	if len(got) != benchRelays {
		b.Fatalf("%d microdescriptors", len(got))
	}
	b.SetBytes(int64(len(mds)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := ParseMicrodescs(mds); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	held := retained(mds, func() any { m, _ := ParseMicrodescs(mds); return m })
	b.ReportMetric(float64(held)/benchRelays, "retained-B/md")
	b.ReportMetric(float64(len(mds))/benchRelays, "doc-B/md")
}

// TestSyntheticConsensusDigests checks the benchmark data is consistent:
// every relay's "m" digest names its microdescriptor.
func TestSyntheticConsensusDigests(t *testing.T) {
	cons, mds := syntheticConsensus(200)
	c, err := ParseConsensus(cons)
	if err != nil {
		t.Fatal(err)
	}
	var want [][32]byte
	for _, r := range c.Relays {
		want = append(want, r.Microdesc)
	}
	batch, err := ParseRequestedMicrodescs(mds, want)
	if err != nil || len(batch.Found) != 200 {
		t.Fatalf("%v, found %d", err, len(batch.Found))
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// cpuTime returns the process's user+system CPU time in nanoseconds: on a
// shared machine it is a steadier measure than wall-clock ns/op.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
