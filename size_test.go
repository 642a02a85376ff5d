package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// forbiddenDeps are packages too big for router flash: net/http alone adds
// about 2.9 MB to a stripped mipsle binary. The binary never links them.
var forbiddenDeps = []string{"net/http", "regexp", "text/template", "html/template",
	// log/syslog dials with net.Dial, which links Go's DNS resolver
	// (about 190 KB); tor/config writes to syslog itself.
	"log/syslog"}

func TestBinaryAvoidsHeavyPackages(t *testing.T) {
	if testing.Short() && os.Getenv("GOARCH") != "" {
		t.Skip("cross-arch run: go list is checked on the host")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list not available here: %v", err)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	if !deps["tinytor/tor/torlog"] && len(deps) < 10 {
		t.Fatalf("go list -deps returned too little to judge: %q", out)
	}
	for _, f := range forbiddenDeps {
		if deps[f] {
			why, _ := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, ".").Output()
			var importers []string
			for _, line := range strings.Split(string(why), "\n") {
				if strings.Contains(" "+line+" ", " "+f+" ") {
					importers = append(importers, strings.SplitN(line, ":", 2)[0])
				}
			}
			t.Errorf("the tinytor binary links %s (imported by %v); keep it out (binary size)", f, importers)
		}
	}
}

// resolverCalls are calls that link Go's DNS resolver (about 190 KB of a
// stripped mipsle binary) even for address literals: the binary's code
// uses typed calls instead (tor/netlisten, net.Dialer.DialTCP, ...).
var resolverCalls = regexp.MustCompile(`\bnet\.(Dial|DialTimeout|Listen|ListenPacket)\(|\.DialContext\(|\bnet\.ListenConfig\b|\bnet\.Resolve(TCP|UDP|IP)Addr\(`)

func TestBinaryAvoidsResolver(t *testing.T) {
	grepBinarySources(t, resolverCalls, func(pkg string) bool { return true },
		"links Go's name resolver; use a typed call (tor/netlisten, net.Dialer.DialTCP, net.ListenTCP)")
}

// grepBinarySources reports every code line (comments left out) of the
// non-standard packages linked into the binary that match re, in the
// packages for which check is true.
func grepBinarySources(t *testing.T, re *regexp.Regexp, check func(pkg string) bool, why string) {
	t.Helper()
	if testing.Short() && os.Getenv("GOARCH") != "" {
		t.Skip("cross-arch run: go list is checked on the host")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.ImportPath}} {{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{end}}`, ".").Output()
	if err != nil {
		t.Skipf("go list not available here: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !check(f[0]) {
			continue
		}
		for _, name := range f[2:] {
			src, err := os.ReadFile(filepath.Join(f[1], name))
			if err != nil {
				t.Fatal(err)
			}
			checked++
			for i, l := range strings.Split(string(src), "\n") {
				if code, _, _ := strings.Cut(l, "//"); re.MatchString(code) {
					t.Errorf("%s:%d: %s %s", filepath.Join(f[1], name), i+1, strings.TrimSpace(l), why)
				}
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d files checked: go list returned too little", checked)
	}
}

// compiledOnce are calls that Go inlines at every call site with a body
// big enough to matter on router flash; the binary's code goes through
// the packages that compile them once (about 190 KB of mipsle code
// together).
var compiledOnce = regexp.MustCompile(`\bfmt\.Errorf\(|\bsync\.Mutex\b`)

func TestBinaryUsesCompiledOnceHelpers(t *testing.T) {
	grepBinarySources(t, compiledOnce, func(pkg string) bool {
		return strings.HasPrefix(pkg, "tinytor") && pkg != "tinytor/tor/errfmt" && pkg != "tinytor/tor/lock"
	}, "is inlined at every call site: use errfmt.Errorf and lock.Mutex (compiled once; see their package docs)")
}
