// Package socks is tinytor's SOCKS front end: it parses SOCKS4, SOCKS4a and
// SOCKS5 requests (with Tor's RESOLVE and RESOLVE_PTR extensions), applies a
// listener's policy and flags, hands the request to a Dialer and relays
// bytes. It knows nothing of circuits; the Dialer does.
//
// Specifications: RFC 1928 (SOCKS5), RFC 1929 (username/password), the
// SOCKS4 and SOCKS4a notes, torspec socks-extensions.txt and proposal 304
// (extended error codes). Where those are silent the code follows C tor's
// proto_socks.c and connection_edge.c.
package socks

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"tinytor/tor/errfmt"
)

// Command is a SOCKS command.
type Command byte

// The commands tinytor accepts (BIND and UDP ASSOCIATE are not supported,
// as in C tor).
const (
	Connect    Command = 0x01 // CONNECT
	Resolve    Command = 0xF0 // Tor extension: resolve a hostname
	ResolvePTR Command = 0xF1 // Tor extension: reverse-resolve an address (SOCKS5 only)
)

// String returns the command's name.
func (c Command) String() string {
	switch c {
	case Connect:
		return "CONNECT"
	case Resolve:
		return "RESOLVE"
	case ResolvePTR:
		return "RESOLVE_PTR"
	case 0x02:
		return "BIND"
	case 0x03:
		return "UDP ASSOCIATE"
	}
	return fmt.Sprintf("command 0x%02x", byte(c))
}

// AddrType tells how the client named the destination.
type AddrType byte

// Address types. SOCKS4 requests are AddrIPv4; SOCKS4a requests AddrDomain.
const (
	AddrIPv4   AddrType = 1
	AddrDomain AddrType = 3
	AddrIPv6   AddrType = 4
)

// SOCKS5 address type bytes (RFC 1928 section 5).
const (
	atypIPv4   = 0x01
	atypDomain = 0x03
	atypIPv6   = 0x04
)

// SOCKS5 authentication methods (RFC 1928 section 3).
const (
	methodNoAuth       = 0x00
	methodUserPass     = 0x02
	methodNoAcceptable = 0xFF
)

// maxField is the longest hostname, username or password accepted. SOCKS5
// length bytes cap them at 255; SOCKS4 fields are held to the same limit.
const maxField = 255

// Request is one parsed SOCKS request.
type Request struct {
	// Version is 4 (SOCKS4 and SOCKS4a) or 5.
	Version int
	// Command is Connect, Resolve or ResolvePTR.
	Command Command
	// Host is the destination: a hostname, or an IP address literal
	// (IPv6 without brackets).
	Host string
	// AddrType says whether the client sent an IP address or a hostname.
	// Requests with an IP address leak that the client resolved DNS itself
	// (SafeSocks rejects them).
	AddrType AddrType
	// Port is the destination port (zero for RESOLVE requests is allowed).
	Port uint16
	// Auth is true if the client sent credentials: a SOCKS5
	// username/password message (possibly with empty fields) or a non-empty
	// SOCKS4 user id.
	Auth bool
	// Username and Password are the credentials; tinytor treats any as
	// valid and uses them for stream isolation. SOCKS4 has no password.
	Username, Password string
	// ClientAddr is the client's address, filled in by the Server.
	ClientAddr netip.AddrPort
	// Family carries the listener's address-family preferences for the
	// Dialer (set by the Server from its Flags).
	Family FamilyPrefs
}

// FamilyPrefs are a listener's address-family flags the Dialer needs when it
// opens a stream (the BEGIN cell flags) or filters resolved addresses.
type FamilyPrefs struct {
	NoIPv4     bool // NoIPv4Traffic
	IPv6       bool // IPv6Traffic
	PreferIPv6 bool // PreferIPv6
}

// ReadOptions adjust the handshake.
type ReadOptions struct {
	// PreferNoAuth chooses "no authentication" over username/password when
	// a SOCKS5 client offers both. C tor does so when the listener does not
	// isolate by SOCKS auth.
	PreferNoAuth bool
}

// ErrHTTPRequest is returned (wrapped in a *RequestError) when the first
// bytes look like an HTTP request; the Server answers with an HTTP error page.
var ErrHTTPRequest = errors.New("client sent an HTTP request, but this is a SOCKS proxy, not an HTTP proxy")

// RequestError is a failed handshake. If SendReply is set, the client is
// owed a failure reply of the given Version carrying Reply.
type RequestError struct {
	Version   int // 4 or 5 once known, else 0
	SendReply bool
	Reply     ReplyCode
	Err       error
}

// Error describes the failure.
func (e *RequestError) Error() string {
	if e.Version == 0 {
		return "socks handshake: " + e.Err.Error()
	}
	return fmt.Sprintf("socks%d handshake: %v", e.Version, e.Err)
}

// Unwrap returns the cause.
func (e *RequestError) Unwrap() error { return e.Err }

// reader reads the handshake a byte or a field at a time without reading
// past the request, so data a client sends early (optimistic data) stays
// in the underlying reader.
type reader struct {
	r   io.Reader
	buf [maxField + 1]byte
	n   int // bytes consumed so far, for error positions
}

func (r *reader) full(n int, what string) ([]byte, error) {
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, errfmt.Errorf("reading %s at byte %d: %w", what, r.n, err)
	}
	r.n += n
	return b, nil
}

func (r *reader) byte(what string) (byte, error) {
	b, err := r.full(1, what)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// cstring reads a NUL-terminated string of at most maxField bytes.
func (r *reader) cstring(what string) (string, error) {
	start := r.n
	var sb strings.Builder
	for {
		c, err := r.byte(what)
		if err != nil {
			return "", err
		}
		if c == 0 {
			return sb.String(), nil
		}
		if sb.Len() == maxField {
			return "", errfmt.Errorf("%s starting at byte %d is longer than %d bytes", what, start, maxField)
		}
		sb.WriteByte(c)
	}
}

// ReadRequest runs the server side of a SOCKS handshake on r and w up to
// and including the request: it reads the SOCKS4/4a request, or the SOCKS5
// method selection, optional username/password subnegotiation and request,
// writing the method choice and authentication replies to w. It does not
// write the final reply: the caller answers with the outcome. It never
// reads past the end of the request.
//
// On failure the error is a *RequestError telling whether and what to reply.
func ReadRequest(r io.Reader, w io.Writer, opts ReadOptions) (*Request, error) {
	rd := &reader{r: r}
	v, err := rd.byte("version")
	if err != nil {
		return nil, &RequestError{Err: err}
	}
	switch v {
	case 4:
		req, err := readSOCKS4(rd)
		if err != nil {
			return nil, &RequestError{Version: 4, SendReply: true, Reply: ReplyGeneralFailure, Err: err}
		}
		return req, nil
	case 5:
		return readSOCKS5(rd, w, opts)
	case 'G', 'H', 'P', 'C': // GET, HEAD, POST/PUT, CONNECT
		return nil, &RequestError{Err: ErrHTTPRequest}
	}
	return nil, &RequestError{Err: errfmt.Errorf("version byte 0x%02x is neither 4 nor 5", v)}
}

// readSOCKS4 reads a SOCKS4 or SOCKS4a request after its version byte:
// CD, DSTPORT, DSTIP, USERID NUL, and for SOCKS4a (DSTIP 0.0.0.x, x != 0)
// the hostname NUL.
func readSOCKS4(rd *reader) (*Request, error) {
	hdr, err := rd.full(7, "request header")
	if err != nil {
		return nil, err
	}
	cmd := Command(hdr[0])
	port := uint16(hdr[1])<<8 | uint16(hdr[2])
	ip := netip.AddrFrom4([4]byte{hdr[3], hdr[4], hdr[5], hdr[6]})
	user, err := rd.cstring("user id")
	if err != nil {
		return nil, err
	}
	req := &Request{Version: 4, Command: cmd, Port: port, Username: user, Auth: user != ""}
	if cmd != Connect && cmd != Resolve {
		return nil, errfmt.Errorf("%v is not supported (only CONNECT and RESOLVE)", cmd)
	}
	if ip.IsUnspecified() {
		return nil, errors.New("destination IP is 0.0.0.0")
	}
	if port == 0 && cmd != Resolve {
		return nil, errors.New("destination port is 0")
	}
	if a := ip.As4(); a[0] == 0 && a[1] == 0 && a[2] == 0 {
		host, err := rd.cstring("SOCKS4a hostname")
		if err != nil {
			return nil, err
		}
		host, err = checkHost(host)
		if err != nil {
			return nil, err
		}
		req.Host, req.AddrType = host, AddrDomain
		return req, nil
	}
	req.Host, req.AddrType = ip.String(), AddrIPv4
	return req, nil
}

// readSOCKS5 reads a SOCKS5 handshake after its version byte.
func readSOCKS5(rd *reader, w io.Writer, opts ReadOptions) (*Request, error) {
	fail := func(send bool, code ReplyCode, err error) (*Request, error) {
		return nil, &RequestError{Version: 5, SendReply: send, Reply: code, Err: err}
	}
	// Method selection: VER NMETHODS METHODS.
	n, err := rd.byte("method count")
	if err != nil {
		return fail(false, 0, err)
	}
	if n == 0 {
		return fail(false, 0, errors.New("client offered no authentication methods"))
	}
	methods, err := rd.full(int(n), "methods")
	if err != nil {
		return fail(false, 0, err)
	}
	var noAuth, userPass bool
	for _, m := range methods {
		switch m {
		case methodNoAuth:
			noAuth = true
		case methodUserPass:
			userPass = true
		}
	}
	method := byte(methodNoAcceptable)
	switch {
	case userPass && !(noAuth && opts.PreferNoAuth):
		method = methodUserPass
	case noAuth:
		method = methodNoAuth
	}
	if _, err := w.Write([]byte{5, method}); err != nil {
		return fail(false, 0, errfmt.Errorf("writing method selection: %w", err))
	}
	if method == methodNoAcceptable {
		return fail(false, 0, errfmt.Errorf("client offered neither \"no auth\" nor username/password among %d methods", n))
	}

	req := &Request{Version: 5}
	first, err := rd.byte("request version")
	if err != nil {
		return fail(false, 0, err)
	}
	// RFC 1929 subnegotiation. As C tor does, accept it even when "no auth"
	// was chosen (some clients send it anyway), and accept empty fields.
	if first == 1 || method == methodUserPass {
		if first != 1 {
			return fail(true, ReplyGeneralFailure, errfmt.Errorf("username/password message has version %d, want 1", first))
		}
		if req.Username, err = readLenString(rd, "username"); err != nil {
			return fail(true, ReplyGeneralFailure, err)
		}
		if req.Password, err = readLenString(rd, "password"); err != nil {
			return fail(true, ReplyGeneralFailure, err)
		}
		req.Auth = true
		if _, err := w.Write([]byte{1, 0}); err != nil {
			return fail(false, 0, errfmt.Errorf("writing authentication reply: %w", err))
		}
		if first, err = rd.byte("request version"); err != nil {
			return fail(false, 0, err)
		}
	}
	// Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
	if first != 5 {
		return fail(true, ReplyGeneralFailure, errfmt.Errorf("request has version %d, want 5", first))
	}
	hdr, err := rd.full(3, "request header")
	if err != nil {
		return fail(false, 0, err)
	}
	cmd, atyp := Command(hdr[0]), hdr[2]
	req.Command = cmd
	switch atyp {
	case atypIPv4:
		b, err := rd.full(4, "IPv4 address")
		if err != nil {
			return fail(false, 0, err)
		}
		req.Host, req.AddrType = netip.AddrFrom4([4]byte(b)).String(), AddrIPv4
	case atypIPv6:
		b, err := rd.full(16, "IPv6 address")
		if err != nil {
			return fail(false, 0, err)
		}
		req.Host, req.AddrType = netip.AddrFrom16([16]byte(b)).String(), AddrIPv6
	case atypDomain:
		host, err := readLenString(rd, "hostname")
		if err != nil {
			return fail(false, 0, err)
		}
		req.Host, req.AddrType = host, AddrDomain
	default:
		return fail(true, ReplyAddrTypeUnsupported, errfmt.Errorf("address type 0x%02x is not supported", atyp))
	}
	p, err := rd.full(2, "port")
	if err != nil {
		return fail(false, 0, err)
	}
	req.Port = uint16(p[0])<<8 | uint16(p[1])

	switch cmd {
	case Connect, Resolve:
	case ResolvePTR:
		if _, err := parseIP(req.Host); err != nil {
			return fail(true, ReplyAddrTypeUnsupported, errfmt.Errorf("RESOLVE_PTR needs an IP address, got %q", req.Host))
		}
	default:
		return fail(true, ReplyCommandUnsupported, errfmt.Errorf("%v is not supported", cmd))
	}
	if req.AddrType == AddrDomain {
		if req.Host, err = checkHost(req.Host); err != nil {
			return fail(true, ReplyGeneralFailure, err)
		}
	}
	return req, nil
}

// readLenString reads a one-byte length and that many bytes.
func readLenString(rd *reader, what string) (string, error) {
	n, err := rd.byte(what + " length")
	if err != nil {
		return "", err
	}
	b, err := rd.full(int(n), what)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// parseIP parses an IP literal, IPv6 optionally in brackets.
func parseIP(s string) (netip.Addr, error) {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, errfmt.Errorf("%q is not an IP address", s)
	}
	return a, nil
}

// checkHost validates a destination given as a hostname, as C tor's
// string_is_valid_dest does: an IP literal (brackets removed), or labels of
// letters, digits, '-' and '_' separated by dots, with an optional final
// dot. It returns the normalised form.
func checkHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("empty hostname")
	}
	if a, err := parseIP(h); err == nil {
		return a.String(), nil
	}
	name := strings.TrimSuffix(h, ".")
	if name == "" {
		return "", errfmt.Errorf("malformed hostname %q", h)
	}
	label := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if label == 0 {
				return "", errfmt.Errorf("malformed hostname %q: empty label at byte %d", h, i)
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return "", errfmt.Errorf("malformed hostname %q: byte 0x%02x at %d is not allowed", h, c, i)
		}
		label++
		if label > 63 {
			return "", errfmt.Errorf("malformed hostname %q: label longer than 63 bytes", h)
		}
	}
	return h, nil
}

// IsOnion reports whether host is a .onion name.
func IsOnion(host string) bool {
	h := strings.TrimSuffix(host, ".")
	return len(h) > len(".onion") && strings.EqualFold(h[len(h)-len(".onion"):], ".onion")
}
