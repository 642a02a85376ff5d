package dir

import (
	"bufio"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLiveTestnet fetches and verifies the directory documents of a
// running private network started with scripts/testnet. It runs only when
// TINYTOR_TESTNET_ENV names that network's testnet.env file.
func TestLiveTestnet(t *testing.T) {
	envFile := os.Getenv("TINYTOR_TESTNET_ENV")
	if envFile == "" {
		t.Skip("TINYTOR_TESTNET_ENV not set (path of a running scripts/testnet network's testnet.env)")
	}
	f, err := os.Open(envFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var dirPorts []string
	var auths [][20]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		if !strings.HasPrefix(k, "TESTNET_AUTH_") || k == "TESTNET_AUTH_COUNT" {
			continue
		}
		// name,ORaddr,Diraddr,v3ident
		parts := strings.Split(v, ",")
		if len(parts) != 4 {
			t.Fatalf("unexpected %s=%s", k, v)
		}
		dirPorts = append(dirPorts, parts[2])
		auths = append(auths, mustFP(parts[3]))
	}
	if len(auths) == 0 {
		t.Fatal("no authorities in " + envFile)
	}
	get := func(path string) []byte {
		t.Helper()
		c, err := net.DialTimeout("tcp", dirPorts[0], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		body, err := GetHost(c, dirPorts[0], path, 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	now := time.Now()
	certs, err := ParseAuthCerts(get(AllCertsPath))
	if err != nil {
		t.Fatal(err)
	}
	consDoc := get(ConsensusPath(auths))
	cons, err := ParseConsensus(consDoc)
	if err != nil {
		t.Fatal(err)
	}
	rep := cons.CheckSignatures(certs, auths, now)
	if !rep.OK() {
		t.Fatalf("consensus does not verify: %+v", rep)
	}
	if !cons.Usable(now, time.Minute) {
		t.Errorf("fresh consensus not usable now: %v..%v", cons.ValidAfter, cons.ValidUntil)
	}
	// Fetch the certificates again by key, as after a report of missing ones.
	var ids []CertID
	for _, c := range certs {
		ids = append(ids, CertID{c.Fingerprint, c.SigningKeyDigest})
	}
	if again, err := ParseAuthCerts(get(CertsByKeyPath(ids))); err != nil || len(again) != len(certs) {
		t.Errorf("fp-sk fetch: %d certs, %v", len(again), err)
	}
	if again, err := ParseAuthCerts(get(CertsByFingerprintPath(auths))); err != nil || len(again) != len(auths) {
		t.Errorf("fp fetch: %d certs, %v", len(again), err)
	}
	var want [][32]byte
	for _, r := range cons.Relays {
		want = append(want, r.Microdesc)
	}
	paths, batches := MicrodescPaths(want)
	found := 0
	for i, p := range paths {
		b, err := ParseRequestedMicrodescs(get(p), batches[i])
		if err != nil {
			t.Fatal(err)
		}
		found += len(b.Found)
	}
	if found != len(want) {
		t.Errorf("got %d of %d microdescriptors", found, len(want))
	}
	t.Logf("%d certs, consensus with %d relays signed by %d, %d microdescriptors; next fetch %v",
		len(certs), len(cons.Relays), len(rep.Signed), found, NextConsensusFetch(cons, now, fixedRand{1, 2}).Sub(now))
}
