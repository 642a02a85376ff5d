package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// suite is the state TestMain sets up for the tests of this package: the one
// network started for this `go test` run, or the reason tests are skipped.
type suite struct {
	net      *Network
	launcher *Launcher
	skip     string
}

// testSuite is written only by TestMain, before any test runs.
var testSuite suite

// TestMain starts one test network for the whole run, in a temporary
// directory, and stops it at the end. A watchdog process stops it too if
// the test binary dies (panic, -timeout, signal).
//
//   - With -short, integration tests are skipped (no network is started).
//   - Without tor on PATH they are skipped, unless TINYTOR_REQUIRE_TESTNET=1
//     (CI), where that is a failure.
//   - TINYTOR_TESTNET_ARGS adds arguments to scripts/testnet start, for
//     example "--relays 9".
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if testing.Short() {
		testSuite.skip = "integration tests skipped with -short"
		return m.Run()
	}
	if _, err := exec.LookPath("tor"); err != nil {
		const msg = "tor not installed: install Debian's tor package"
		if os.Getenv("TINYTOR_REQUIRE_TESTNET") == "1" {
			fmt.Fprintf(os.Stderr, "FAIL: %s (TINYTOR_REQUIRE_TESTNET=1)\n", msg)
			return 1
		}
		testSuite.skip = msg
		return m.Run()
	}
	launcher, err := NewLauncher(os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "tinytor-testnet-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	dog, err := launcher.StartWatchdog(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	code := runWithNetwork(m, launcher, dir)
	if err := dog.Release(); err != nil {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
	}
	if code == 0 && os.Getenv("TINYTOR_KEEP_TESTNET_DIR") != "1" {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "test network files kept in %s\n", dir)
	}
	return code
}

func runWithNetwork(m *testing.M, launcher *Launcher, dir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	// With bridges (a plain one and an obfs4 one) for the bridge tests.
	args := append([]string{"--bridges"}, strings.Fields(os.Getenv("TINYTOR_TESTNET_ARGS"))...)
	n, err := launcher.Start(ctx, dir, args...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: starting the test network: %v (logs in %s)\n", err, dir)
		return 1
	}
	fmt.Fprintf(os.Stderr, "test network usable after %.1f s in %s\n", time.Since(start).Seconds(), dir)
	defer func() {
		stopCtx, stopCancel := context.WithTimeout(context.Background(), time.Minute)
		defer stopCancel()
		if err := launcher.Stop(stopCtx, dir); err != nil {
			fmt.Fprintf(os.Stderr, "warning: %v\n", err)
		}
	}()
	testSuite.net = n
	testSuite.launcher = launcher
	return m.Run()
}

// RequireNetwork returns the run's test network, or skips t if there is
// none (-short, or tor not installed).
func RequireNetwork(t testing.TB) *Network {
	t.Helper()
	if testSuite.skip != "" {
		t.Skip(testSuite.skip)
	}
	if testSuite.net == nil {
		t.Fatal("no test network (TestMain did not start one)")
	}
	return testSuite.net
}
