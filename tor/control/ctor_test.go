package control

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startCTor runs C tor with a loopback control port, no network, and the
// same HashedControlPassword as the tests, returning its control address.
func startCTor(t *testing.T) string {
	t.Helper()
	tor, err := exec.LookPath("tor")
	if err != nil {
		if os.Getenv("TINYTOR_REQUIRE_TESTNET") == "1" {
			t.Fatal("tor is required but not installed")
		}
		t.Skip("tor not installed")
	}
	if testing.Short() {
		t.Skip("starts C tor; skipped in -short mode")
	}
	dir := t.TempDir()
	torrc := strings.Join([]string{
		"DataDirectory " + filepath.Join(dir, "data"),
		"ControlPort 127.0.0.1:auto",
		"CookieAuthentication 1",
		"HashedControlPassword " + torHash,
		"DisableNetwork 1",
		"SocksPort 0",
		"Log notice stdout",
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "torrc"), []byte(torrc), 0o600); err != nil {
		t.Fatal(err)
	}
	// tor announces its control port in its log on stdout; read that log
	// until the announcement (or tor's exit), then drain it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, tor, "-f", filepath.Join(dir, "torrc"))
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		cancel()
		r.Close()
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	read := make(chan struct{})
	var log strings.Builder // written by the reader until read is closed
	go func() {
		defer close(read)
		defer r.Close()
		out := addrc // nil once sent
		sc := bufio.NewScanner(r)
		const ready = "Opened Control listener connection (ready) on "
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, ready); i >= 0 && out != nil {
				out <- line[i+len(ready):]
				out = nil
				continue
			}
			if out != nil {
				log.WriteString(line + "\n")
			}
		}
		io.Copy(io.Discard, r)
	}()
	t.Cleanup(func() { cancel(); cmd.Wait(); <-read })
	select {
	case addr := <-addrc:
		return addr
	case <-read:
		t.Fatalf("tor exited without opening its control port:\n%s", log.String())
	}
	return ""
}

// transcript sends each command and records each reply, stopping with
// "<EOF>" when the server closes the connection.
func transcript(t *testing.T, addr string, cmds []string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var out strings.Builder
	readReply := func() error {
		inData := false
		for {
			l, err := br.ReadString('\n')
			out.WriteString(l)
			if err != nil {
				return err
			}
			switch {
			case inData:
				inData = l != ".\r\n"
			case len(l) >= 4 && l[3] == '+':
				inData = true
			case len(l) >= 4 && l[3] == ' ':
				return nil
			}
		}
	}
	for _, cmd := range cmds {
		out.WriteString("> " + cmd + "\n")
		if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
			out.WriteString("<write failed>\n")
			break
		}
		if err := readReply(); err != nil {
			if errors.Is(err, io.EOF) || errors.As(err, new(*net.OpError)) {
				out.WriteString("<EOF>\n")
				break
			}
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	return out.String()
}

var (
	hexRE     = regexp.MustCompile(`(SERVERHASH|SERVERNONCE)=[0-9A-F]{64}`)
	versionRE = regexp.MustCompile(`(Tor="|version=)[^"\r]*`)
	cookieRE  = regexp.MustCompile(`COOKIEFILE="(\\.|[^"\\])*"`)
)

func normalize(s string) string {
	s = hexRE.ReplaceAllString(s, "$1=<hex>")
	s = versionRE.ReplaceAllString(s, "$1<version>")
	return cookieRE.ReplaceAllString(s, `COOKIEFILE="<path>"`)
}

// TestCompareWithCTor sends the same command sequences to C tor and to
// this server and requires identical replies (up to version, cookie path
// and random nonces).
func TestCompareWithCTor(t *testing.T) {
	torAddr := startCTor(t)
	_, ourAddr, _ := startServer(t, fullAuth(), 0)
	valid := onionAddr(validPub)
	auth := `AUTHENTICATE "foo"`
	scripts := [][]string{
		{"PROTOCOLINFO 1", "PROTOCOLINFO"},
		{"PROTOCOLINFO x"},
		{"GETINFO version"},
		{"FOO"},
		{"QUIT"},
		{`AUTHENTICATE "bar"`},
		{"AUTHENTICATE bar"},
		{"AUTHENTICATE 00"},
		{"AUTHENTICATE"},
		{"AUTHENTICATE a b"},
		{"AUTHENTICATE k=v"},
		{"AUTHCHALLENGE FOO 00"},
		{"AUTHCHALLENGE SAFECOOKIE zz"},
		{"AUTHCHALLENGE SAFECOOKIE"},
		{"AUTHCHALLENGE SAFECOOKIE 00", "PROTOCOLINFO"},
		{"AUTHCHALLENGE SAFECOOKIE 00", "AUTHCHALLENGE SAFECOOKIE 00"},
		{`AUTHCHALLENGE SAFECOOKIE "abc"`, `AUTHENTICATE "x"`},
		{"AUTHCHALLENGE SAFECOOKIE 00", "AUTHENTICATE " + strings.Repeat("00", 32)},
		{auth, "FOO bar", "GETINFO nosuch version", "GETINFO", "GETINFO events/names",
			"SETEVENTS CIRC FOO", "SETEVENTS circ hs_desc", "SETEVENTS EXTENDED", "SETEVENTS",
			"SIGNAL FOO", "SIGNAL", "SIGNAL NEWNYM",
			"CLOSECIRCUIT", "CLOSECIRCUIT 99", "CLOSESTREAM 5", "CLOSESTREAM 5 1",
			"HSFETCH", "HSFETCH abc",
			"DEL_ONION", "DEL_ONION abc", "DEL_ONION " + valid, "DEL_ONION " + onionAddr([32]byte{9}),
			"HSFETCH " + onionAddr([32]byte{9}), "ONION_CLIENT_AUTH_VIEW " + onionAddr(edKey(0)),
			"ADD_ONION", "ADD_ONION NEW:BEST", "ADD_ONION FOO:BAR Port=80",
			"ADD_ONION NEW:BEST Port=80 Flags=Bogus", "ADD_ONION NEW:RSA1024 Port=80", "ADD_ONION NEW:BEST Port=0",
			"ONION_CLIENT_AUTH_ADD", "ONION_CLIENT_AUTH_ADD abc x25519:zz",
			"ONION_CLIENT_AUTH_REMOVE abc", "ONION_CLIENT_AUTH_REMOVE " + valid,
			"ONION_CLIENT_AUTH_VIEW abc",
			"USEFEATURE VERBOSE_NAMES extended_events", "USEFEATURE FOO",
			"PROTOCOLINFO", "QUIT"},
		{auth, `AUTHENTICATE "bar"`},
	}
	for _, s := range scripts {
		theirs := normalize(transcript(t, torAddr, s))
		ours := normalize(transcript(t, ourAddr, s))
		if theirs != ours {
			t.Errorf("C tor and tinytor differ.\nC tor:\n%s\ntinytor:\n%s", theirs, ours)
		}
	}
}
