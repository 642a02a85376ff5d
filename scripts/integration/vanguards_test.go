package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Vanguards-lite (issue 14, proposal 333): the second hop of every onion
// circuit is one of tinytor's layer-2 guards, as its CIRC events show.

// circWatch collects the CIRC events of a control connection.
type circWatch struct {
	mu     sync.Mutex
	events []string
}

func (w *circWatch) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

func (w *circWatch) since(i int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events[i:])
}

// watchCirc authenticates a control connection with the password and
// collects its CIRC events until the test ends.
func watchCirc(t *testing.T, addr fmt.Stringer) *circWatch {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	br := bufio.NewReader(nc)
	for _, cmd := range []string{fmt.Sprintf("AUTHENTICATE %q", controlPassword), "SETEVENTS CIRC"} {
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(nc, "%s\r\n", cmd)
		l, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "250 ") {
			t.Fatalf("%s: %q %v", strings.Fields(cmd)[0], l, err)
		}
	}
	nc.SetDeadline(time.Time{})
	w := &circWatch{}
	go func() {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if l = strings.TrimRight(l, "\r\n"); strings.HasPrefix(l, "650 CIRC ") {
				w.mu.Lock()
				w.events = append(w.events, l)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// onionCirc is a BUILT onion circuit from a CIRC event.
type onionCirc struct {
	id, purpose string
	hops        []string // fingerprints, without "$" and "~nickname"
}

// builtOnionCircs returns the BUILT circuits of events whose purpose
// starts with prefix (HS_CLIENT_, HS_SERVICE_).
func builtOnionCircs(events []string, prefix string) []onionCirc {
	var out []onionCirc
	for _, e := range events {
		f := strings.Fields(e) // 650 CIRC id BUILT path KEY=V...
		if len(f) < 5 || f[3] != "BUILT" {
			continue
		}
		c := onionCirc{id: f[2]}
		for _, kv := range f[5:] {
			if p, ok := strings.CutPrefix(kv, "PURPOSE="); ok {
				c.purpose = p
			}
		}
		if !strings.HasPrefix(c.purpose, prefix) {
			continue
		}
		for _, h := range strings.Split(f[4], ",") {
			fp, _, _ := strings.Cut(strings.TrimPrefix(h, "$"), "~")
			c.hops = append(c.hops, fp)
		}
		out = append(out, c)
	}
	return out
}

// layer2FromLog replays the info log: the layer-2 guards in force after
// the last line of lines.
func layer2FromLog(lines []string) map[string]bool {
	set := map[string]bool{}
	for _, l := range lines {
		switch {
		case strings.Contains(l, "Forgetting") && strings.Contains(l, "Layer2 guards"):
			clear(set)
		case strings.Contains(l, "Adding Layer2 guard $"):
			set[guardFP(l)] = true
		case strings.Contains(l, "Layer2 guard $") && strings.Contains(l, "Removing "):
			delete(set, guardFP(l))
		}
	}
	return set
}

// guardFP is the fingerprint in "... Layer2 guard $HEX~nick".
func guardFP(l string) string {
	_, s, _ := strings.Cut(l, "Layer2 guard $")
	fp, _, _ := strings.Cut(s, "~")
	return strings.TrimSpace(fp)
}

func (p *tinytorProc) count(s string) int {
	n := 0
	for _, l := range p.log() {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// TestTinytorVanguards fetches the network's onion service four times
// (four SOCKS users: each meets the service anew, with its own
// introduction and rendezvous circuits) in each of three identities
// (NEWNYM in between, which also forgets the descriptor). In each
// identity every onion circuit's second hop is one of the same four
// layer-2 guards, the ones the log shows being chosen; rendezvous circuits
// have 3 hops, HSDir and introduction circuits 4. NEWNYM draws a new set
// (C tor's purge_vanguards_lite), and a restart keeps the last one (the
// "vanguards" state).
func TestTinytorVanguards(t *testing.T) {
	n := RequireNetwork(t)
	c := startControlled(t, n)
	c.waitFor("Bootstrapped 100%", 2*time.Minute)
	w := watchCirc(t, c.control)
	ctl := dialControl(t, c.control)
	if r := ctl.cmd(fmt.Sprintf("AUTHENTICATE %q", controlPassword)); r[0] != "250 OK" {
		t.Fatalf("AUTHENTICATE: %q", r)
	}
	fetch := func(user string) {
		t.Helper()
		var err error
		var body []byte
		for try := 0; try < 3; try++ { // a young network may fail an introduction now and then
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			_, body, err = ttfb(ctx, c.socks, user, n.Onion)
			cancel()
			if err == nil && bytes.Contains(body, []byte(n.Marker)) {
				return
			}
		}
		t.Fatalf("fetching the onion service as %s: %v (%d bytes)", user, err, len(body))
	}
	var sets []map[string]bool
	for epoch := range 3 {
		if epoch > 0 {
			before := c.count("New identity requested")
			if r := ctl.cmd("SIGNAL NEWNYM"); r[0] != "250 OK" {
				t.Fatalf("SIGNAL NEWNYM: %q", r)
			}
			// Applied at once or after the 10 s rate limit.
			c.waitForCount("New identity requested", before+1, 30*time.Second, 0)
		}
		start := w.len()
		for i := range 4 {
			fetch(fmt.Sprintf("vanguards-%d-%d", epoch, i))
		}
		set := layer2FromLog(c.log())
		if len(set) != 4 {
			t.Fatalf("identity %d: the log shows %d layer-2 guards, want 4: %v", epoch, len(set), set)
		}
		// BUILT events may trail the streams a little.
		var circs []onionCirc
		for deadline := time.Now().Add(10 * time.Second); ; {
			circs = builtOnionCircs(w.since(start), "HS_CLIENT_")
			if len(circs) >= 8 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond) // polling the collected events; nothing to wait on
		}
		if len(circs) < 8 {
			t.Fatalf("identity %d: %d onion circuits built, want at least 8 (4 introductions, 4 rendezvous)", epoch, len(circs))
		}
		seconds := map[string]int{}
		byPurpose := map[string]int{}
		for _, ci := range circs {
			want := 4
			if ci.purpose == "HS_CLIENT_REND" {
				want = 3
			}
			if len(ci.hops) != want {
				t.Errorf("identity %d: circuit %s (%s) has %d hops, want %d: %v", epoch, ci.id, ci.purpose, len(ci.hops), want, ci.hops)
				continue
			}
			if !set[ci.hops[1]] {
				t.Errorf("identity %d: circuit %s (%s): second hop %s is not a layer-2 guard %v", epoch, ci.id, ci.purpose, ci.hops[1], slices.Sorted(maps.Keys(set)))
			}
			if ci.hops[1] == ci.hops[0] || ci.hops[1] == ci.hops[len(ci.hops)-1] {
				t.Errorf("identity %d: circuit %s: layer-2 guard repeats the guard or the last hop: %v", epoch, ci.id, ci.hops)
			}
			seconds[ci.hops[1]]++
			byPurpose[ci.purpose]++
		}
		if len(seconds) > 4 {
			t.Errorf("identity %d: second hops on %d relays, want at most 4: %v", epoch, len(seconds), seconds)
		}
		t.Logf("identity %d: %d onion circuits %v, second hops %v, layer-2 guards %v", epoch, len(circs), byPurpose, seconds, slices.Sorted(maps.Keys(set)))
		sets = append(sets, set)
	}
	if maps.Equal(sets[0], sets[1]) && maps.Equal(sets[1], sets[2]) {
		t.Errorf("NEWNYM never changed the layer-2 guards: %v", slices.Sorted(maps.Keys(sets[0])))
	}

	// A restart keeps the set: it was persisted under "vanguards".
	last := sets[len(sets)-1]
	c.stop()
	found := false
	filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "vanguards" && !d.IsDir() {
			found = true
		}
		return nil
	})
	if !found {
		t.Fatalf("no \"vanguards\" state in %s", c.dir)
	}
	bin := tinytorBinary(t, "")
	p := startTinytor(t, n, bin, c.dir, nil, "ControlPort "+c.control.String(), "HashedControlPassword "+hashPassword(t, bin, controlPassword))
	p.waitFor("Loaded 4 layer-2 guards", time.Minute)
	p.waitFor("Bootstrapped 100%", 2*time.Minute)
	w = watchCirc(t, c.control)
	c.tinytorProc = p
	fetch("vanguards-restart")
	var circs []onionCirc
	for deadline := time.Now().Add(10 * time.Second); len(circs) < 2 && time.Now().Before(deadline); {
		circs = builtOnionCircs(w.since(0), "HS_CLIENT_")
		time.Sleep(100 * time.Millisecond) // polling the collected events; nothing to wait on
	}
	if len(circs) < 2 {
		t.Fatalf("after the restart: %d onion circuits built", len(circs))
	}
	for _, ci := range circs {
		if len(ci.hops) < 3 || !last[ci.hops[1]] {
			t.Errorf("after the restart: circuit %s (%s) second hop not among the saved layer-2 guards %v: %v", ci.id, ci.purpose, slices.Sorted(maps.Keys(last)), ci.hops)
		}
	}
	if set := layer2FromLog(p.log()); len(set) != 0 {
		t.Errorf("after the restart new layer-2 guards were chosen: %v", set)
	}
}

// TestTinytorVanguardsService: an onion service hosted by tinytor builds
// its HSDir, introduction and rendezvous circuits (4 hops each) through
// its layer-2 guards. The reference C tor client reaches it as four SOCKS
// users, so the service meets four rendezvous points.
func TestTinytorVanguardsService(t *testing.T) {
	n := RequireNetwork(t)
	bin := tinytorBinary(t, "")
	hsDir := filepath.Join(t.TempDir(), "hs")
	control := freePort(t)
	p := startTinytor(t, n, bin, "", nil, "HiddenServiceDir "+hsDir, "HiddenServicePort 80 "+n.HTTPAddr.String(),
		"HiddenServiceNumIntroductionPoints 2", "ControlPort "+control.String(),
		"HashedControlPassword "+hashPassword(t, bin, controlPassword))
	p.waitFor("Opened Control listener", time.Minute)
	w := watchCirc(t, control)
	waitServiceUploaded(t, p, 0, 4*time.Minute)
	onion := readHostname(t, hsDir)
	for i := range 4 {
		var err error
		var body []byte
		for try := 0; try < 3; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			_, body, err = ttfb(ctx, n.ClientSOCKS, fmt.Sprintf("vanguards-service-%d", i), onion)
			cancel()
			if err == nil && bytes.Contains(body, []byte(n.Marker)) {
				break
			}
			time.Sleep(2 * time.Second) // a descriptor may need a moment to be fetchable
		}
		if err != nil || !bytes.Contains(body, []byte(n.Marker)) {
			t.Fatalf("C tor client to the tinytor-hosted service (user %d): %v (%d bytes)", i, err, len(body))
		}
	}
	set := layer2FromLog(p.log())
	if len(set) != 4 {
		t.Fatalf("the log shows %d layer-2 guards, want 4: %v", len(set), set)
	}
	var circs []onionCirc
	byPurpose := map[string]int{}
	for deadline := time.Now().Add(10 * time.Second); ; {
		circs = builtOnionCircs(w.since(0), "HS_SERVICE_")
		clear(byPurpose)
		for _, ci := range circs {
			byPurpose[ci.purpose]++
		}
		if byPurpose["HS_SERVICE_REND"] >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the collected events; nothing to wait on
	}
	if byPurpose["HS_SERVICE_REND"] < 4 || byPurpose["HS_SERVICE_INTRO"] < 2 || byPurpose["HS_SERVICE_HSDIR"] < 1 {
		t.Fatalf("service circuits built: %v; want at least 4 rendezvous, 2 introduction and 1 HSDir", byPurpose)
	}
	seconds := map[string]int{}
	for _, ci := range circs {
		if len(ci.hops) != 4 {
			t.Errorf("circuit %s (%s) has %d hops, want 4: %v", ci.id, ci.purpose, len(ci.hops), ci.hops)
			continue
		}
		if !set[ci.hops[1]] {
			t.Errorf("circuit %s (%s): second hop %s is not a layer-2 guard %v", ci.id, ci.purpose, ci.hops[1], slices.Sorted(maps.Keys(set)))
		}
		seconds[ci.hops[1]]++
	}
	if len(seconds) > 4 {
		t.Errorf("second hops on %d relays, want at most 4: %v", len(seconds), seconds)
	}
	t.Logf("%d service circuits %v, second hops %v, layer-2 guards %v", len(circs), byPurpose, seconds, slices.Sorted(maps.Keys(set)))
}
