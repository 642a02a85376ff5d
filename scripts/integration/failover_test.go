package integration

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pidOf returns the pid scripts/testnet recorded for a relay nickname.
func pidOf(t *testing.T, n *Network, nickname string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.Dir, "testnet.pids"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == nickname {
			pid, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("no pid recorded for %s", nickname)
	return 0
}

// exitNickname maps an /echo answer to the exit relay's nickname.
func exitNickname(t *testing.T, n *Network, echo string) string {
	t.Helper()
	for _, r := range n.Relays {
		if r.Exit && r.ExitAddr.String() == echo {
			return r.Nickname
		}
	}
	t.Fatalf("/echo answered %q, which names no exit", echo)
	return ""
}

// TestTinytorExitAndGuardFailover kills relays, so it runs on a network
// of its own: killing the exit that carries a download ends that stream
// with an error and the next request succeeds on a new circuit; killing
// the guard moves tinytor to its next guard.
func TestTinytorExitAndGuardFailover(t *testing.T) {
	RequireNetwork(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	n, err := testSuite.launcher.Start(ctx, dir)
	if err != nil {
		t.Fatalf("starting a second network: %v", err)
	}
	defer func() {
		stopCtx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		testSuite.launcher.Stop(stopCtx, dir)
	}()
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil)
	first := p.waitFor("Bootstrapped 100% (done): Done", 3*time.Minute)
	// The first circuit's first hop is the primary guard.
	guardNick := ""
	for _, l := range p.log()[:first+1] {
		if g := firstHop(l); g != "" {
			guardNick = g
		}
	}
	if guardNick == "" {
		t.Fatalf("no circuit line before 100%%")
	}
	echo := func(user string) (string, error) {
		resp, err := getAs(ctx, p.socks, user, n.URLEcho)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(resp.Body)), nil
	}
	// A user whose exit is not the guard, so that killing it leaves the
	// guard alive.
	user, exit := "", ""
	for i := 0; i < 10 && user == ""; i++ {
		u := fmt.Sprintf("k%d", i)
		e, err := echo(u)
		if err != nil {
			t.Fatalf("echo as %s: %v", u, err)
		}
		if nick := exitNickname(t, n, e); nick != guardNick {
			user, exit = u, nick
		}
	}
	if user == "" {
		t.Fatalf("every circuit exited at the guard %s", guardNick)
	}
	t.Logf("guard %s; user %s exits at %s", guardNick, user, exit)

	// A download through that exit, killed midway.
	u, _ := url.Parse(n.File64M.URL)
	port, _ := strconv.Atoi(u.Port())
	conn, err := dialSOCKS5Auth(ctx, p.socks, user, "x", u.Hostname(), uint16(port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", u.RequestURI(), u.Host)
	if _, err := io.ReadFull(conn, make([]byte, 256<<10)); err != nil {
		t.Fatalf("reading the first 256 KiB: %v", err)
	}
	if err := syscall.Kill(pidOf(t, n, exit), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	rest, err := io.Copy(io.Discard, conn)
	if err == nil && rest+256<<10 >= 64<<20 {
		t.Fatalf("the download survived the death of its exit (%d bytes)", rest+256<<10)
	}
	t.Logf("download ended after %d bytes: %v", rest+256<<10, err)
	if e, err := echo(user); err != nil {
		t.Fatalf("request after the exit died: %v", err)
	} else if nick := exitNickname(t, n, e); nick == exit {
		t.Fatalf("request after the exit died went through it (%s)", nick)
	}

	// Kill the guard: the next request succeeds through another guard.
	if err := syscall.Kill(pidOf(t, n, guardNick), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := echo("after-guard"); err != nil {
		t.Fatalf("request after the guard died: %v", err)
	}
	mark := len(p.log())
	if _, err := echo("after-guard-2"); err != nil {
		t.Fatalf("second request after the guard died: %v", err)
	}
	for _, l := range p.log()[mark:] {
		if firstHop(l) == guardNick {
			t.Fatalf("a circuit was built through the dead guard: %s", l)
		}
	}
}

// firstHop returns the first hop's nickname of a "Circuit N built
// through $FP~nick,..." log line, or "".
func firstHop(line string) string {
	const marker = " built through $"
	i := strings.Index(line, marker)
	if i < 0 {
		return ""
	}
	hop := strings.SplitN(line[i+len(marker):], ",", 2)[0]
	return hop[strings.Index(hop, "~")+1:]
}
