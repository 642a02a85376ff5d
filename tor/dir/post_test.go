package dir

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// rwPair is a request sink and a canned response.
type rwPair struct {
	sent bytes.Buffer
	resp io.Reader
}

func (p *rwPair) Write(b []byte) (int, error) { return p.sent.Write(b) }
func (p *rwPair) Read(b []byte) (int, error)  { return p.resp.Read(b) }

func TestPost(t *testing.T) {
	p := &rwPair{resp: strings.NewReader("HTTP/1.0 200 OK\r\n\r\n")}
	if _, err := Post(p, "/tor/hs/3/publish", []byte("hs-descriptor 3\n"), 1024); err != nil {
		t.Fatal(err)
	}
	want := "POST /tor/hs/3/publish HTTP/1.0\r\nContent-Length: 16\r\n\r\nhs-descriptor 3\n"
	if p.sent.String() != want {
		t.Fatalf("sent %q, want %q", p.sent.String(), want)
	}
	p = &rwPair{resp: strings.NewReader("HTTP/1.0 400 Invalid descriptor\r\n\r\n")}
	_, err := Post(p, "/tor/hs/3/publish", []byte("x"), 1024)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 400 || se.Path != "/tor/hs/3/publish" {
		t.Fatalf("error %v, want a 400 StatusError", err)
	}
	if _, err := Post(p, "bad path", nil, 10); err == nil {
		t.Fatal("accepted a bad path")
	}
}
