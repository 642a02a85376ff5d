// Package integration holds tinytor's integration tests against a private C
// tor network on loopback, started by scripts/testnet.
//
// TestMain starts one network per `go test` run (see main_test.go) and stops
// it at the end; a watchdog process stops it also if the test binary dies
// (panic, -timeout). Tests get it with RequireNetwork(t).
//
// Environment:
//
//	go test -short              integration tests are skipped
//	tor not on PATH             skipped: "tor not installed: install Debian's tor package"
//	TINYTOR_REQUIRE_TESTNET=1   (CI) a missing tor is a failure instead
//	TINYTOR_TEST_SECOND_NET=1   also run TestSecondNetwork (starts a 2nd network, ~40-65 s)
//	TINYTOR_TESTNET_ARGS        extra scripts/testnet start arguments, e.g. "--relays 9"
//	TINYTOR_KEEP_TESTNET_DIR=1  keep the network's directory (logs) after a passing run
//
// This file has the helpers the tests share: locating the repository,
// starting and stopping a network, loading its testnet.env into a Network, a
// small SOCKS5 client (hostname mode, so .onion names work) and a minimal
// HTTP/1.0 GET. Other packages' tests may import it too.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Authority is one v3 directory authority of the test network.
type Authority struct {
	Nickname string
	ORAddr   netip.AddrPort
	DirAddr  netip.AddrPort
	// V3Ident is the fingerprint of the authority identity key.
	V3Ident [20]byte
}

// Relay is one relay of the test network (authorities not included).
type Relay struct {
	Nickname string
	ORAddr   netip.AddrPort
	// Fingerprint is the SHA-1 of the RSA identity key.
	Fingerprint [20]byte
	// Ed25519ID is the ed25519 master identity key.
	Ed25519ID [32]byte
	// Exit reports whether the relay is an exit.
	Exit bool
	// ExitAddr is the address the HTTP server's /echo reports for streams
	// this exit carried (invalid for non-exits).
	ExitAddr netip.Addr
}

// File is a file of random bytes served by the test network's HTTP server.
type File struct {
	URL    string
	SHA256 [32]byte
}

// Network describes a running test network, as written by scripts/testnet
// into DIR/testnet.env.
type Network struct {
	Dir      string
	HTTPAddr netip.AddrPort
	// Marker is the fixed string contained in the page at URLMarker (and at
	// the onion service's root).
	Marker    string
	URLMarker string
	File1M    File
	File64M   File
	// URLEcho returns the address of the exit that carried the request.
	URLEcho string
	// Onion is the onion service's 56-character hostname plus ".onion".
	Onion string
	// ClientSOCKS is the reference C tor client's SocksPort.
	ClientSOCKS netip.AddrPort
	// ClientControl is the reference client's ControlPort (cookie auth).
	ClientControl netip.AddrPort
	ClientCookie  string
	// TorrcFragment is the path of the torrc lines a client needs to join.
	TorrcFragment  string
	VotingInterval time.Duration
	ExitAddrs      []netip.Addr
	Authorities    []Authority
	Relays         []Relay
	// Env holds every TESTNET_* variable as read.
	Env map[string]string
}

// RepoRoot returns the root of the tinytor repository, found by walking up
// from the working directory to the go.mod of module tinytor.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding repository root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module tinytor\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding repository root: no go.mod of module tinytor above the working directory")
		}
		dir = parent
	}
}

// ParseEnv parses the shell KEY=VALUE lines of a testnet.env file. Blank
// lines and lines starting with '#' are ignored; keys must start with
// TESTNET_ and values must not contain spaces.
func ParseEnv(data []byte) (map[string]string, error) {
	env := make(map[string]string)
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: no '=' in %q", i+1, line)
		}
		if !strings.HasPrefix(k, "TESTNET_") {
			return nil, fmt.Errorf("line %d: key %q lacks the TESTNET_ prefix", i+1, k)
		}
		for _, c := range k {
			if !(c == '_' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return nil, fmt.Errorf("line %d: bad character %q in key %q", i+1, c, k)
			}
		}
		if strings.ContainsAny(v, " \t") {
			return nil, fmt.Errorf("line %d: value of %s contains white space", i+1, k)
		}
		if _, dup := env[k]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %s", i+1, k)
		}
		env[k] = v
	}
	return env, nil
}

// LoadEnv reads and decodes a testnet.env file.
func LoadEnv(path string) (*Network, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading test network: %w", err)
	}
	n, err := DecodeEnv(data)
	if err != nil {
		return nil, fmt.Errorf("loading test network from %s: %w", path, err)
	}
	return n, nil
}

// envReader decodes typed values from an env map, keeping the first error.
type envReader struct {
	env map[string]string
	err error
}

func (r *envReader) fail(key, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
	}
}

func (r *envReader) str(key string) string {
	v, ok := r.env[key]
	if !ok || v == "" {
		r.fail(key, "missing")
	}
	return v
}

func (r *envReader) int(key string) int {
	s := r.str(key)
	v, err := strconv.Atoi(s)
	if err != nil && s != "" {
		r.fail(key, "not an integer: %q", s)
	}
	return v
}

func (r *envReader) addrPort(key, s string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(s)
	if err != nil && s != "" {
		r.fail(key, "bad address %q: %v", s, err)
	}
	return ap
}

func (r *envReader) hexBytes(key, s string, out []byte) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(out) {
		r.fail(key, "want %d hex-encoded bytes, got %q", len(out), s)
		return
	}
	copy(out, b)
}

func (r *envReader) url(key string) string {
	s := r.str(key)
	if u, err := url.Parse(s); s != "" && (err != nil || u.Scheme != "http" || u.Host == "") {
		r.fail(key, "bad http URL %q", s)
	}
	return s
}

// DecodeEnv decodes the contents of a testnet.env file.
func DecodeEnv(data []byte) (*Network, error) {
	env, err := ParseEnv(data)
	if err != nil {
		return nil, err
	}
	r := &envReader{env: env}
	n := &Network{Env: env}
	n.Dir = r.str("TESTNET_DIR")
	n.HTTPAddr = r.addrPort("TESTNET_HTTP_ADDR", r.str("TESTNET_HTTP_ADDR"))
	n.Marker = r.str("TESTNET_MARKER")
	n.URLMarker = r.url("TESTNET_URL_MARKER")
	n.File1M.URL = r.url("TESTNET_URL_1M")
	r.hexBytes("TESTNET_SHA256_1M", r.str("TESTNET_SHA256_1M"), n.File1M.SHA256[:])
	n.File64M.URL = r.url("TESTNET_URL_64M")
	r.hexBytes("TESTNET_SHA256_64M", r.str("TESTNET_SHA256_64M"), n.File64M.SHA256[:])
	n.URLEcho = r.url("TESTNET_URL_ECHO")
	n.Onion = r.str("TESTNET_ONION")
	if len(n.Onion) != 62 || !strings.HasSuffix(n.Onion, ".onion") {
		r.fail("TESTNET_ONION", "want 56 characters plus .onion, got %q", n.Onion)
	}
	n.ClientSOCKS = r.addrPort("TESTNET_CLIENT_SOCKS", r.str("TESTNET_CLIENT_SOCKS"))
	if port := r.int("TESTNET_CLIENT_CONTROL"); port > 0 && port < 65536 {
		n.ClientControl = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
	} else {
		r.fail("TESTNET_CLIENT_CONTROL", "bad port %d", port)
	}
	n.ClientCookie = r.str("TESTNET_CLIENT_COOKIE")
	n.TorrcFragment = r.str("TESTNET_TORRC_FRAGMENT")
	n.VotingInterval = time.Duration(r.int("TESTNET_VOTING_INTERVAL")) * time.Second
	for _, s := range strings.Split(r.str("TESTNET_EXIT_ADDRS"), ",") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			r.fail("TESTNET_EXIT_ADDRS", "bad address %q", s)
			break
		}
		n.ExitAddrs = append(n.ExitAddrs, a)
	}
	for i := 1; i <= r.int("TESTNET_AUTH_COUNT") && r.err == nil; i++ {
		key := fmt.Sprintf("TESTNET_AUTH_%d", i)
		f := strings.Split(r.str(key), ",")
		if len(f) != 4 {
			r.fail(key, "want nickname,orport,dirport,v3ident")
			break
		}
		a := Authority{Nickname: f[0], ORAddr: r.addrPort(key, f[1]), DirAddr: r.addrPort(key, f[2])}
		r.hexBytes(key, f[3], a.V3Ident[:])
		n.Authorities = append(n.Authorities, a)
	}
	for i := 1; i <= r.int("TESTNET_RELAY_COUNT") && r.err == nil; i++ {
		key := fmt.Sprintf("TESTNET_RELAY_%d", i)
		f := strings.Split(r.str(key), ",")
		if len(f) != 4 {
			r.fail(key, "want nickname,orport,fingerprint,ed25519id")
			break
		}
		rel := Relay{Nickname: f[0], ORAddr: r.addrPort(key, f[1])}
		r.hexBytes(key, f[2], rel.Fingerprint[:])
		id, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[3], "="))
		if err != nil || len(id) != 32 {
			r.fail(key, "bad ed25519 identity %q", f[3])
		}
		copy(rel.Ed25519ID[:], id)
		// Exits are the first relays, in the order of TESTNET_EXIT_ADDRS.
		if i <= len(n.ExitAddrs) {
			rel.Exit = true
			rel.ExitAddr = n.ExitAddrs[i-1]
		}
		n.Relays = append(n.Relays, rel)
	}
	if r.err != nil {
		return nil, r.err
	}
	if c := r.int("TESTNET_EXIT_COUNT"); c != len(n.ExitAddrs) {
		return nil, fmt.Errorf("TESTNET_EXIT_COUNT is %d but TESTNET_EXIT_ADDRS has %d addresses", c, len(n.ExitAddrs))
	}
	return n, nil
}

// Launcher starts and stops test networks with scripts/testnet.
type Launcher struct {
	// Script is the path of scripts/testnet.
	Script string
	// Log receives the launcher's progress output; nil discards it.
	Log io.Writer
}

// NewLauncher returns a Launcher using the repository's scripts/testnet.
func NewLauncher(log io.Writer) (*Launcher, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	return &Launcher{Script: filepath.Join(root, "scripts", "testnet"), Log: log}, nil
}

func (l *Launcher) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, l.Script, args...)
	// Let the script's EXIT trap stop what it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	out := l.Log
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout = out
	cmd.Stderr = out
	return cmd
}

// Start starts a network in dir (created if needed) and returns it once
// usable. extra are further arguments such as "--relays", "9".
func (l *Launcher) Start(ctx context.Context, dir string, extra ...string) (*Network, error) {
	args := append([]string{"start", dir}, extra...)
	if err := l.command(ctx, args...).Run(); err != nil {
		return nil, fmt.Errorf("scripts/testnet start %s: %w", dir, err)
	}
	return LoadEnv(filepath.Join(dir, "testnet.env"))
}

// Stop stops the network in dir and waits for its processes to exit.
func (l *Launcher) Stop(ctx context.Context, dir string) error {
	if err := l.command(ctx, "stop", dir).Run(); err != nil {
		return fmt.Errorf("scripts/testnet stop %s: %w", dir, err)
	}
	return nil
}

// Watchdog is a helper process that stops a network when the process that
// created it dies, whatever the cause (panic, timeout, signal).
type Watchdog struct {
	cmd *exec.Cmd
	w   *os.File
}

// StartWatchdog starts a watchdog for the network in dir. It holds the write
// end of a pipe; when this process exits, the watchdog reads EOF and runs
// scripts/testnet stop dir if the network is still recorded as running.
func (l *Launcher) StartWatchdog(dir string) (*Watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting watchdog: %w", err)
	}
	defer r.Close()
	logf, err := os.Create(filepath.Join(dir, "watchdog.log"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("starting watchdog: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("/bin/sh", "-c",
		`cat >/dev/null; if [ -f "$2/testnet.pids" ]; then exec "$1" stop "$2"; fi`,
		"watchdog", l.Script, dir)
	cmd.Stdin = r
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Own process group: a Ctrl-C to the test must not kill the watchdog.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("starting watchdog: %w", err)
	}
	return &Watchdog{cmd: cmd, w: w}, nil
}

// Release closes the pipe and waits for the watchdog to finish (it stops the
// network if it is still running).
func (d *Watchdog) Release() error {
	d.w.Close()
	if err := d.cmd.Wait(); err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	return nil
}

// DialSOCKS5 connects through the SOCKS5 proxy at proxy to host:port, sending
// host as a domain name (ATYP 3) so that the proxy resolves it; this is what
// makes .onion names work.
func DialSOCKS5(ctx context.Context, proxy netip.AddrPort, host string, port uint16) (net.Conn, error) {
	if len(host) == 0 || len(host) > 255 {
		return nil, fmt.Errorf("socks5: host name length %d out of range 1..255", len(host))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", proxy.String())
	if err != nil {
		return nil, fmt.Errorf("socks5: connecting to proxy %s: %w", proxy, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := socks5Handshake(conn, host, port); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("socks5 via %s to %s:%d: %w (%w)", proxy, host, port, err, ctx.Err())
		}
		return nil, fmt.Errorf("socks5 via %s to %s:%d: %w", proxy, host, port, err)
	}
	return conn, nil
}

// socksReplyError is a SOCKS5 reply code other than success.
type socksReplyError byte

func (e socksReplyError) Error() string {
	names := map[byte]string{1: "general failure", 2: "not allowed by ruleset", 3: "network unreachable",
		4: "host unreachable", 5: "connection refused", 6: "TTL expired", 7: "command not supported",
		8: "address type not supported"}
	if s, ok := names[byte(e)]; ok {
		return fmt.Sprintf("reply %d (%s)", byte(e), s)
	}
	return fmt.Sprintf("reply %d", byte(e))
}

func socks5Handshake(conn net.Conn, host string, port uint16) error {
	// Greeting: version 5, one method, no authentication.
	if _, err := conn.Write([]byte{5, 1, 0}); err != nil {
		return fmt.Errorf("writing greeting: %w", err)
	}
	var b [4]byte
	if _, err := io.ReadFull(conn, b[:2]); err != nil {
		return fmt.Errorf("reading method choice: %w", err)
	}
	if b[0] != 5 || b[1] != 0 {
		return fmt.Errorf("proxy chose version %d method %d, want 5/0", b[0], b[1])
	}
	req := []byte{5, 1, 0, 3, byte(len(host))}
	req = append(req, host...)
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("writing CONNECT: %w", err)
	}
	if _, err := io.ReadFull(conn, b[:4]); err != nil {
		return fmt.Errorf("reading reply: %w", err)
	}
	if b[0] != 5 {
		return fmt.Errorf("reply version %d, want 5", b[0])
	}
	if b[1] != 0 {
		return socksReplyError(b[1])
	}
	var skip int
	switch b[3] {
	case 1:
		skip = 4
	case 4:
		skip = 16
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return fmt.Errorf("reading reply address length: %w", err)
		}
		skip = int(l[0])
	default:
		return fmt.Errorf("reply address type %d unknown", b[3])
	}
	if _, err := io.ReadFull(conn, make([]byte, skip+2)); err != nil {
		return fmt.Errorf("reading reply address: %w", err)
	}
	return nil
}

// Response is an HTTP response read by Get.
type Response struct {
	Status int
	// Header maps lower-case header names to their last value.
	Header map[string]string
	Body   []byte
}

// Get fetches rawURL (http only) with HTTP/1.0 through the SOCKS5 proxy at
// proxy. The whole body is read into memory.
func Get(ctx context.Context, proxy netip.AddrPort, rawURL string) (*Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("GET %s: scheme %q not supported", rawURL, u.Scheme)
	}
	port := uint16(80)
	if p := u.Port(); p != "" {
		v, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("GET %s: bad port: %w", rawURL, err)
		}
		port = uint16(v)
	}
	conn, err := DialSOCKS5(ctx, proxy, u.Hostname(), port)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	resp, err := httpGet(conn, u)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("GET %s: %w (%w)", rawURL, err, ctx.Err())
		}
		return nil, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	return resp, nil
}

func httpGet(conn net.Conn, u *url.URL) (*Response, error) {
	req := fmt.Sprintf("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: tinytor-integration\r\n\r\n", u.RequestURI(), u.Host)
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, fmt.Errorf("writing request: %w", err)
	}
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("reading status line: %w", err)
	}
	f := strings.Fields(status)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return nil, fmt.Errorf("bad status line %q", status)
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return nil, fmt.Errorf("bad status code in %q", status)
	}
	resp := &Response{Status: code, Header: make(map[string]string)}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("reading headers: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("bad header line %q", line)
		}
		resp.Header[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	resp.Body, err = io.ReadAll(br)
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if cl, ok := resp.Header["content-length"]; ok {
		if n, err := strconv.Atoi(cl); err != nil || n != len(resp.Body) {
			return nil, fmt.Errorf("body has %d bytes, Content-Length says %q", len(resp.Body), cl)
		}
	}
	return resp, nil
}
