package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func ports(c *Config) []string {
	var out []string
	for _, p := range c.SocksPorts {
		out = append(out, p.String())
	}
	return out
}

func TestIncludeFilesAndDirs(t *testing.T) {
	d := t.TempDir()
	write(t, d+"/conf.d/20-b", "SocksPort 2\n")
	write(t, d+"/conf.d/10-a", "SocksPort 1\n%include "+d+"/extra\n")
	write(t, d+"/conf.d/.hidden", "SocksPort 99\n")
	write(t, d+"/conf.d/sub/x", "SocksPort 98\n")
	write(t, d+"/conf.d/30-empty", "")
	write(t, d+"/extra", "SocksPort 3\n")
	top := write(t, d+"/torrc", "SocksPort 0.0.0.0:9\n%include "+d+"/conf.d\nSocksPort 4\n")
	lines, err := ReadFile(top)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, fmt.Sprintf("%s:%d %s", filepath.Base(l.File), l.Line, l.Value))
	}
	want := []string{"torrc:1 0.0.0.0:9", "10-a:1 1", "extra:1 3", "20-b:1 2", "torrc:3 4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("include order:\n got %v\nwant %v", got, want)
	}
}

func TestIncludeGlob(t *testing.T) {
	d := t.TempDir()
	write(t, d+"/b.conf", "SocksPort 2\n")
	write(t, d+"/a.conf", "SocksPort 1\n")
	write(t, d+"/c.txt", "SocksPort 3\n")
	top := write(t, d+"/torrc", "%include "+d+"/*.conf\n")
	c, err := Load(Sources{Torrc: top, Defaults: "/dev/null", Env: testEnv})
	if err != nil {
		t.Fatal(err)
	}
	if got := ports(c); !reflect.DeepEqual(got, []string{"127.0.0.1:1", "127.0.0.1:2"}) {
		t.Errorf("ports = %v", got)
	}
}

func TestIncludeErrors(t *testing.T) {
	d := t.TempDir()
	top := write(t, d+"/torrc", "Log notice\n%include "+d+"/missing\n")
	_, err := ReadFile(top)
	want := fmt.Sprintf(`%s:2: %%include: error reading included configuration file or directory "%s/missing": stat %s/missing: no such file or directory`, top, d, d)
	if err == nil || err.Error() != want {
		t.Errorf("missing include: got %v\nwant %s", err, want)
	}

	// Errors inside an included file name that file and line.
	write(t, d+"/bad", "\nBogus 1\n")
	top = write(t, d+"/torrc2", "%include "+d+"/bad\n")
	_, err = Load(Sources{Torrc: top, Defaults: "/dev/null", Env: testEnv})
	if err == nil || err.Error() != d+"/bad:2: Unknown option 'Bogus'" {
		t.Errorf("error in included file: %v", err)
	}
	write(t, d+"/badq", "User \"x\n")
	top = write(t, d+"/torrc3", "%include "+d+"/badq\n")
	_, err = ReadFile(top)
	if err == nil || err.Error() != d+"/badq:1: User: syntax error: quoted string is not closed on its line" {
		t.Errorf("syntax error in included file: %v", err)
	}

	// A file including itself hits the recursion limit of C tor.
	self := d + "/self"
	write(t, self, "%include "+self+"\n")
	_, err = ReadFile(self)
	if err == nil || err.Error() != self+":1: %include: more than 31 nested %includes" {
		t.Errorf("self include: %v", err)
	}
	// 30 nested includes (31 levels) are fine.
	for i := 1; i <= 31; i++ {
		body := "SocksPort 1\n"
		if i < 31 {
			body = fmt.Sprintf("%%include %s/n%d\n", d, i+1)
		}
		write(t, fmt.Sprintf("%s/n%d", d, i), body)
	}
	if lines, err := ReadFile(d + "/n1"); err != nil || len(lines) != 1 {
		t.Errorf("31 levels: %v, %v", lines, err)
	}
	write(t, d+"/n31", "%include "+d+"/n32\n")
	write(t, d+"/n32", "SocksPort 1\n")
	if _, err := ReadFile(d + "/n1"); err == nil || !strings.Contains(err.Error(), "more than 31 nested %includes") {
		t.Errorf("32 levels: %v", err)
	}
}

func TestLayers(t *testing.T) {
	d := t.TempDir()
	defs := write(t, d+"/defaults", "SocksPort 1\nSocksPort 2\nDataDirectory /def\nUser deftor\nLog info stderr\n")
	torrc := write(t, d+"/torrc", "SocksPort 3\nSocksPort 4\nDataDirectory /torrc\n+Log err syslog\n")
	load := func(args ...string) *Config {
		t.Helper()
		lines, err := ParseArgs(args)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Load(Sources{Torrc: torrc, Defaults: defs, Args: lines, Env: testEnv})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := load()
	if got := ports(c); !reflect.DeepEqual(got, []string{"127.0.0.1:3", "127.0.0.1:4"}) {
		t.Errorf("torrc list should replace defaults list: %v", got)
	}
	if c.DataDirectory != "/torrc" || c.User != "deftor" {
		t.Errorf("DataDirectory %q User %q", c.DataDirectory, c.User)
	}
	if len(c.Logs) != 2 || c.Logs[0].Dest != LogStderr || c.Logs[1].Dest != LogSyslog {
		t.Errorf("+Log should append to the defaults: %+v", c.Logs)
	}

	c = load("--SocksPort", "9150", "--DataDirectory", "/cmd", "--socksport", "9151")
	if got := ports(c); !reflect.DeepEqual(got, []string{"127.0.0.1:9150", "127.0.0.1:9151"}) {
		t.Errorf("command line should replace torrc list: %v", got)
	}
	if c.DataDirectory != "/cmd" {
		t.Errorf("command line DataDirectory = %q", c.DataDirectory)
	}

	c = load("--+SocksPort", "9150")
	if got := ports(c); !reflect.DeepEqual(got, []string{"127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:9150"}) {
		t.Errorf("+SocksPort should append: %v", got)
	}
	c = load("--/SocksPort")
	if len(c.SocksPorts) != 1 || c.SocksPorts[0].String() != "127.0.0.1:9050" {
		t.Errorf("/SocksPort should clear to the default: %v", ports(c))
	}
	c = load("--/SocksPort", "--SocksPort", "7")
	if got := ports(c); !reflect.DeepEqual(got, []string{"127.0.0.1:7"}) {
		t.Errorf("/SocksPort then SocksPort: %v", got)
	}
	c = load("-DataDirectory", "")
	if c.DataDirectory != "/home/u/.tinytor" {
		t.Errorf("empty value should reset to the default: %q", c.DataDirectory)
	}

	_, err := Load(Sources{Torrc: torrc, Defaults: defs, Args: []Line{{Key: "Bogus", Value: "1", File: CommandLine}}, Env: testEnv})
	if err == nil || err.Error() != "command line: Unknown option 'Bogus'" {
		t.Errorf("bad command-line option: %v", err)
	}
}

func TestParseArgs(t *testing.T) {
	got, err := ParseArgs([]string{"--SocksPort", "9150", "-Log", "info stderr", "--+ExitNodes", "a", "--/HiddenServiceDir", "--User", "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{
		{Key: "SocksPort", Value: "9150", File: CommandLine},
		{Key: "Log", Value: "info stderr", File: CommandLine},
		{Key: "ExitNodes", Value: "a", Command: Append, File: CommandLine},
		{Key: "HiddenServiceDir", Command: Clear, File: CommandLine},
		{Key: "User", Value: "x", File: CommandLine},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--SocksPort"}, "command line: SocksPort: command-line option '--SocksPort' with no value"},
		{[]string{"stray"}, `command line: unexpected argument "stray": options are written --Option value`},
		{[]string{"--"}, `command line: unexpected argument "--": options are written --Option value`},
	} {
		if _, err := ParseArgs(tc.args); err == nil || err.Error() != tc.want {
			t.Errorf("ParseArgs(%q) = %v, want %s", tc.args, err, tc.want)
		}
	}
}

func TestLoadFiles(t *testing.T) {
	d := t.TempDir()
	// Explicit torrc that does not exist: an error, as in C tor.
	_, err := Load(Sources{Torrc: d + "/nope", Defaults: "/dev/null", Env: testEnv})
	if err == nil || err.Error() != d+"/nope: unable to open configuration file: no such file or directory" {
		t.Errorf("missing -f: %v", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing -f error does not wrap fs.ErrNotExist: %v", err)
	}
	_, err = Load(Sources{Torrc: "/dev/null", Defaults: d + "/nope", Env: testEnv})
	if err == nil || err.Error() != d+"/nope: unable to open configuration file: no such file or directory" {
		t.Errorf("missing --defaults-torrc: %v", err)
	}
	// A bad option is reported with file and line.
	bad := write(t, d+"/bad", "# x\nSocksPort 9050\nSocksPort nope:1\n")
	_, err = Load(Sources{Torrc: bad, Defaults: "/dev/null", Env: testEnv})
	if err == nil || err.Error() != bad+`:3: SocksPort: invalid address "nope": must be an IPv4 or IPv6 literal` {
		t.Errorf("bad option: %v", err)
	}
}

func TestZeroConfig(t *testing.T) {
	c := mustParse(t, "")
	if got := ports(c); !reflect.DeepEqual(got, []string{"127.0.0.1:9050"}) {
		t.Errorf("default SocksPort = %v", got)
	}
	auths := c.Authorities()
	var names []string
	v3 := 0
	for _, a := range auths {
		names = append(names, a.Nickname)
		if a.IsV3() {
			v3++
		}
	}
	wantNames := []string{"moria1", "tor26", "dizum", "Serge", "gabelmoo", "dannenberg", "maatuska", "longclaw", "bastet", "faravahar"}
	if !reflect.DeepEqual(names, wantNames) || v3 != 9 {
		t.Errorf("authorities %v (%d v3), want %v (9 v3)", names, v3, wantNames)
	}
	moria := DirAuthority{Nickname: "moria1", Addr: netip.MustParseAddrPort("128.31.0.39:9231"), ORPort: 9201, Weight: 1}
	moria.Fingerprint, _ = parseFingerprint("1A25C6358DB91342AA51720A5038B72742732498")
	moria.V3Ident, _ = parseFingerprint("F533C81CEF0BC0267857C99B2F471ADF249FA232")
	if !reflect.DeepEqual(auths[0], moria) {
		t.Errorf("moria1 = %+v", auths[0])
	}
	if !auths[3].Bridge || auths[3].IsV3() {
		t.Errorf("Serge = %+v, want a bridge authority", auths[3])
	}
	fb := c.Fallbacks()
	if len(fb) != 200 {
		t.Errorf("%d fallbacks, want 200", len(fb))
	}
	ids := map[[20]byte]bool{}
	for _, f := range fb {
		if f.ORPort == 0 || !f.Addr.Is4() || ids[f.ID] {
			t.Errorf("bad fallback %+v", f)
		}
		ids[f.ID] = true
	}
}

func TestDirOverrides(t *testing.T) {
	auth := "DirAuthority a orport=5000 v3ident=" + hexA + " 127.0.0.1:7000 " + hexB + "\n"
	fb := "FallbackDir 127.0.0.2:7001 orport=5001 id=" + hexA + "\n"
	c := mustParse(t, auth)
	if len(c.Authorities()) != 1 || c.Authorities()[0].Nickname != "a" {
		t.Errorf("DirAuthority should replace the defaults: %+v", c.Authorities())
	}
	if len(c.Fallbacks()) != 0 {
		t.Errorf("custom DirAuthority without FallbackDir should use no fallbacks, got %d", len(c.Fallbacks()))
	}
	c = mustParse(t, auth+fb)
	if len(c.Fallbacks()) != 1 || c.Fallbacks()[0].ORPort != 5001 {
		t.Errorf("FallbackDir: %+v", c.Fallbacks())
	}
	c = mustParse(t, fb)
	if len(c.Fallbacks()) != 1 || len(c.Authorities()) != 10 {
		t.Errorf("FallbackDir alone: %d fallbacks, %d authorities", len(c.Fallbacks()), len(c.Authorities()))
	}
}

func TestDirLineErrors(t *testing.T) {
	if _, _, err := ParseDirAuthority(""); err == nil || err.Error() != "no arguments on DirAuthority line" {
		t.Errorf("empty DirAuthority: %v", err)
	}
	_, w, err := ParseDirAuthority("x frob orport=1 1.2.3.4:80 " + hexA)
	if err != nil || !reflect.DeepEqual(w, []string{"Unrecognized flag 'frob' on DirAuthority line"}) {
		t.Errorf("unknown flag: %v %v", w, err)
	}
	_, w, err = ParseFallbackDir("1.2.3.4 orport=1 id=" + hexA + " extra=1")
	if err != nil || !reflect.DeepEqual(w, []string{`Ignoring unknown FallbackDir item "extra=1"`}) {
		t.Errorf("unknown fallback item: %v %v", w, err)
	}
}
