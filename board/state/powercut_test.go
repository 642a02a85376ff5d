package state

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The power-cut test re-executes the test binary as a child that writes
// state files in a loop (TestHelperWriter) and SIGKILLs it at random
// moments. After each kill it opens the store and checks every file either
// loads with a valid checksum and well-formed content (old or new) or is
// absent or moved aside: never garbage.
//
// TINYTOR_POWERCUTS sets the number of kills (default 150; the acceptance
// run uses 1000). TINYTOR_POWERCUT_SEED sets the seed of the delays.

const childDirEnv = "TINYTOR_STATE_CHILD_DIR"

var (
	checkedNames = []string{"state", "guards", "cached-consensus-meta", "onion-client-auth"}
	rawName      = "hs_ed25519_secret_key"
)

// content is the deterministic, self-describing payload for (name, gen).
func content(name string, gen int) []byte {
	n := 100 + (gen*7919+len(name)*31)%12000
	var b bytes.Buffer
	fmt.Fprintf(&b, "name=%s gen=%d len=%d\n", name, gen, n)
	for i := range n {
		b.WriteByte(byte((i*gen + len(name)) % 251))
	}
	return b.Bytes()
}

// checkContent verifies that b is exactly content(name, gen) for the gen
// it claims.
func checkContent(name string, b []byte) error {
	line, _, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return fmt.Errorf("no header line in %d bytes", len(b))
	}
	var gotName string
	var gen, n int
	if _, err := fmt.Sscanf(string(line), "name=%s gen=%d len=%d", &gotName, &gen, &n); err != nil {
		return fmt.Errorf("bad header %q: %v", line, err)
	}
	if gotName != name || !bytes.Equal(b, content(name, gen)) {
		return fmt.Errorf("content of %s (claims gen %d) is not what was written", name, gen)
	}
	return nil
}

func TestHelperWriter(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("helper process for TestPowerCuts")
	}
	s, err := Open(dir, Options{MinInterval: time.Millisecond})
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	fmt.Println("ready")
	gen := int(time.Now().UnixNano() % 1000000)
	for {
		gen++
		for i, name := range checkedNames {
			if i%2 == 0 {
				s.WriteNow(name, content(name, gen))
			} else {
				s.Write(name, content(name, gen)) // background writer
			}
		}
		s.WriteNow(rawName, content(rawName, gen), Raw, Secret)
	}
}

func TestPowerCuts(t *testing.T) {
	runs := 150
	if v := os.Getenv("TINYTOR_POWERCUTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("TINYTOR_POWERCUTS=%q: %v", v, err)
		}
		runs = n
	}
	if testing.Short() {
		runs = 20
	}
	seed := uint64(20261127)
	if v := os.Getenv("TINYTOR_POWERCUT_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	start := time.Now()
	var loaded, absent, corrupt int
	for run := range runs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
		cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			if errors.Is(err, syscall.ENOEXEC) {
				// Cross-architecture run under qemu-user without
				// binfmt_misc: the test binary cannot re-execute itself.
				t.Skipf("cannot re-execute the test binary here: %v", err)
			}
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("run %d: child did not start: %q, %v", run, line, err)
		}
		time.Sleep(time.Duration(rng.IntN(20000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		s, err := open(dir, Options{}, false)
		if err != nil {
			t.Fatalf("run %d: open: %v", run, err)
		}
		for _, name := range checkedNames {
			b, err := s.Read(name)
			switch {
			case err == nil:
				if cerr := checkContent(name, b); cerr != nil {
					t.Fatalf("run %d: GARBAGE LOADED from %s: %v", run, name, cerr)
				}
				loaded++
			case errors.Is(err, ErrCorrupt):
				corrupt++
			case errors.Is(err, fs.ErrNotExist):
				absent++
			default:
				t.Fatalf("run %d: %s: unexpected error %v", run, name, err)
			}
		}
		if b, err := s.ReadRaw(rawName); err == nil {
			if cerr := checkContent(rawName, b); cerr != nil {
				t.Fatalf("run %d: torn raw file: %v", run, cerr)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("run %d: raw: %v", run, err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	t.Logf("%d power cuts in %v: %d files loaded (valid), %d absent, %d corrupt moved aside; %d temp files awaiting cleanup",
		runs, time.Since(start).Round(time.Millisecond), loaded, absent, corrupt, len(left))
	if loaded == 0 {
		t.Fatal("no file ever loaded: the child never wrote anything")
	}
}
