package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// upwardEdges name the imports that would turn the layering upside down:
// a package under From must not import one under To. Dependencies point
// one way: SOCKS and onion services → streams (tor) → circuits (circmgr)
// → channels (chanmgr) → TLS (link), with the directory (dirmgr) beside
// the circuits; board/ beside everything, reached by main only.
var upwardEdges = []struct{ From, To, Why string }{
	{"tinytor/tor", "tinytor/onion", "the core knows nothing of onion services; the control port reaches them through ctlbackend.Onion"},
	{"tinytor/tor", "tinytor/board", "the core knows nothing of the router layer; main wires it"},
	{"tinytor/tor", "tinytor/socks", "the core knows nothing of its front ends"},
	{"tinytor/socks", "tinytor/onion", "socks knows nothing of circuits or services"},
	{"tinytor/board", "tinytor/onion", "the router layer serves the core, it does not use onion services"},
	{"tinytor/board", "tinytor/socks", "the router layer does not use the front ends"},
	{"tinytor/onion", "tinytor/socks", "onion services do not use the SOCKS front end"},
}

// lowerLayers are packages of the core and what they must not import:
// each manager sees only the layers below it.
var lowerLayers = map[string][]string{
	"tinytor/socks":         {"tinytor/tor", "tinytor/tor/circmgr", "tinytor/tor/chanmgr", "tinytor/tor/dirmgr", "tinytor/tor/circuit", "tinytor/tor/link"},
	"tinytor/socks/dnsport": {"tinytor/tor", "tinytor/tor/circmgr", "tinytor/tor/chanmgr", "tinytor/tor/dirmgr", "tinytor/tor/circuit", "tinytor/tor/link"},
	"tinytor/board":         {"tinytor/tor", "tinytor/tor/circmgr", "tinytor/tor/chanmgr", "tinytor/tor/dirmgr"},
	"tinytor/tor/circmgr":   {"tinytor/tor", "tinytor/tor/ctlbackend", "tinytor/tor/control"},
	"tinytor/tor/dirmgr":    {"tinytor/tor", "tinytor/tor/circmgr", "tinytor/tor/ctlbackend", "tinytor/tor/control"},
	"tinytor/tor/chanmgr":   {"tinytor/tor", "tinytor/tor/circmgr", "tinytor/tor/dirmgr", "tinytor/tor/guard", "tinytor/tor/path"},
	"tinytor/tor/circuit":   {"tinytor/tor", "tinytor/tor/circmgr", "tinytor/tor/chanmgr", "tinytor/tor/dirmgr"},
	"tinytor/tor/link":      {"tinytor/tor", "tinytor/tor/circmgr", "tinytor/tor/chanmgr", "tinytor/tor/dirmgr", "tinytor/tor/circuit"},
	"tinytor/tor/cell":      {"tinytor/tor", "tinytor/tor/circmgr", "tinytor/tor/chanmgr", "tinytor/tor/dirmgr", "tinytor/tor/circuit", "tinytor/tor/link"},
	"tinytor/tor/event":     {"tinytor/tor", "tinytor/tor/circmgr", "tinytor/tor/chanmgr", "tinytor/tor/dirmgr"},
	"tinytor/tor/bootstrap": {"tinytor/tor", "tinytor/tor/circmgr", "tinytor/tor/chanmgr", "tinytor/tor/dirmgr"},
}

// under reports whether pkg is prefix or inside it.
func under(pkg, prefix string) bool { return pkg == prefix || strings.HasPrefix(pkg, prefix+"/") }

func TestNoUpwardImports(t *testing.T) {
	if testing.Short() && os.Getenv("GOARCH") != "" {
		t.Skip("cross-arch run: go list is checked on the host")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Skipf("go list not available here: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && under(f[0], "tinytor") {
			imports[f[0]] = f[1:]
		}
	}
	if len(imports) < 20 || imports["tinytor/tor/circmgr"] == nil {
		t.Fatalf("go list -deps returned too little to judge: %d tinytor packages", len(imports))
	}
	for pkg, deps := range imports {
		for _, dep := range deps {
			for _, e := range upwardEdges {
				if under(pkg, e.From) && under(dep, e.To) {
					t.Errorf("%s imports %s: %s", pkg, dep, e.Why)
				}
			}
			for _, bad := range lowerLayers[pkg] {
				if dep == bad {
					t.Errorf("%s imports %s: an upward edge in the core's layers", pkg, dep)
				}
			}
		}
	}
}
