package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Integration tests of the board layer (package board): a wrong clock, a full
// or read-only DataDirectory, a memory limit under load, and the flash
// bytes written in steady use.

// TestBoardClockThreeYearsBack starts tinytor with its wall clock three
// years back (TINYTOR_TESTING_CLOCK_OFFSET, honoured with TestingTorNetwork
// 1): it must bootstrap from the network's time, warn of the skew, serve,
// and never write a state file stamped with the wrong year.
func TestBoardClockThreeYearsBack(t *testing.T) {
	n := RequireNetwork(t)
	const back = 3 * 365 * 24 * time.Hour
	t.Setenv("TINYTOR_TESTING_CLOCK_OFFSET", "-"+back.String())
	data := t.TempDir()
	p := startTinytor(t, n, tinytorBinary(t, ""), data, nil)
	bootstrapped(t, p)
	var warned string
	for _, l := range p.log() {
		if strings.Contains(l, "[warn]") && (strings.Contains(l, "NETINFO cells with skewed time") || strings.Contains(l, "Our clock is") || strings.Contains(l, "Our clock says")) {
			warned = l
			break
		}
	}
	if warned == "" {
		t.Fatalf("no warning about the clock skew:\n%s", strings.Join(p.log(), "\n"))
	}
	if !strings.Contains(warned, "3 years") {
		t.Errorf("skew warning does not say 3 years: %s", warned)
	}
	t.Logf("skew warning: %s", warned)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := Get(ctx, p.socks, n.URLMarker)
	if err != nil || !strings.Contains(string(resp.Body), n.Marker) {
		t.Fatalf("marker with a clock 3 years back: %v", err)
	}
	p.stop()
	// No file in the DataDirectory carries a date from the wrong clock.
	wrong := time.Now().Add(-back).UTC().Format("2006-01-02")
	filepath.WalkDir(data, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), wrong) {
			t.Errorf("%s contains the wrong clock's date %s", path, wrong)
		}
		return nil
	})
}

// TestBoardClockFromNetwork starts tinytor with its wall clock three years
// back and a binary whose modification time (the clock's floor) is 20 days
// old: links to relays work from the floor, and the time must then come
// from the relays' NETINFO cells and the consensus, with a warning.
func TestBoardClockFromNetwork(t *testing.T) {
	n := RequireNetwork(t)
	const back = 3 * 365 * 24 * time.Hour
	t.Setenv("TINYTOR_TESTING_CLOCK_OFFSET", "-"+back.String())
	src, err := os.ReadFile(tinytorBinary(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "tinytor")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-20 * 24 * time.Hour)
	if err := os.Chtimes(bin, old, old); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	p := startTinytor(t, n, bin, data, nil)
	bootstrapped(t, p)
	var warned string
	for _, l := range p.log() {
		if strings.Contains(l, "[warn]") && (strings.Contains(l, "NETINFO cells with skewed time") || strings.Contains(l, "Our clock is")) {
			warned = l
			break
		}
	}
	if warned == "" || !strings.Contains(warned, "20 days") && !strings.Contains(warned, "19 days, 23 hours") {
		t.Fatalf("no warning of a 20-day skew learned from the network:\n%s", strings.Join(p.log(), "\n"))
	}
	t.Logf("skew warning: %s", warned)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := Get(ctx, p.socks, n.URLMarker)
	if err != nil || !strings.Contains(string(resp.Body), n.Marker) {
		t.Fatalf("marker with a clock 20 days back: %v", err)
	}
	p.stop()
	for _, wrong := range []string{time.Now().Add(-back).UTC().Format("2006-01-02"), old.UTC().Format("2006-01-02")} {
		filepath.WalkDir(data, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err == nil && strings.Contains(string(b), wrong) {
				t.Errorf("%s contains the wrong clock's date %s", path, wrong)
			}
			return nil
		})
	}
}

// TestBoardFullDataDirectory runs tinytor with its DataDirectory on a
// 64 KiB tmpfs that is already full, then remounts it read-only: SOCKS must
// keep serving throughout. Mounting needs root.
func TestBoardFullDataDirectory(t *testing.T) {
	n := RequireNetwork(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	data := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tinytor-test", data).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", data, err, out)
		}
	})
	// Fill it up.
	f, err := os.Create(filepath.Join(data, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the tmpfs: %v", err)
			}
			break
		}
	}
	f.Close()

	// CacheDirectory elsewhere would hide the problem: keep it on the full disk too.
	p := startTinytor(t, n, tinytorBinary(t, ""), data, nil)
	bootstrapped(t, p)
	get := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		resp, err := Get(ctx, p.socks, n.URLMarker)
		if err != nil || !strings.Contains(string(resp.Body), n.Marker) {
			t.Fatalf("marker with a %s DataDirectory: %v", what, err)
		}
	}
	get("full")
	if out, err := exec.Command("mount", "-o", "remount,ro", data).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
	// Free space, but read-only now; new isolated circuits write guard state.
	os.Remove(filepath.Join(data, "filler"))
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		resp, err := getAs(ctx, p.socks, fmt.Sprintf("ro%d", i), n.URLMarker)
		cancel()
		if err != nil || !strings.Contains(string(resp.Body), n.Marker) {
			t.Fatalf("marker with a read-only DataDirectory: %v", err)
		}
	}
	get("read-only")
	p.stop()
	// The state writer warned once (it keeps the state in RAM and retries
	// quietly); the directory cache warned about its own files.
	stateWarnings, cacheWarnings := 0, 0
	for _, l := range p.log() {
		switch {
		case !strings.Contains(l, "[warn]"):
		case strings.Contains(l, "Could not write state"):
			stateWarnings++
			t.Logf("tinytor: %s", l)
		case strings.Contains(l, "Could not cache"):
			cacheWarnings++
		}
	}
	if stateWarnings != 1 {
		t.Errorf("%d warnings from the state writer about the full or read-only DataDirectory, want 1:\n%s", stateWarnings, strings.Join(p.log(), "\n"))
	}
	t.Logf("%d cache warnings", cacheWarnings)
	for _, l := range p.log() {
		if strings.Contains(l, "State writes at exit") {
			t.Logf("tinytor: %s", l)
		}
	}
}

// vmStatus reads a "Vm..." line of /proc/PID/status in KiB.
func vmStatus(t *testing.T, pid int, field string) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestBoardMemoryLimit300Streams holds 300 streams open at once through the
// test network under GOMEMLIMIT=24MiB and MaxMemInQueues 4 MB: each must be
// served (the marker page) or refused cleanly (a SOCKS error reply), and
// the peak RSS must stay under 40 MiB.
func TestBoardMemoryLimit300Streams(t *testing.T) {
	n := RequireNetwork(t)
	t.Run("marker", func(t *testing.T) { memoryLimitStreams(t, n, n.URLMarker, n.Marker) })
	// 300 MiB at once: the queues of cells really fill.
	t.Run("1MiB", func(t *testing.T) { memoryLimitStreams(t, n, n.File1M.URL, "") })
}

func memoryLimitStreams(t *testing.T, n *Network, target, marker string) {
	t.Setenv("GOMEMLIMIT", "24MiB")
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil, "MaxMemInQueues 4 MB")
	bootstrapped(t, p)
	pid := p.cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := Get(ctx, p.socks, n.URLMarker); err != nil {
		t.Fatal(err)
	}
	idle := vmStatus(t, pid, "VmRSS")
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())

	const N = 300
	type result struct {
		served, refused bool
		err             error
	}
	results := make([]result, N)
	start := time.Now()
	// Phase 1: open all streams and hold them.
	var wg sync.WaitGroup
	conns := make([]net.Conn, N)
	opened := make(chan int, N)
	for i := range N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := DialSOCKS5(ctx, p.socks, u.Hostname(), uint16(port))
			var rep socksReplyError
			switch {
			case errors.As(err, &rep):
				results[i].refused = true
				results[i].err = err
			case err != nil:
				results[i].err = err
			default:
				conns[i] = conn
				opened <- i
			}
		}()
	}
	wg.Wait()
	close(opened)
	open := len(opened)
	rssOpen := vmStatus(t, pid, "VmRSS")
	// Phase 2: a request on every open stream, all at once.
	for i := range opened {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := conns[i]
			defer conn.Close()
			stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
			defer stop()
			resp, err := httpGet(conn, u)
			switch {
			case err != nil:
				results[i].err = err
			case marker != "" && !strings.Contains(string(resp.Body), marker),
				marker == "" && sha256.Sum256(resp.Body) != n.File1M.SHA256:
				results[i].err = fmt.Errorf("wrong body (%d bytes)", len(resp.Body))
			default:
				results[i].served = true
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	served, refused, unclean := 0, 0, 0
	reasons := map[string]int{}
	for _, r := range results {
		switch {
		case r.served:
			served++
		case r.refused:
			refused++
			reasons[r.err.Error()]++
		default:
			unclean++
			if unclean <= 5 {
				t.Errorf("stream failed uncleanly: %v", r.err)
			}
		}
	}
	hwm := vmStatus(t, pid, "VmHWM")
	t.Logf("%d streams: %d held open at once, %d served, %d refused %v, %d unclean, in %.1f s; RSS idle %d KiB, with streams open %d KiB, VmHWM %d KiB (%.1f MiB)",
		N, open, served, refused, reasons, unclean, elapsed.Seconds(), idle, rssOpen, hwm, float64(hwm)/1024)
	for _, l := range p.log() {
		if strings.Contains(l, "Memory") {
			t.Logf("tinytor: %s", l)
		}
	}
	if served == 0 {
		t.Errorf("no stream served")
	}
	if hwm >= 40*1024 {
		t.Errorf("VmHWM %d KiB, want under 40 MiB", hwm)
	}
	// Still serving afterwards.
	if _, err := Get(ctx, p.socks, n.URLMarker); err != nil {
		t.Errorf("after the load: %v", err)
	}
}

// stateWrites parses the board's flash statistics line at exit: "State
// writes at exit: N bytes to flash in W writes over D (...".
func stateWrites(line string) (bytes, writes int, over time.Duration, ok bool) {
	_, rest, found := strings.Cut(line, "State writes at exit: ")
	if !found {
		return 0, 0, 0, false
	}
	var d string
	if _, err := fmt.Sscanf(rest, "%d bytes to flash in %d writes over %s", &bytes, &writes, &d); err != nil {
		return 0, 0, 0, false
	}
	over, err := time.ParseDuration(strings.TrimSuffix(d, ";"))
	return bytes, writes, over, err == nil
}

// TestBoardFlashWrites uses tinytor steadily (a fetch every 5 s, new SOCKS
// usernames now and then so that guard state changes) for
// TINYTOR_FLASH_MINUTES minutes (default 3) and reports the bytes the
// state writer put on flash, extrapolated to an hour.
func TestBoardFlashWrites(t *testing.T) {
	n := RequireNetwork(t)
	minutes := 3
	if v := os.Getenv("TINYTOR_FLASH_MINUTES"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 {
			t.Fatalf("TINYTOR_FLASH_MINUTES=%q", v)
		}
		minutes = m
	}
	data := t.TempDir()
	p := startTinytor(t, n, tinytorBinary(t, ""), data, nil)
	bootstrapped(t, p)
	begin := time.Now()
	end := begin.Add(time.Duration(minutes) * time.Minute)
	fetches := 0
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	// Every file in the DataDirectory (state and the directory cache, which
	// does not go through the state writer), counted whole each time it
	// changes: an estimate of all flash writes.
	type version struct {
		mod  time.Time
		size int64
	}
	seen := map[string]version{}
	allBytes := map[string]int64{}
	scan := func() {
		filepath.WalkDir(data, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			v := version{fi.ModTime(), fi.Size()}
			if seen[path] != v {
				seen[path] = v
				allBytes[filepath.Base(path)] += v.size
			}
			return nil
		})
	}
	scan()
	for i := 0; time.Now().Before(end); i++ {
		scan()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := getAs(ctx, p.socks, fmt.Sprintf("user%d", i%4), n.URLMarker)
		cancel()
		if err != nil {
			t.Errorf("fetch %d: %v", i, err)
		} else {
			fetches++
		}
		<-tick.C
	}
	p.stop()
	var bytes, writes int
	var up time.Duration
	found := false
	for _, l := range p.log() {
		if bytes, writes, up, found = stateWrites(l); found {
			break
		}
	}
	if !found {
		t.Fatalf("no flash statistics at exit:\n%s", strings.Join(p.log(), "\n"))
	}
	perHour := float64(bytes) / up.Hours()
	t.Logf("flash: %d bytes in %d writes over %s of steady use (%d fetches); naive extrapolation %.0f bytes/hour (the first write of each file is not delayed by the 10-minute coalescing, so short runs overstate it)",
		bytes, writes, up, fetches, perHour)
	if writes > 0 {
		t.Logf("%d bytes per write on average; each file is rewritten at most every 10 minutes (6 times an hour)", bytes/writes)
	}
	scan()
	total := int64(0)
	for _, b := range allBytes {
		total += b
	}
	t.Logf("all files in the DataDirectory (state writer and directory cache), counted whole on each change seen every 5 s: %d bytes %v; %.0f bytes/hour",
		total, allBytes, float64(total)/time.Since(begin).Hours())
}

// TestBoardUser starts tinytor as root with "User nobody" and a SocksPort
// on a privileged port: the port is bound first, then the process runs as
// nobody (every thread) and serves; the DataDirectory became nobody's.
// Started as nobody, "User root" is refused with a clear error.
func TestBoardUser(t *testing.T) {
	n := RequireNetwork(t)
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// A directory nobody can reach (t.TempDir's parents are 0700).
	base, err := os.MkdirTemp("", "tinytor-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(base, "data")
	// A free privileged port.
	var low netip.AddrPort
	for port := 1023; port > 600; port-- {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			low = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
			break
		}
	}
	if !low.IsValid() {
		t.Skip("no free port below 1024")
	}
	p := startTinytor(t, n, tinytorBinary(t, ""), data, nil, "User nobody", "SocksPort "+low.String())
	bootstrapped(t, p)
	p.waitFor("Switched to User nobody", time.Minute)
	f, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(f), "\n") {
		if field, v, ok := strings.Cut(l, ":"); ok && (field == "Uid" || field == "Gid") {
			want := uid
			if field == "Gid" {
				want = gid
			}
			for _, id := range strings.Fields(v) {
				if id != strconv.Itoa(want) {
					t.Errorf("%s: %s, want %d everywhere (real, effective, saved, fs)", field, v, want)
					break
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := Get(ctx, low, n.URLMarker)
	if err != nil || !strings.Contains(string(resp.Body), n.Marker) {
		t.Fatalf("marker through the privileged SocksPort after dropping to nobody: %v", err)
	}
	p.stop()
	var st syscall.Stat_t
	if err := syscall.Stat(data, &st); err != nil || int(st.Uid) != uid {
		t.Errorf("DataDirectory owner %d (%v), want nobody (%d)", st.Uid, err, uid)
	}

	// As nobody, "User root" is an error, not a silent no-op.
	bin := filepath.Join(base, "tinytor")
	src, err := os.ReadFile(tinytorBinary(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	frag, err := os.ReadFile(n.TorrcFragment)
	if err != nil {
		t.Fatal(err)
	}
	data2 := filepath.Join(base, "data2")
	if err := os.Mkdir(data2, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data2, uid, gid); err != nil {
		t.Fatal(err)
	}
	torrc := filepath.Join(base, "torrc")
	text := string(frag) + fmt.Sprintf("\nDataDirectory %s\nSocksPort %s\nUser root\n", data2, freePort(t))
	if err := os.WriteFile(torrc, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", torrc, "--defaults-torrc", "/dev/null")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "must be started as root") {
		t.Errorf("User root as nobody: %v\n%s", err, out)
	}
}

// TestBoardNotifyAndWatchdog runs tinytor as systemd would (NOTIFY_SOCKET,
// WATCHDOG_USEC) with a hardware watchdog that is a plain file: STATUS
// messages, READY=1 at 100%, WATCHDOG=1 kicks, STOPPING=1 on SIGTERM; the
// "device" gets keepalive bytes and the magic 'V' on the clean exit.
func TestBoardNotifyAndWatchdog(t *testing.T) {
	n := RequireNetwork(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 1000)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:k])
		}
	}()
	dev := filepath.Join(dir, "watchdog")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "3000000")
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil, "HardwareWatchdog "+dev, "HardwareWatchdogTimeout 3 seconds")
	bootstrapped(t, p)
	var got []string
	next := func(want string) {
		t.Helper()
		timeout := time.After(2 * time.Minute)
		for {
			select {
			case m := <-msgs:
				got = append(got, m)
				if strings.Contains(m, want) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q from tinytor; got %q", want, got)
			}
		}
	}
	next("STATUS=Bootstrapped")
	next("READY=1")
	next("WATCHDOG=1")
	next("WATCHDOG=1")
	p.stop()
	next("STOPPING=1")
	statuses := 0
	for _, m := range got {
		if strings.Contains(m, "STATUS=Bootstrapped") {
			statuses++
		}
	}
	t.Logf("%d messages, %d bootstrap statuses; last status before READY: %q", len(got), statuses, got[slices.IndexFunc(got, func(m string) bool { return strings.Contains(m, "READY=1") })])
	b, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || strings.Trim(string(b[:len(b)-1]), "k") != "" || b[len(b)-1] != 'V' {
		t.Errorf("watchdog file %q: want keepalive 'k's then the magic 'V'", b)
	}
	t.Logf("watchdog: %d kicks then magic close", len(b)-1)
}
