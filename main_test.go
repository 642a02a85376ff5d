package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tinytor/tor/config"
)

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "torrc")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := runArgs(t, "--version")
	if code != 0 || out != "tinytor 0.1.0-dev (Tor protocol client)\n" {
		t.Errorf("--version: %d %q", code, out)
	}
	for _, h := range []string{"--help", "-h"} {
		code, out, _ = runArgs(t, h)
		if code != 0 || !strings.HasPrefix(out, "Usage: tinytor") || !strings.Contains(out, "--verify-config") {
			t.Errorf("%s: %d %q", h, code, out)
		}
	}
}

func TestVerifyConfig(t *testing.T) {
	good := writeFile(t, "SocksPort 9150\nLog notice stderr\n")
	code, out, errOut := runArgs(t, "-f", good, "--defaults-torrc", "/dev/null", "--verify-config")
	if code != 0 || out != "Configuration was valid\n" || errOut != "" {
		t.Errorf("good config: code %d stdout %q stderr %q", code, out, errOut)
	}
	// --flag=value forms and the long name of -f.
	code, _, _ = runArgs(t, "--torrc-file="+good, "--defaults-torrc=/dev/null", "--verify-config")
	if code != 0 {
		t.Errorf("--torrc-file=: code %d", code)
	}

	bad := writeFile(t, "SocksPort 9150\n\nExitRelay 1\n")
	code, out, errOut = runArgs(t, "-f", bad, "--defaults-torrc", "/dev/null", "--verify-config")
	want := "tinytor: invalid configuration: " + bad + ":3: ExitRelay: tinytor is a Tor client only and does not support relay options\n"
	if code != 1 || out != "" || errOut != want {
		t.Errorf("bad config: code %d stdout %q stderr %q, want %q", code, out, errOut, want)
	}

	code, _, errOut = runArgs(t, "-f", filepath.Join(t.TempDir(), "missing"), "--verify-config")
	if code != 1 || !strings.Contains(errOut, "unable to open configuration file: no such file or directory") {
		t.Errorf("missing -f: code %d stderr %q", code, errOut)
	}
}

func TestOverrides(t *testing.T) {
	torrc := writeFile(t, "SocksPort 9150\n")
	code, _, errOut := runArgs(t, "-f", torrc, "--defaults-torrc", "/dev/null", "--SocksPort", "bogus:1", "--verify-config")
	if code != 1 || errOut != "tinytor: invalid configuration: command line: SocksPort: invalid address \"bogus\": must be an IPv4 or IPv6 literal\n" {
		t.Errorf("bad override: code %d stderr %q", code, errOut)
	}
	// The override's value may look like a flag; it is still the value.
	code, _, errOut = runArgs(t, "--verify-config", "-f", torrc, "--defaults-torrc", "/dev/null", "--User", "-f")
	if code != 0 {
		t.Errorf("override with dash value: code %d stderr %q", code, errOut)
	}
	code, _, errOut = runArgs(t, "-f", torrc, "--defaults-torrc", "/dev/null", "--/SocksPort", "--verify-config")
	if code != 0 {
		t.Errorf("--/SocksPort: code %d stderr %q", code, errOut)
	}
	code, _, errOut = runArgs(t, "-f", torrc, "--Frobnicate", "1")
	if code != 1 || errOut != "tinytor: invalid configuration: command line: Unknown option 'Frobnicate'\n" {
		t.Errorf("unknown override: code %d stderr %q", code, errOut)
	}
	code, _, errOut = runArgs(t, "-f", torrc, "--SocksPort")
	if code != 1 || !strings.Contains(errOut, "command-line option '--SocksPort' with no value") {
		t.Errorf("override without value: code %d stderr %q", code, errOut)
	}
	code, _, errOut = runArgs(t, "-f")
	if code != 1 || !strings.Contains(errOut, "flag needs an argument") {
		t.Errorf("-f without value: code %d stderr %q", code, errOut)
	}
	code, _, errOut = runArgs(t, "-f", torrc, "stray")
	if code != 1 || !strings.Contains(errOut, `unexpected argument "stray"`) {
		t.Errorf("stray argument: code %d stderr %q", code, errOut)
	}
}

// TestRuntimeFailure checks exit code 2 with a failure that happens before
// the client touches the network: a DataDirectory that cannot be created.
func TestRuntimeFailure(t *testing.T) {
	blocker := writeFile(t, "")
	torrc := writeFile(t, "SocksPort 9150\nSocksPort 9151 Bogus\nLog notice stderr\nDataDirectory "+blocker+"/sub\n")
	code, out, errOut := runArgs(t, "-f", torrc, "--defaults-torrc", "/dev/null")
	if code != 2 || out != "" || !strings.Contains(errOut, "[err] Couldn't create directory "+blocker+"/sub") {
		t.Errorf("code %d stdout %q stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "[warn] "+torrc+":2: SocksPort: Unrecognized SocksPort option 'Bogus'") {
		t.Errorf("config warning not logged: %q", errOut)
	}
}

func TestZeroConfig(t *testing.T) {
	if _, err := os.Stat(config.DefaultTorrc); err == nil {
		t.Skipf("%s exists on this machine", config.DefaultTorrc)
	}
	code, _, errOut := runArgs(t, "--verify-config")
	if code != 0 || !strings.Contains(errOut, `[notice] Configuration file "/etc/tinytor/torrc" not present, using reasonable defaults.`) {
		t.Errorf("zero-config: code %d stderr %q", code, errOut)
	}
}
