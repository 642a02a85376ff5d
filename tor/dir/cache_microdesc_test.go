package dir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCacheLoadKeepsGoodMicrodescs checks that a cache file with a
// malformed microdescriptor keeps the others, and reports the bad one
// (where, which digest, why) in Problems; and that SaveMicrodescs drops
// it and keeps the rest.
func TestCacheLoadKeepsGoodMicrodescs(t *testing.T) {
	dir := t.TempDir()
	cache := &Cache{Store: DirStore{dir}}
	good := string(mustRead(t, "testnet-microdescs"))
	all, err := ParseMicrodescs([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	// Corrupt the ntor key of the third microdescriptor.
	i := 0
	for n := 0; n < 3; n++ {
		i += strings.Index(good[i:], "ntor-onion-key ") + 1
	}
	i += len("ntor-onion-key")
	bad := good[:i] + "AAAA" + good[strings.Index(good[i:], "\n")+i:]
	if err := os.WriteFile(filepath.Join(dir, MicrodescsFile), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	l := cache.Load(testnetAuthorities, testnetTime, 0)
	if len(l.Microdescs) != len(all)-1 || len(l.Problems) != 1 {
		t.Fatalf("loaded %d of %d microdescriptors, problems %v", len(l.Microdescs), len(all), l.Problems)
	}
	var me *MicrodescError
	if !errors.As(l.Problems[0], &me) || me.Line != strings.Count(bad[:me.Offset], "\n")+1 ||
		!strings.Contains(l.Problems[0].Error(), MicrodescsFile) || !strings.Contains(l.Problems[0].Error(), "base64 value \"AAAA\"") {
		t.Errorf("problem %v", l.Problems[0])
	}
	for j, md := range l.Microdescs {
		k := j
		if j >= 2 {
			k++
		}
		if md.Digest != all[k].Digest {
			t.Errorf("md %d is not the original's %d", j, k)
		}
	}
	if me != nil && me.Digest == all[2].Digest {
		t.Error("the bad one's digest is the original's")
	}

	n, err := cache.SaveMicrodescs([][]byte{[]byte(bad)}, func([32]byte) bool { return true })
	if err != nil || n != len(all)-1 {
		t.Fatalf("saved %d, %v", n, err)
	}
	l = cache.Load(testnetAuthorities, testnetTime, 0)
	if len(l.Microdescs) != len(all)-1 || len(l.Problems) != 0 {
		t.Errorf("after saving: %d microdescriptors, problems %v", len(l.Microdescs), l.Problems)
	}
}
