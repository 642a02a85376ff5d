package httptunnel

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadRequest(t *testing.T) {
	long := strings.Repeat("a", MaxHost+1)
	for _, tc := range []struct {
		in     string
		want   Request
		status string // refusal status line, or "" for success
		rest   string // bytes left in the reader
	}{
		{in: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nTLS", want: Request{Host: "example.com", Port: 443}, rest: "TLS"},
		{in: "connect 192.0.2.1:80 HTTP/1.0\n\n", want: Request{Host: "192.0.2.1", Port: 80}},
		{in: "\r\nCONNECT [2001:db8::1]:8080 HTTP/1.1\r\n\r\n", want: Request{Host: "2001:db8::1", Port: 8080}},
		{in: "CONNECT x.onion:80 HTTP/1.1\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\nx-tor-stream-isolation:  tab1 \r\n\r\n",
			want: Request{Host: "x.onion", Port: 80, ProxyAuthorization: "Basic dXNlcjpwYXNz", Isolation: "tab1", HasAuth: true}},
		{in: "GET http://example.com/ HTTP/1.1\r\n\r\n", status: "HTTP/1.0 405 Method Not Allowed"},
		{in: "CONNECT example.com HTTP/1.1\r\n\r\n", status: "HTTP/1.0 400 Bad Request"},
		{in: "CONNECT example.com:0 HTTP/1.1\r\n\r\n", status: "HTTP/1.0 400 Bad Request"},
		{in: "CONNECT example.com:65536 HTTP/1.1\r\n\r\n", status: "HTTP/1.0 400 Bad Request"},
		{in: "CONNECT :80 HTTP/1.1\r\n\r\n", status: "HTTP/1.0 400 Bad Request"},
		{in: "CONNECT [192.0.2.1]:80 HTTP/1.1\r\n\r\n", status: "HTTP/1.0 400 Bad Request"},
		{in: "CONNECT example.com:80 SPDY/3\r\n\r\n", status: "HTTP/1.0 400 Bad Request"},
		{in: "CONNECT example.com:80\r\n\r\n", status: "HTTP/1.0 400 Bad Request"},
		{in: "CONNECT example.com:80 HTTP/1.1\r\nno colon\r\n\r\n", status: "HTTP/1.0 400 Bad Request"},
		{in: "CONNECT " + long + ":80 HTTP/1.1\r\n\r\n", status: "HTTP/1.0 414 Request-URI Too Long"},
		{in: "CONNECT a:80 HTTP/1.1\r\nX: " + strings.Repeat("b", MaxHeader) + "\r\n\r\n", status: "HTTP/1.0 400 Bad Request"},
		{in: strings.Repeat("\r\n", MaxHeader), status: "HTTP/1.0 400 Bad Request"},
	} {
		r := bufio.NewReaderSize(strings.NewReader(tc.in), 512)
		got, err := ReadRequest(r)
		if tc.status != "" {
			var re *RequestError
			if !errors.As(err, &re) || re.Status() != tc.status {
				t.Errorf("ReadRequest(%.40q): %v, want a refusal %q", tc.in, err, tc.status)
			}
			continue
		}
		if err != nil || *got != tc.want {
			t.Errorf("ReadRequest(%.40q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if rest, _ := io.ReadAll(r); string(rest) != tc.rest {
			t.Errorf("ReadRequest(%.40q) left %q, want %q", tc.in, rest, tc.rest)
		}
	}
	if _, err := ReadRequest(bufio.NewReader(strings.NewReader("CONNECT a:1 HTTP/1.1\r\n"))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated request: %v, want io.ErrUnexpectedEOF", err)
	}
}

// FuzzReadRequest: any input is parsed or refused, never a panic, and an
// accepted request is one a stream can be opened to.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic eA==\r\n\r\n"))
	f.Add([]byte("CONNECT [::1]:80 HTTP/1.0\n\n"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte("\r\n\r\nCONNECT a:1 HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		src := strings.NewReader(string(b))
		r := bufio.NewReaderSize(src, 512)
		req, err := ReadRequest(r)
		if err != nil {
			var re *RequestError
			if errors.As(err, &re) && !strings.HasPrefix(re.Response, "HTTP/1.0 ") {
				t.Fatalf("refusal %q", re.Response)
			}
			return
		}
		if req.Host == "" || len(req.Host) > MaxHost || req.Port == 0 || strings.ContainsAny(req.Host, " \r\n\x00") {
			t.Fatalf("accepted %+v from %q", req, b)
		}
		if used := len(b) - r.Buffered() - src.Len(); used > MaxHeader {
			t.Fatalf("took %d bytes of headers", used)
		}
	})
}
