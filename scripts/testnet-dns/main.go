// Command testnet-dns is the DNS server of the private test network started
// by scripts/testnet: the exits' resolv.conf names it, so that a client of
// the network can resolve test names through an exit (RESOLVE cells, DNSPort,
// SOCKS with host names). It is a test tool only and is never linked into
// tinytor.
//
// It listens on a loopback address, UDP and TCP (RFC 1035 framing), and
// answers only class IN queries with one question:
//
//   - the names given with -name (name=IPv4 pairs, e.g. marker.test=127.0.0.1):
//     an A record with that address, TTL -ttl; AAAA and other types get an
//     empty NOERROR answer;
//   - names under -ip-suffix (default ip.test) that spell an IPv4 address as
//     a-b-c-d, e.g. 10-99-7-9.ip.test: an A record with that address, so a
//     test can have a name for an address it chose at run time (as nip.io
//     does on the internet);
//   - anything else: NXDOMAIN. Opcodes other than QUERY get NOTIMP,
//     malformed queries FORMERR (or nothing, if not even the header is there).
//
// Names match case-insensitively and the question is echoed as received:
// C tor exits randomise the case of their queries (ServerDNSRandomizeCase)
// and check it in the answer.
//
// This is a fixed-answer responder written for the test network only: the
// project's DNS code (tinytor's DNSPort) uses golang.org/x/net/dns/dnsmessage.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on (UDP and TCP)")
	names := flag.String("name", "", "comma-separated name=IPv4 pairs to answer, e.g. marker.test=127.0.0.1")
	suffix := flag.String("ip-suffix", "ip.test", "names a-b-c-d.SUFFIX resolve to a.b.c.d (empty: off)")
	ttl := flag.Uint("ttl", 60, "TTL of the answers, seconds")
	flag.Parse()
	z, err := newZone(*names, *suffix, uint32(*ttl))
	if err != nil {
		log.Fatalf("testnet-dns: %v", err)
	}
	if err := run(*addr, z); err != nil {
		log.Fatalf("testnet-dns: %v", err)
	}
}

func run(addr string, z *zone) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("parsing -addr %q: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("-addr %q: must be a loopback address", addr)
	}
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Same port for UDP (with :0, the port TCP got).
	uc, err := net.ListenPacket("udp", tl.Addr().String())
	if err != nil {
		return err
	}
	log.Printf("testnet-dns: listening on %s (udp and tcp)", tl.Addr())
	go serveTCP(tl, z)
	buf := make([]byte, 65535)
	for {
		n, peer, err := uc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if resp := z.answer(buf[:n]); resp != nil {
			uc.WriteTo(resp, peer)
		}
	}
}

func serveTCP(l net.Listener, z *zone) {
	for {
		c, err := l.Accept()
		if err != nil {
			log.Printf("testnet-dns: accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			var hdr [2]byte
			for {
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				resp := z.answer(msg)
				if resp == nil {
					return
				}
				if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)); err != nil {
					return
				}
			}
		}()
	}
}

type zone struct {
	names  map[string]netip.Addr // lower-case, no trailing dot
	suffix string                // lower-case, no dots around
	ttl    uint32
}

func newZone(names, suffix string, ttl uint32) (*zone, error) {
	z := &zone{names: map[string]netip.Addr{}, suffix: strings.ToLower(strings.Trim(suffix, ".")), ttl: ttl}
	if names == "" {
		return z, nil
	}
	for _, kv := range strings.Split(names, ",") {
		name, a, ok := strings.Cut(kv, "=")
		ip, err := netip.ParseAddr(a)
		if !ok || name == "" || err != nil || !ip.Is4() {
			return nil, fmt.Errorf("-name: bad pair %q, want name=IPv4", kv)
		}
		z.names[strings.ToLower(strings.Trim(name, "."))] = ip
	}
	return z, nil
}

// lookup returns the address for name (lower-case, no trailing dot).
func (z *zone) lookup(name string) (netip.Addr, bool) {
	if ip, ok := z.names[name]; ok {
		return ip, true
	}
	if z.suffix == "" {
		return netip.Addr{}, false
	}
	label, ok := strings.CutSuffix(name, "."+z.suffix)
	if !ok || strings.Contains(label, ".") {
		return netip.Addr{}, false
	}
	var b [4]byte
	parts := strings.Split(label, "-")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 8)
		if err != nil || (len(p) > 1 && p[0] == '0') {
			return netip.Addr{}, false
		}
		b[i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

const (
	rcodeFormErr  = 1
	rcodeNXDomain = 3
	rcodeNotImp   = 4
	typeA         = 1
	classIN       = 1
)

var errMalformed = errors.New("malformed question")

// parseQuestion reads the one question starting at offset 12: its name
// (lower-cased, dotted, no trailing dot), type and class, and the offset
// just past it. Compression pointers are refused (none belong in a query's
// first name).
func parseQuestion(msg []byte) (name string, qtype, qclass uint16, end int, err error) {
	var sb strings.Builder
	i := 12
	for {
		if i >= len(msg) {
			return "", 0, 0, 0, errMalformed
		}
		l := int(msg[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(msg) || sb.Len()+l+1 > 254 {
			return "", 0, 0, 0, errMalformed
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		sb.Write(msg[i : i+l])
		i += l
	}
	if i+4 > len(msg) {
		return "", 0, 0, 0, errMalformed
	}
	return strings.ToLower(sb.String()), binary.BigEndian.Uint16(msg[i:]), binary.BigEndian.Uint16(msg[i+2:]), i + 4, nil
}

// answer builds the response to the query msg, or nil to send nothing.
func (z *zone) answer(msg []byte) []byte {
	if len(msg) < 12 || msg[2]&0x80 != 0 { // too short, or a response
		return nil
	}
	hdr := func(rcode byte, qd, an uint16) []byte {
		r := make([]byte, 12, 512)
		copy(r[:2], msg[:2])
		r[2] = 0x80 | msg[2]&0x79 | 0x04 // QR, opcode and RD copied, AA
		r[3] = 0x80 | rcode              // RA
		binary.BigEndian.PutUint16(r[4:], qd)
		binary.BigEndian.PutUint16(r[6:], an)
		return r
	}
	if op := (msg[2] >> 3) & 0x0f; op != 0 {
		return hdr(rcodeNotImp, 0, 0)
	}
	if binary.BigEndian.Uint16(msg[4:]) != 1 {
		return hdr(rcodeFormErr, 0, 0)
	}
	name, qtype, qclass, end, err := parseQuestion(msg)
	if err != nil {
		return hdr(rcodeFormErr, 0, 0)
	}
	question := msg[12:end]
	ip, found := z.lookup(name)
	if qclass != classIN {
		found = false
	}
	if !found {
		return append(hdr(rcodeNXDomain, 1, 0), question...)
	}
	if qtype != typeA {
		return append(hdr(0, 1, 0), question...) // name exists, no such record
	}
	r := append(hdr(0, 1, 1), question...)
	r = append(r, 0xc0, 12) // pointer to the question's name
	r = binary.BigEndian.AppendUint16(r, typeA)
	r = binary.BigEndian.AppendUint16(r, classIN)
	r = binary.BigEndian.AppendUint32(r, z.ttl)
	r = binary.BigEndian.AppendUint16(r, 4)
	a4 := ip.As4()
	return append(r, a4[:]...)
}
