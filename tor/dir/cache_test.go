package dir

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFileAtomic(dir, "f", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(dir, "f", []byte("two")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil || string(b) != "two" {
		t.Fatalf("%q %v", b, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	if err := WriteFileAtomic(dir, "../x", nil); err == nil {
		t.Error("path escaping the directory accepted")
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing"), "f", nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
	if _, err := (DirStore{dir}).ReadFile("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}

func TestCacheRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cache := &Cache{Store: DirStore{dir}}
	// Empty cache: nothing, no problems.
	l := cache.Load(testnetAuthorities, testnetTime, 0)
	if l.Consensus != nil || len(l.Certs) != 0 || len(l.Problems) != 0 {
		t.Fatalf("empty cache: %+v", l)
	}
	consDoc := mustRead(t, "testnet-consensus-microdesc")
	cons, err := ParseConsensus(consDoc)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.SaveCerts(testnetCerts(t)); err != nil {
		t.Fatal(err)
	}
	if err := cache.SaveConsensus(consDoc); err != nil {
		t.Fatal(err)
	}
	listed := map[[32]byte]bool{}
	for _, r := range cons.Relays[:5] {
		listed[r.Microdesc] = true
	}
	// Two overlapping sources: only the 5 wanted ones, once each.
	n, err := cache.SaveMicrodescs([][]byte{mustRead(t, "testnet-microdescs"), mustRead(t, "testnet-cached-microdescs.new")},
		func(d [32]byte) bool { return listed[d] })
	if err != nil || n != 5 {
		t.Fatalf("saved %d: %v", n, err)
	}
	l = cache.Load(testnetAuthorities, testnetTime, 0)
	if len(l.Problems) != 0 {
		t.Fatalf("problems: %v", l.Problems)
	}
	if l.Consensus == nil || len(l.Certs) != 3 || len(l.Microdescs) != 5 || !bytes.Equal(l.ConsensusDoc, consDoc) {
		t.Fatalf("loaded %d certs, %d mds, consensus %v", len(l.Certs), len(l.Microdescs), l.Consensus != nil)
	}
	for _, md := range l.Microdescs {
		if !listed[md.Digest] {
			t.Errorf("unlisted md %s loaded", DigestString(md.Digest))
		}
	}
	// A day and a half later: the consensus is no longer usable.
	l = cache.Load(testnetAuthorities, testnetTime.Add(36*time.Hour), 0)
	if l.Consensus != nil || len(l.Problems) != 1 || len(l.Microdescs) != 5 {
		t.Errorf("stale: consensus %v, problems %v", l.Consensus != nil, l.Problems)
	}
	// A tampered cached consensus is rejected on load.
	bad := bytes.Replace(consDoc, []byte("Bandwidth=0"), []byte("Bandwidth=9"), 1)
	if err := cache.SaveConsensus(bad); err != nil {
		t.Fatal(err)
	}
	l = cache.Load(testnetAuthorities, testnetTime, 0)
	if l.Consensus != nil || len(l.Problems) != 1 || !errors.Is(l.Problems[0], ErrBadSignature) {
		t.Errorf("tampered: %v", l.Problems)
	}
}

// fixedRand returns a fixed fraction of n.
type fixedRand struct{ num, den int64 }

func (f fixedRand) Int64N(n int64) int64 { return (n - 1) * f.num / f.den }

func TestNextConsensusFetch(t *testing.T) {
	base := time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)
	// dir-spec 5.1's example: valid 1:00, fresh until 2:00, expires 4:00:
	// fetch between 2:45 and 3:50.
	c := &Consensus{ValidAfter: base, FreshUntil: base.Add(time.Hour), ValidUntil: base.Add(3 * time.Hour)}
	now := base.Add(10 * time.Minute)
	if got := NextConsensusFetch(c, now, fixedRand{0, 1}); !got.Equal(base.Add(105 * time.Minute)) {
		t.Errorf("earliest %v", got)
	}
	// The window is 7/8 of 75 min = 3937 s: the last possible second is
	// 3:50:36.
	last := NextConsensusFetch(c, now, fixedRand{1, 1})
	if !last.Equal(base.Add(105*time.Minute + 3936*time.Second)) {
		t.Errorf("latest %v", last)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		got := NextConsensusFetch(c, now, r)
		if got.Before(base.Add(105*time.Minute)) || got.After(last) {
			t.Fatalf("out of range: %v", got)
		}
	}
	// Test network timing: 20 s fresh, 60 s valid: start = FU+15 s,
	// window 7/8 of 25 s = 21 s.
	tn := &Consensus{ValidAfter: base, FreshUntil: base.Add(20 * time.Second), ValidUntil: base.Add(60 * time.Second)}
	if got := NextConsensusFetch(tn, base, fixedRand{0, 1}); !got.Equal(base.Add(35 * time.Second)) {
		t.Errorf("testnet earliest %v", got)
	}
	if got := NextConsensusFetch(tn, base, fixedRand{1, 1}); !got.Equal(base.Add(55 * time.Second)) {
		t.Errorf("testnet latest %v", got)
	}
	// No consensus, expired, or not yet valid: now.
	for _, at := range []time.Time{base.Add(61 * time.Second), base.Add(-time.Second)} {
		if got := NextConsensusFetch(tn, at, r); !got.Equal(at) {
			t.Errorf("not live at %v: %v", at, got)
		}
	}
	if got := NextConsensusFetch(nil, base, r); !got.Equal(base) {
		t.Errorf("nil: %v", got)
	}
}
