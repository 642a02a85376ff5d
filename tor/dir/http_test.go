package dir

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"strings"
	"testing"
)

// conn is a fake stream: writes are recorded, reads come from resp.
type conn struct {
	resp io.Reader
	sent bytes.Buffer
}

func (c *conn) Read(p []byte) (int, error)  { return c.resp.Read(p) }
func (c *conn) Write(p []byte) (int, error) { return c.sent.Write(p) }

func TestGetRealResponse(t *testing.T) {
	// A response recorded from a test network authority's DirPort.
	c := &conn{resp: bytes.NewReader(mustRead(t, "testnet-keys-all.http"))}
	body, err := GetHost(c, "127.0.0.1", AllCertsPath, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := "GET /tor/keys/all HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept-Encoding: deflate, gzip, identity\r\n\r\n"
	if c.sent.String() != want {
		t.Errorf("sent %q", c.sent.String())
	}
	if !bytes.Equal(body, mustRead(t, "testnet-certs")) {
		t.Error("decoded body differs from the certificates fetched with curl")
	}
	certs, err := ParseAuthCerts(body)
	if err != nil || len(certs) != 3 {
		t.Fatalf("%d certs, %v", len(certs), err)
	}
	// Limits apply to the decompressed size too.
	c = &conn{resp: bytes.NewReader(mustRead(t, "testnet-keys-all.http"))}
	if _, err := Get(c, AllCertsPath, 5000); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("small limit: %v", err)
	}
	c = &conn{resp: bytes.NewReader(mustRead(t, "testnet-404.http"))}
	_, err = Get(c, "/tor/micro/d/AAAA", 1000)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 || se.Path != "/tor/micro/d/AAAA" {
		t.Errorf("404: %v", err)
	}
	if !strings.HasPrefix(c.sent.String(), "GET /tor/micro/d/AAAA HTTP/1.0\r\nAccept-Encoding") {
		t.Errorf("sent %q", c.sent.String())
	}
}

func TestReadResponse(t *testing.T) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte("hello directory"))
	zw.Close()
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write([]byte("a gzipped diff"))
	gw.Close()
	cases := []struct {
		name, in, body, err string
	}{
		{"identity", "HTTP/1.0 200 OK\r\n\r\nabc", "abc", ""},
		{"identity header", "HTTP/1.0 200 OK\r\nContent-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc", "abc", ""},
		{"lf only", "HTTP/1.1 200 OK\nX: y\n\nabc", "abc", ""},
		{"deflate", "HTTP/1.0 200 OK\r\nContent-Encoding: deflate\r\n\r\n" + z.String(), "hello directory", ""},
		{"bad deflate", "HTTP/1.0 200 OK\r\nContent-Encoding: deflate\r\n\r\nxyz", "", "deflate body"},
		{"truncated deflate", "HTTP/1.0 200 OK\r\nContent-Encoding: deflate\r\n\r\n" + z.String()[:z.Len()-3], "", "deflate body"},
		{"gzip", "HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + gz.String(), "a gzipped diff", ""},
		{"bad gzip", "HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\n\r\nxyz", "", "gzip body"},
		{"truncated gzip", "HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + gz.String()[:gz.Len()-3], "", "gzip body"},
		{"zstd", "HTTP/1.0 200 OK\r\nContent-Encoding: x-zstd\r\n\r\nabc", "", "unsupported Content-Encoding \"x-zstd\""},
		{"status", "HTTP/1.0 503 Directory busy, try again later\r\n\r\n", "", "HTTP status 503 \"Directory busy, try again later\""},
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n", "", "malformed status line"},
		{"bad code", "HTTP/1.0 2x0 OK\r\n\r\n", "", "malformed status code"},
		{"eof in headers", "HTTP/1.0 200 OK\r\nX: y\r\n", "", "connection closed inside the response headers"},
		{"bad header", "HTTP/1.0 200 OK\r\nnocolon\r\n\r\n", "", "malformed header line"},
		{"length mismatch", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nabc", "", "Content-Length says 5"},
		{"too large", "HTTP/1.0 200 OK\r\n\r\n" + strings.Repeat("a", 101), "", "exceeds the size limit"},
		{"too large length", "HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n", "", "exceeds the size limit"},
		{"long headers", "HTTP/1.0 200 OK\r\nX: " + strings.Repeat("a", 20000) + "\r\n\r\n", "", "headers longer than"},
	}
	for _, tc := range cases {
		body, err := ReadResponse(strings.NewReader(tc.in), 100)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || string(body) != tc.body {
			t.Errorf("%s: body %q, error %v", tc.name, body, err)
		}
	}
}

func TestPaths(t *testing.T) {
	if got := ConsensusPath(nil); got != "/tor/status-vote/current/consensus-microdesc" {
		t.Error(got)
	}
	if got := ConsensusPath(testnetAuthorities); got != "/tor/status-vote/current/consensus-microdesc/6FEBAD+8CC4A8+BA4413" {
		t.Error(got)
	}
	if got := CertsByFingerprintPath(testnetAuthorities[:2]); got != "/tor/keys/fp/8CC4A8838AF67B7CD0F4F797490DA9A3BF43F6D4+6FEBAD5A067493F70259B320A4BD948803AB8F7D" {
		t.Error(got)
	}
	id := CertID{Identity: testnetAuthorities[0], SigningKeyDigest: mustFP("067BF017504BE38118921F66F45029890EB74F7E")}
	if got := CertsByKeyPath([]CertID{id}); got != "/tor/keys/fp-sk/8CC4A8838AF67B7CD0F4F797490DA9A3BF43F6D4-067BF017504BE38118921F66F45029890EB74F7E" {
		t.Error(got)
	}
	ds := make([][32]byte, 200)
	for i := range ds {
		ds[i][0] = byte(i)
	}
	paths, batches := MicrodescPaths(ds)
	if len(paths) != 3 || len(batches[0]) != 92 || len(batches[1]) != 92 || len(batches[2]) != 16 {
		t.Fatalf("%d paths", len(paths))
	}
	if !strings.HasPrefix(paths[0], "/tor/micro/d/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-") ||
		strings.Count(paths[0], "-") != 91 || strings.Contains(paths[0], "=") {
		t.Errorf("path %s", paths[0][:120])
	}
}
