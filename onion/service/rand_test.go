package service

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"tinytor/tor/rng"
)

// testRand returns a crypto-seeded generator for code under test.
func testRand(t *testing.T) *rng.Source {
	t.Helper()
	r, err := rng.New()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestServiceGenerator: a service draws from the generator it is given,
// or else from one of its own, never from a shared global one.
func TestServiceGenerator(t *testing.T) {
	r := testRand(t)
	s, err := New(noNet{}, Options{Config: testConfig(filepath.Join(t.TempDir(), "a")), Rand: r})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.rng != r {
		t.Error("the service does not use the generator in Options.Rand")
	}
	a, err := New(noNet{}, Options{Config: testConfig(filepath.Join(t.TempDir(), "b"))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(noNet{}, Options{Config: testConfig(filepath.Join(t.TempDir(), "c"))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.rng == nil || b.rng == nil || a.rng == b.rng {
		t.Error("services without Options.Rand do not each get their own generator")
	}

	// math/rand's global generators are not for this package.
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "math/rand" || p == "math/rand/v2" {
				t.Errorf("%s imports %s: draw from the service's generator instead", name, p)
			}
		}
	}
}
