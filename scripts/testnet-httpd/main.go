// Command testnet-httpd is the HTTP server of the private test network
// started by scripts/testnet. It is a test tool only and is never linked into
// tinytor.
//
// It listens on a loopback address and serves:
//
//	/      a small page containing a fixed marker string
//	/1M    the file 1M from the root directory
//	/64M   the file 64M from the root directory
//	/echo  the source IP address of the exit that carried the request,
//	       followed by a newline
//
// Any other path gets 404.
//
// About /echo: each exit of the test network is configured with its own
// OutboundBindAddressExit (exit k -> 127.0.0.(k+1)), but C tor ignores that
// option for connections to loopback destinations, so every exit connection
// to this server really comes from 127.0.0.1. To let a test tell which exit
// carried a stream, the server finds the process owning the peer socket
// (/proc/net/tcp and /proc/PID/fd) and, if it is one of the exits named by
// -exits (name=address pairs) in -pids (the launcher's "pid name" file),
// answers with that exit's designated address. Otherwise it answers with the
// real source IP. The headers X-Testnet-Peer (real peer address) and
// X-Testnet-Exit (exit nickname, if identified) tell the two apart.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	root := flag.String("root", ".", "directory holding the files 1M and 64M")
	marker := flag.String("marker", "", "marker string included in the / page")
	pids := flag.String("pids", "", `file of "pid name" lines naming the network's processes`)
	exits := flag.String("exits", "", "comma-separated name=address pairs of the exits")
	flag.Parse()
	ex, err := parseExits(*exits)
	if err != nil {
		log.Fatalf("testnet-httpd: %v", err)
	}
	id := &exitIdentifier{pidsFile: *pids, exits: ex}
	if err := run(*addr, *root, *marker, id); err != nil {
		log.Fatalf("testnet-httpd: %v", err)
	}
}

func run(addr, root, marker string, id *exitIdentifier) error {
	if marker == "" {
		return errors.New("-marker must not be empty")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parsing -addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: host must be a loopback IP literal", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	log.Printf("testnet-httpd: listening on %s", ln.Addr())

	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<html><body><p>%s</p></body></html>\n", marker)
	})
	for _, name := range []string{"1M", "64M"} {
		path := filepath.Join(root, name)
		mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) {
			f, err := os.Open(path)
			if err != nil {
				http.Error(w, "file missing", http.StatusInternalServerError)
				return
			}
			defer f.Close()
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(w, r, name, time.Time{}, f)
		})
	}
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			http.Error(w, "bad remote address", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Testnet-Peer", r.RemoteAddr)
		if name, exitAddr, ok := id.identify(r.RemoteAddr, r.Context().Value(http.LocalAddrContextKey)); ok {
			w.Header().Set("X-Testnet-Exit", name)
			host = exitAddr
		} else {
			log.Printf("testnet-httpd: /echo: no exit owns the peer socket of %s; answering its real address", r.RemoteAddr)
		}
		fmt.Fprintf(w, "%s\n", host)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	return srv.Serve(ln)
}

// exitIdentifier maps a TCP peer to the exit process that owns the socket.
type exitIdentifier struct {
	pidsFile string
	exits    map[string]string // nickname -> designated address
}

func parseExits(s string) (map[string]string, error) {
	m := make(map[string]string)
	if s == "" {
		return m, nil
	}
	for _, kv := range strings.Split(s, ",") {
		name, addr, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("-exits: bad pair %q, want name=address", kv)
		}
		if _, err := netip.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("-exits: bad address in %q: %w", kv, err)
		}
		m[name] = addr
	}
	return m, nil
}

// identify returns the nickname and designated address of the exit owning
// the client side of the connection from remote to local.
func (e *exitIdentifier) identify(remote string, local any) (name, addr string, ok bool) {
	if e.pidsFile == "" || len(e.exits) == 0 {
		return "", "", false
	}
	la, isAddr := local.(net.Addr)
	if !isAddr {
		return "", "", false
	}
	peer, err := netip.ParseAddrPort(remote)
	if err != nil {
		return "", "", false
	}
	self, err := netip.ParseAddrPort(la.String())
	if err != nil {
		return "", "", false
	}
	inode, err := socketInode(peer, self)
	if err != nil {
		log.Printf("testnet-httpd: /echo: %v", err)
		return "", "", false
	}
	want := "socket:[" + inode + "]"
	f, err := os.Open(e.pidsFile)
	if err != nil {
		return "", "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		exitAddr, isExit := e.exits[fields[1]]
		if !isExit {
			continue
		}
		fdDir := filepath.Join("/proc", fields[0], "fd")
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, ent := range ents {
			if target, err := os.Readlink(filepath.Join(fdDir, ent.Name())); err == nil && target == want {
				return fields[1], exitAddr, true
			}
		}
	}
	return "", "", false
}

// socketInode finds in /proc/net/tcp the inode of the socket whose local
// address is local and whose remote address is remote.
func socketInode(local, remote netip.AddrPort) (string, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return "", fmt.Errorf("reading socket table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[0] == "sl" {
			continue
		}
		l, err1 := parseProcAddr(fields[1])
		r, err2 := parseProcAddr(fields[2])
		if err1 != nil || err2 != nil {
			continue
		}
		// Only established sockets: with tcp_tw_reuse, a TIME_WAIT entry
		// (inode 0) of an earlier connection can have the same addresses.
		if l == local && r == remote && fields[3] == "01" && fields[9] != "0" {
			return fields[9], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading socket table: %w", err)
	}
	return "", fmt.Errorf("no socket %s -> %s in /proc/net/tcp", local, remote)
}

// parseProcAddr parses an IPv4 "AABBCCDD:PPPP" address of /proc/net/tcp
// (address in host byte order, port big-endian hex).
func parseProcAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad address %q: %w", s, err)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q: %w", s, err)
	}
	// The kernel prints the in-memory (network order) address read as a
	// native-endian word, in big-endian hex.
	var ip [4]byte
	binary.NativeEndian.PutUint32(ip[:], binary.BigEndian.Uint32(raw))
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(port)), nil
}
