package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// This file tests onion services hosted by tinytor (issue 6).

// hsUploadRE matches tinytor's log of a started upload round.
var hsUploadRE = regexp.MustCompile(`uploading descriptor for period (\d+) \(revision (\d+), (\d+) introduction points\) to (\d+) HSDirs`)

// waitServiceUploaded waits until tinytor has uploaded its descriptors
// to every HSDir of one round: as many "uploaded to" lines as the upload
// lines announced, counted from line from.
func waitServiceUploaded(t *testing.T, p *tinytorProc, from int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		want, got := 0, 0
		lines := p.log()
		for _, l := range lines[min(from, len(lines)):] {
			if m := hsUploadRE.FindStringSubmatch(l); m != nil {
				k, _ := strconv.Atoi(m[4])
				want += k
			}
			if strings.Contains(l, "Onion service") && strings.Contains(l, " uploaded to ") {
				got++
			}
		}
		if want > 0 && got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tinytor's onion service did not upload its descriptors within %s (%d of %d uploads done)", timeout, got, want)
		}
		// Wait for the next log line (or the deadline).
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.exited:
			t.Fatal("tinytor exited")
		case <-time.After(time.Until(deadline)):
		}
	}
}

// svcNewnym sends SIGNAL NEWNYM to the reference C tor client, which
// purges its onion service client state.
func svcNewnym(t *testing.T, n *Network) {
	t.Helper()
	cookie, err := os.ReadFile(n.ClientCookie)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", n.ClientControl.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	for _, cmd := range []string{"AUTHENTICATE " + hex.EncodeToString(cookie), "SIGNAL NEWNYM"} {
		fmt.Fprintf(conn, "%s\r\n", cmd)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "250") {
			t.Fatalf("reference client: %s: %q %v", strings.Fields(cmd)[0], line, err)
		}
	}
}

// onionURL is u with its host replaced by the onion address.
func onionURL(t *testing.T, u, onion string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.Host = onion
	return pu.String()
}

// getOnion fetches rawURL through proxy, retrying (a fresh descriptor
// may take a moment to be fetchable) until ctx ends.
func getOnion(ctx context.Context, t *testing.T, proxy netip.AddrPort, rawURL string) (*Response, error) {
	t.Helper()
	var last error
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 90*time.Second)
		r, err := Get(actx, proxy, rawURL)
		cancel()
		if err == nil {
			return r, nil
		}
		last = err
		t.Logf("GET %s attempt %d: %v", rawURL, attempt+1, err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(5 * time.Second):
		}
	}
}

func readHostname(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "hostname"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestOnionServiceHosting: tinytor hosts a service that the reference C
// tor client reaches (marker page, 1 MiB file); unknown ports are refused;
// after a restart the service is reachable again under the same address.
func TestOnionServiceHosting(t *testing.T) {
	n := RequireNetwork(t)
	bin := tinytorBinary(t, "")
	hsDir := filepath.Join(t.TempDir(), "hs")
	dataDir := t.TempDir()
	lines := []string{"HiddenServiceDir " + hsDir, "HiddenServicePort 80 " + n.HTTPAddr.String(), "HiddenServiceNumIntroductionPoints 2"}
	start := time.Now()
	p := startTinytor(t, n, bin, dataDir, nil, lines...)
	waitServiceUploaded(t, p, 0, 4*time.Minute)
	t.Logf("descriptors uploaded %.1f s after tinytor started", time.Since(start).Seconds())
	onion := readHostname(t, hsDir)
	for _, f := range []string{"hs_ed25519_secret_key", "hs_ed25519_public_key", "hostname"} {
		fi, err := os.Stat(filepath.Join(hsDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	svcNewnym(t, n)
	t0 := time.Now()
	r, err := getOnion(ctx, t, n.ClientSOCKS, "http://"+onion+"/")
	if err != nil {
		t.Fatalf("C tor client to the tinytor-hosted service: %v", err)
	}
	if !strings.Contains(string(r.Body), n.Marker) {
		t.Fatalf("marker missing from %q", r.Body)
	}
	t.Logf("C tor client fetched the marker page in %.1f s", time.Since(t0).Seconds())
	r, err = getOnion(ctx, t, n.ClientSOCKS, onionURL(t, n.File1M.URL, onion))
	if err != nil {
		t.Fatalf("1 MiB through the tinytor-hosted service: %v", err)
	}
	if got := sha256.Sum256(r.Body); got != n.File1M.SHA256 {
		t.Fatalf("1 MiB: %d bytes, sha256 %x, want %x", len(r.Body), got, n.File1M.SHA256)
	}
	// A port the service does not offer.
	if c, err := DialSOCKS5(ctx, n.ClientSOCKS, onion, 82); err == nil {
		c.Close()
		t.Error("a stream to an unconfigured port was accepted")
	}

	// Restart: same address, reachable again.
	p.stop()
	restart := time.Now()
	p2 := startTinytor(t, n, bin, dataDir, nil, lines...)
	waitServiceUploaded(t, p2, 0, 4*time.Minute)
	if got := readHostname(t, hsDir); got != onion {
		t.Fatalf("address changed across restart: %s, then %s", onion, got)
	}
	svcNewnym(t, n)
	r, err = getOnion(ctx, t, n.ClientSOCKS, "http://"+onion+"/")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if !strings.Contains(string(r.Body), n.Marker) {
		t.Fatalf("after restart: marker missing from %q", r.Body)
	}
	t.Logf("after a restart the service was reachable again in %.1f s", time.Since(restart).Seconds())
}
