package dir

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"

	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
)

// StatusError is returned by Get when the server answers with a status
// other than 200.
type StatusError struct {
	Code   int
	Reason string
	Path   string
}

func (e *StatusError) Error() string {
	return "directory request " + e.Path + ": HTTP status " + strconv.Itoa(e.Code) + " " + strconv.Quote(e.Reason)
}

// ErrBodyTooLarge is returned (wrapped) when a response body, compressed
// or decompressed, exceeds the caller's limit.
var ErrBodyTooLarge = errors.New("response body exceeds the size limit")

// maxHeaderBytes bounds the status line and headers of a response.
const maxHeaderBytes = 16 << 10

// Get sends an HTTP/1.0 GET for path over rw (typically a BEGIN_DIR
// stream), reads the response until EOF and returns its body, decoded if
// the server used "Content-Encoding: deflate". Bodies larger than maxBody
// (before or after decompression) are refused.
func Get(rw io.ReadWriter, path string, maxBody int64) ([]byte, error) {
	return GetHost(rw, "", path, maxBody)
}

// GetHost is Get with a Host header naming host (omitted if host is "").
func GetHost(rw io.ReadWriter, host, path string, maxBody int64) ([]byte, error) {
	return GetWithHeaders(rw, host, path, nil, maxBody)
}

// Header is an extra request header, such as DiffFromHeader.
type Header struct {
	Name, Value string
}

// GetWithHeaders is GetHost that also sends the headers hdrs, after Host
// and before Accept-Encoding.
func GetWithHeaders(rw io.ReadWriter, host, path string, hdrs []Header, maxBody int64) ([]byte, error) {
	if !validPath(path) {
		return nil, errfmt.Errorf("directory request: invalid path %q", path)
	}
	if strings.ContainsAny(host, " \r\n") {
		return nil, errfmt.Errorf("directory request %s: invalid host %q", path, host)
	}
	req := append(append([]byte("GET "), path...), " HTTP/1.0\r\n"...)
	if host != "" {
		hdrs = append([]Header{{"Host", host}}, hdrs...)
	}
	for _, h := range hdrs {
		if !validHeaderName(h.Name) || strings.ContainsAny(h.Value, "\r\n") {
			return nil, errfmt.Errorf("directory request %s: invalid header %q: %q", path, h.Name, h.Value)
		}
		req = append(append(append(append(req, h.Name...), ": "...), h.Value...), "\r\n"...)
	}
	// C tor serves the consensus, microdescriptors and certificates
	// deflated when asked for deflate, and consensus diffs gzipped.
	req = append(req, "Accept-Encoding: deflate, gzip, identity\r\n\r\n"...)
	return roundTrip(rw, "directory request", path, req, maxBody)
}

// validPath reports whether path can be a request's path: it starts with
// '/' and has no spaces or line ends.
func validPath(path string) bool {
	return path != "" && path[0] == '/' && !strings.ContainsAny(path, " \r\n")
}

// roundTrip sends the request req for path over rw and reads the response
// (see ReadResponse); what ("directory request", "directory upload")
// starts its errors. A status other than 200 gives a *StatusError.
func roundTrip(rw io.ReadWriter, what, path string, req []byte, maxBody int64) ([]byte, error) {
	if _, err := rw.Write(req); err != nil {
		return nil, errfmt.Errorf("%s %s: sending: %w", what, path, err)
	}
	body, err := ReadResponse(rw, maxBody)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			se.Path = path
			return nil, se
		}
		return nil, errfmt.Errorf("%s %s: %w", what, path, err)
	}
	return body, nil
}

// ReadResponse reads an HTTP/1.0 response from r until EOF and returns its
// decoded body; see Get.
func ReadResponse(r io.Reader, maxBody int64) ([]byte, error) {
	if maxBody < 0 {
		return nil, netdoc.Message("negative body limit")
	}
	br := bufio.NewReaderSize(r, 4096)
	var headerBytes int
	readLine := func() (string, error) {
		var line []byte
		for {
			frag, err := br.ReadSlice('\n')
			headerBytes += len(frag)
			if headerBytes > maxHeaderBytes {
				return "", errors.New("response headers longer than " + strconv.Itoa(maxHeaderBytes) + " bytes")
			}
			line = append(line, frag...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF {
				return "", netdoc.Message("connection closed inside the response headers")
			}
			if err != nil {
				return "", netdoc.Reason(err, "reading response headers")
			}
			break
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		return string(line), nil
	}
	status, err := readLine()
	if err != nil {
		return nil, err
	}
	code, reason, err := parseStatusLine(status)
	if err != nil {
		return nil, err
	}
	encoding := ""
	contentLength := int64(-1)
	for {
		line, err := readLine()
		if err != nil {
			return nil, err
		}
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return nil, quoteError("malformed header line ", line)
		}
		name := strings.TrimSpace(line[:colon])
		value := strings.TrimSpace(line[colon+1:])
		switch strings.ToLower(name) {
		case "content-encoding":
			encoding = strings.ToLower(value)
		case "content-length":
			n, err := parseUint([]byte(value), 1<<62)
			if err != nil {
				return nil, quoteError("bad Content-Length ", value)
			}
			contentLength = int64(n)
		}
	}
	if code != 200 {
		return nil, &StatusError{Code: code, Reason: reason}
	}
	if contentLength > maxBody {
		return nil, errfmt.Errorf("Content-Length %d > limit %d: %w", contentLength, maxBody, ErrBodyTooLarge)
	}
	raw, err := io.ReadAll(io.LimitReader(br, maxBody+1))
	if err != nil {
		return nil, netdoc.Reason(err, "reading response body")
	}
	if int64(len(raw)) > maxBody {
		return nil, errfmt.Errorf("more than %d bytes: %w", maxBody, ErrBodyTooLarge)
	}
	if contentLength >= 0 && int64(len(raw)) != contentLength {
		return nil, errfmt.Errorf("body has %d bytes, Content-Length says %d", len(raw), contentLength)
	}
	var zr io.Reader
	switch encoding {
	case "", "identity":
		return raw, nil
	case "deflate":
		zr, err = zlib.NewReader(bytes.NewReader(raw))
	case "gzip", "x-gzip":
		// C tor caches precompress consensus diffs with gzip, not zlib.
		zr, err = gzip.NewReader(bytes.NewReader(raw))
	default:
		return nil, quoteError("unsupported Content-Encoding ", encoding)
	}
	var out []byte
	if err == nil {
		out, err = io.ReadAll(io.LimitReader(zr, maxBody+1))
	}
	if err != nil {
		return nil, netdoc.Reason(err, "%s body", []byte(encoding))
	}
	if int64(len(out)) > maxBody {
		return nil, errfmt.Errorf("decompressed body more than %d bytes: %w", maxBody, ErrBodyTooLarge)
	}
	return out, nil
}

// validHeaderName reports whether name is an HTTP token (RFC 9110 5.6.2).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

func parseStatusLine(line string) (int, string, error) {
	if !strings.HasPrefix(line, "HTTP/1.") || len(line) < len("HTTP/1.x 200") || line[8] != ' ' {
		return 0, "", quoteError("malformed status line ", line)
	}
	rest := line[9:]
	codeStr, reason, _ := strings.Cut(rest, " ")
	n, err := parseUint([]byte(codeStr), 999)
	if err != nil || len(codeStr) != 3 || n < 100 {
		return 0, "", quoteError("malformed status code in ", line)
	}
	return int(n), reason, nil
}

// quoteError is the error msg followed by s, truncated and quoted.
func quoteError(msg, s string) error {
	return errors.New(msg + strconv.Quote(truncate(s)))
}

// truncateBytes is truncate for a byte slice.
func truncateBytes(b []byte) []byte {
	if len(b) > 60 {
		return append(b[:60:60], "..."...)
	}
	return b
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// ConsensusPath is where a microdesc consensus is fetched. With
// authorities, it asks for a consensus signed by most of them, naming
// each by the first 3 bytes of its v3ident, sorted, as C tor does.
func ConsensusPath(authorities [][20]byte) string {
	const base = "/tor/status-vote/current/consensus-microdesc"
	if len(authorities) == 0 {
		return base
	}
	ids := make([]string, len(authorities))
	for i, a := range authorities {
		ids[i] = string(hexID(a[:3]))
	}
	sort.Strings(ids)
	return base + "/" + strings.Join(ids, "+")
}

// AllCertsPath is where all authority certificates are fetched.
const AllCertsPath = "/tor/keys/all"

// CertsByFingerprintPath is where the current certificates of the given
// authorities are fetched.
func CertsByFingerprintPath(fps [][20]byte) string {
	ids := make([]string, len(fps))
	for i, f := range fps {
		ids[i] = string(hexID(f[:]))
	}
	return "/tor/keys/fp/" + strings.Join(ids, "+")
}

// CertsByKeyPath is where certificates named by identity and signing key
// (as reported in SignatureReport.MissingCerts) are fetched.
func CertsByKeyPath(ids []CertID) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = string(hexID(id.Identity[:])) + "-" + string(hexID(id.SigningKeyDigest[:]))
	}
	return "/tor/keys/fp-sk/" + strings.Join(parts, "+")
}

// MaxMicrodescsPerRequest is the most microdescriptors asked for in one
// request (dir-spec 4.3, a limit C tor also applies).
const MaxMicrodescsPerRequest = 92

// MicrodescPaths returns the URLs fetching the given microdescriptors, in
// batches of at most MaxMicrodescsPerRequest, and the digests of each.
func MicrodescPaths(digests [][32]byte) (paths []string, batches [][][32]byte) {
	for len(digests) > 0 {
		n := min(len(digests), MaxMicrodescsPerRequest)
		batch := digests[:n]
		digests = digests[n:]
		b := []byte("/tor/micro/d/")
		for i, d := range batch {
			if i > 0 {
				b = append(b, '-')
			}
			b = base64.RawStdEncoding.AppendEncode(b, d[:])
		}
		paths = append(paths, string(b))
		batches = append(batches, batch)
	}
	return paths, batches
}
