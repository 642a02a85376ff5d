package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOnionServiceReload (issue 14 item 7): HiddenServiceDir sections
// added to or removed from the torrc take effect on SIGHUP without
// touching the other services: a service added by a reload is published
// and reached by the reference C tor client while the first keeps
// running (its intro points and descriptor untouched: it is not
// restarted); a service removed by a reload stops, and the other is still
// reached.
func TestOnionServiceReload(t *testing.T) {
	n := RequireNetwork(t)
	bin := tinytorBinary(t, "")
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	svcA := []string{"HiddenServiceDir " + dirA, "HiddenServicePort 80 " + n.HTTPAddr.String(), "HiddenServiceNumIntroductionPoints 2"}
	svcB := []string{"HiddenServiceDir " + dirB, "HiddenServicePort 80 " + n.HTTPAddr.String(), "HiddenServiceNumIntroductionPoints 2"}
	p := startTinytor(t, n, bin, "", nil, svcA...)
	waitServiceUploaded(t, p, 0, 4*time.Minute)
	onionA := readHostname(t, dirA)
	base, err := os.ReadFile(p.torrc)
	if err != nil {
		t.Fatal(err)
	}
	withoutA := strings.Replace(string(base), strings.Join(svcA, "\n")+"\n", "", 1)
	if withoutA == string(base) {
		t.Fatalf("the torrc does not hold the service section as written:\n%s", base)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	reach := func(what, onion string) {
		t.Helper()
		t0 := time.Now()
		r, err := getOnion(ctx, t, n.ClientSOCKS, "http://"+onion+"/")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !strings.Contains(string(r.Body), n.Marker) {
			t.Fatalf("%s: marker missing from %q", what, r.Body)
		}
		t.Logf("%s: reached in %.1f s", what, time.Since(t0).Seconds())
	}
	reload := func(torrc string) int {
		t.Helper()
		if err := os.WriteFile(p.torrc, []byte(torrc), 0o600); err != nil {
			t.Fatal(err)
		}
		mark := len(p.log())
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		p.waitForAfter("Received reload signal (hup)", mark, time.Minute)
		return mark
	}
	startsOf := func(onion string) int {
		return len(grepLines(p.log(), "Onion service "+onion[:10]+"... starting"))
	}
	if startsOf(onionA) != 1 {
		t.Fatalf("service A started %d times before any reload", startsOf(onionA))
	}
	reach("service A", onionA)

	// Reload with B added.
	mark := reload(string(base) + strings.Join(svcB, "\n") + "\n")
	waitUploadRounds(t, p, mark, 2, 4*time.Minute)
	onionB := readHostname(t, dirB)
	reach("service B, added by SIGHUP", onionB)
	reach("service A, after the reload", onionA)
	if got := startsOf(onionA); got != 1 {
		t.Errorf("service A started %d times: the reload that added B restarted it", got)
	}

	// Reload with A removed.
	mark = reload(withoutA + strings.Join(svcB, "\n") + "\n")
	p.waitForAfter("Onion service "+onionA+" in "+dirA+" is no longer configured; stopping it.", mark, time.Minute)
	reach("service B, after A was removed", onionB)
	if got := startsOf(onionB); got != 1 {
		t.Errorf("service B started %d times: the reload that removed A restarted it", got)
	}
	for _, l := range p.log() {
		if strings.Contains(l, "[warn]") && strings.Contains(l, "Onion service") {
			t.Errorf("tinytor warned: %s", l)
		}
	}
}

// TestOnionServicePoWQuiet: a tinytor service with proof-of-work defenses
// and no flood publishes descriptors with pow-params that the reference C
// tor client accepts (suggested effort 0: it sends no solution), answers
// its introductions through the priority queue, and shows the effort on
// its MetricsPort.
func TestOnionServicePoWQuiet(t *testing.T) {
	n := RequireNetwork(t)
	hsDir := filepath.Join(t.TempDir(), "hs")
	metricsAddr := freePort(t)
	p := startTinytor(t, n, tinytorBinary(t, ""), "", nil,
		"HiddenServiceDir "+hsDir, "HiddenServicePort 80 "+n.HTTPAddr.String(), "HiddenServiceNumIntroductionPoints 2",
		"HiddenServicePoWDefensesEnabled 1", "MetricsPort "+metricsAddr.String())
	waitServiceUploaded(t, p, 0, 4*time.Minute)
	onion := readHostname(t, hsDir)
	p.waitFor("proof-of-work defenses enabled (queue rate 250, burst 2500)", time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := getOnion(ctx, t, n.ClientSOCKS, "http://"+onion+"/")
	if err != nil {
		t.Fatalf("C tor client to a tinytor service with PoW defenses: %v", err)
	}
	if !strings.Contains(string(r.Body), n.Marker) {
		t.Fatalf("marker missing from %q", r.Body)
	}
	if len(grepLines(p.log(), "Enqueued rendezvous request with effort: 0.")) == 0 {
		t.Error("the introduction did not go through the proof-of-work queue")
	}
	text := scrape(t, metricsAddr)
	series := `tor_hs_pow_suggested_effort{onion="` + strings.TrimSuffix(onion, ".onion") + `"}`
	if v := metricValue(t, text, series); v != 0 {
		t.Errorf("%s = %v, want 0", series, v)
	}
	if !strings.Contains(text, series) {
		t.Errorf("MetricsPort lacks %s", series)
	}
}

// TestControlHSDescContent (issue 14 item 7): HSFETCH on tinytor's control
// port with HS_DESC_CONTENT subscribed gives the fetched descriptor as a
// multi-line event, as C tor writes it:
// "650+HS_DESC_CONTENT <address> <descriptor id> <HSDir>", the
// descriptor, ".", "650 OK".
func TestControlHSDescContent(t *testing.T) {
	n := RequireNetwork(t)
	c := startControlled(t, n)
	ctl := dialControl(t, c.control)
	if r := ctl.cmd(`AUTHENTICATE "` + controlPassword + `"`); r[0] != "250 OK" {
		t.Fatalf("AUTHENTICATE: %q", r)
	}
	if r := ctl.cmd("SETEVENTS HS_DESC_CONTENT"); r[0] != "250 OK" {
		t.Fatalf("SETEVENTS: %q", r)
	}
	bootstrapped(t, c.tinytorProc)
	sid := strings.TrimSuffix(n.Onion, ".onion")
	if r := ctl.cmd("HSFETCH " + sid); r[0] != "250 OK" {
		t.Fatalf("HSFETCH: %q", r)
	}
	ctl.nc.SetDeadline(time.Now().Add(2 * time.Minute))
	var head string
	var body []string
	for {
		l, err := ctl.br.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for HS_DESC_CONTENT: %v", err)
		}
		l = strings.TrimRight(l, "\r\n")
		switch {
		case head == "" && strings.HasPrefix(l, "650+HS_DESC_CONTENT "+sid+" "):
			head = l
		case head != "" && l == ".":
			if end, err := ctl.br.ReadString('\n'); err != nil || end != "650 OK\r\n" {
				t.Fatalf("after the descriptor: %q, %v", end, err)
			}
			f := strings.Fields(head)
			if len(f) != 4 || !strings.HasPrefix(f[3], "$") || !strings.Contains(f[3], "~") {
				t.Errorf("event head %q: want 650+HS_DESC_CONTENT <address> <id> <$fingerprint~nickname>", head)
			}
			if len(body) < 10 || body[0] != "hs-descriptor 3" || !strings.HasPrefix(body[len(body)-1], "signature ") {
				t.Fatalf("descriptor of %d lines: %q ... %q", len(body), body[0], body[len(body)-1])
			}
			t.Logf("%s: a descriptor of %d lines", head, len(body))
			return
		case head != "":
			body = append(body, l)
		}
	}
}
