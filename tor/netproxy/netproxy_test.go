package netproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeProxy listens on 127.0.0.1 and runs handle on each connection in its
// own goroutine; everything ends before the test does.
func fakeProxy(t *testing.T, handle func(c net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

func readN(t *testing.T, r io.Reader, n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Errorf("fake proxy: reading %d bytes: %v", n, err)
	}
	return b
}

var target4 = netip.MustParseAddrPort("192.0.2.7:443")
var target6 = netip.MustParseAddrPort("[2001:db8::1]:9001")

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// echoThrough checks that the tunnel relays bytes both ways.
func echoThrough(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo: got %q, %v", got, err)
	}
}

func TestSOCKS4(t *testing.T) {
	reqc := make(chan []byte, 1)
	p := fakeProxy(t, func(c net.Conn) {
		reqc <- readN(t, c, 8+len("abc=1;d\\;e")+1)
		c.Write([]byte{0, 90, 0, 0, 0, 0, 0, 0})
		io.Copy(c, c)
	})
	c, err := SOCKS4(p, "abc=1;d\\;e").Dial(ctx(t), target4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoThrough(t, c)
	want := append([]byte{4, 1, 1, 187, 192, 0, 2, 7}, "abc=1;d\\;e\x00"...)
	if req := <-reqc; !bytes.Equal(req, want) {
		t.Errorf("request %q, want %q", req, want)
	}
}

func TestSOCKS4Refused(t *testing.T) {
	p := fakeProxy(t, func(c net.Conn) {
		readN(t, c, 9)
		c.Write([]byte{0, 91, 0, 0, 0, 0, 0, 0})
	})
	_, err := SOCKS4(p, "").Dial(ctx(t), target4)
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 91 || re.Proto != "SOCKS4" {
		t.Fatalf("err = %v, want SOCKS4 reply 91", err)
	}
}

func TestSOCKS4NoIPv6(t *testing.T) {
	// The port is closed: the dialer must fail before connecting.
	_, err := SOCKS4(netip.MustParseAddrPort("127.0.0.1:1"), "").Dial(ctx(t), target6)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
}

func TestSOCKS5NoAuthIPv6(t *testing.T) {
	got := make(chan [2][]byte, 1)
	p := fakeProxy(t, func(c net.Conn) {
		greet := readN(t, c, 3)
		c.Write([]byte{5, 0})
		got <- [2][]byte{greet, readN(t, c, 22)}
		c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 80})
		io.Copy(c, c)
	})
	c, err := SOCKS5(p, "", "").Dial(ctx(t), target6)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoThrough(t, c)
	r := <-got
	greet, req := r[0], r[1]
	if !bytes.Equal(greet, []byte{5, 1, 0}) {
		t.Errorf("greeting %v", greet)
	}
	ip := target6.Addr().As16()
	want := append(append([]byte{5, 1, 0, 4}, ip[:]...), 0x23, 0x29)
	if !bytes.Equal(req, want) {
		t.Errorf("request %v, want %v", req, want)
	}
}

func TestSOCKS5LongAuth(t *testing.T) {
	user := strings.Repeat("u", 255)
	pass := strings.Repeat("p", 254) + "\x00"
	got := make(chan [2]string, 1)
	p := fakeProxy(t, func(c net.Conn) {
		if g := readN(t, c, 4); !bytes.Equal(g, []byte{5, 2, 0, 2}) {
			t.Errorf("greeting %v", g)
		}
		c.Write([]byte{5, 2})
		h := readN(t, c, 2)
		u := string(readN(t, c, int(h[1])))
		got <- [2]string{u, string(readN(t, c, int(readN(t, c, 1)[0])))}
		c.Write([]byte{1, 0})
		readN(t, c, 10)
		// A domain-name bound address, then tunnelled data in the same write.
		c.Write(append([]byte{5, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 80}, "early"...))
		io.Copy(c, c)
	})
	c, err := SOCKS5(p, user, pass).Dial(ctx(t), target4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	early := make([]byte, 5)
	if _, err := io.ReadFull(c, early); err != nil || string(early) != "early" {
		t.Fatalf("bytes after the reply: %q, %v", early, err)
	}
	echoThrough(t, c)
	r := <-got
	gotUser, gotPass := r[0], r[1]
	if gotUser != user || gotPass != pass {
		t.Errorf("auth fields: %d bytes / %q", len(gotUser), gotPass)
	}
}

func TestSOCKS5TooLong(t *testing.T) {
	_, err := SOCKS5(netip.MustParseAddrPort("127.0.0.1:1"), strings.Repeat("u", 256), "p").Dial(ctx(t), target4)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
}

func TestSOCKS5AuthFailed(t *testing.T) {
	p := fakeProxy(t, func(c net.Conn) {
		readN(t, c, 4)
		c.Write([]byte{5, 2})
		readN(t, c, 2+1+1+1)
		c.Write([]byte{1, 1})
	})
	_, err := SOCKS5(p, "u", "p").Dial(ctx(t), target4)
	if !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("err = %v, want ErrAuthFailed", err)
	}
}

func TestSOCKS5NoAcceptableMethod(t *testing.T) {
	p := fakeProxy(t, func(c net.Conn) {
		readN(t, c, 3)
		c.Write([]byte{5, 0xff})
	})
	_, err := SOCKS5(p, "", "").Dial(ctx(t), target4)
	if !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("err = %v, want ErrAuthFailed", err)
	}
}

func TestSOCKS5Refused(t *testing.T) {
	p := fakeProxy(t, func(c net.Conn) {
		readN(t, c, 3)
		c.Write([]byte{5, 0})
		readN(t, c, 10)
		c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
	})
	_, err := SOCKS5(p, "", "").Dial(ctx(t), target4)
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 5 {
		t.Fatalf("err = %v, want SOCKS5 reply 5", err)
	}
	if got, want := re.Error(), "proxy refused: connection refused (SOCKS5 reply 5)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !strings.Contains(err.Error(), p.String()) || !strings.Contains(err.Error(), target4.String()) {
		t.Errorf("error %q does not name the proxy and the target", err)
	}
}

func TestSOCKS5Truncated(t *testing.T) {
	p := fakeProxy(t, func(c net.Conn) {
		readN(t, c, 3)
		c.Write([]byte{5, 0})
		readN(t, c, 10)
		c.Write([]byte{5, 0, 0, 1, 127})
	})
	_, err := SOCKS5(p, "", "").Dial(ctx(t), target4)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
}

func TestProxyDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	_, err = SOCKS5(p, "", "").Dial(ctx(t), target4)
	// qemu-user hands a MIPS program the host's SO_ERROR untranslated
	// (x86's ECONNREFUSED, 111, where MIPS has 146).
	if qemu := syscall.Errno(111); (runtime.GOARCH == "mips" || runtime.GOARCH == "mipsle") && errors.Is(err, qemu) {
		return
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v, want connection refused", err)
	}
}

// silentProxy accepts connections and never answers; accepted reports each.
func silentProxy(t *testing.T) (netip.AddrPort, chan struct{}) {
	accepted := make(chan struct{}, 4)
	p := fakeProxy(t, func(c net.Conn) {
		accepted <- struct{}{}
		io.Copy(io.Discard, c)
	})
	return p, accepted
}

func TestCancel(t *testing.T) {
	for name, d := range map[string]func(netip.AddrPort) Dialer{
		"socks4": func(p netip.AddrPort) Dialer { return SOCKS4(p, "") },
		"socks5": func(p netip.AddrPort) Dialer { return SOCKS5(p, "", "") },
		"http":   func(p netip.AddrPort) Dialer { return HTTPConnect(p, "", "") },
	} {
		t.Run(name, func(t *testing.T) {
			p, accepted := silentProxy(t)
			c, cancel := context.WithCancel(context.Background())
			go func() {
				<-accepted
				cancel()
			}()
			start := time.Now()
			_, err := d(p).Dial(c, target4)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("cancellation took %v", time.Since(start))
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	p, _ := silentProxy(t)
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := SOCKS5(p, "u", "p").Dial(c, target4)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestHTTPConnect(t *testing.T) {
	linesc := make(chan []string, 1)
	p := fakeProxy(t, func(c net.Conn) {
		var reqLines []string
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Errorf("fake proxy: %v", err)
				return
			}
			if l == "\r\n" {
				break
			}
			reqLines = append(reqLines, l)
		}
		linesc <- reqLines
		c.Write([]byte("HTTP/1.1 200 Connection established\r\nVia: fake\r\n\r\nEARLY"))
		io.Copy(c, br)
	})
	c, err := HTTPConnect(p, "user", "pa:ss").Dial(ctx(t), target6)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	early := make([]byte, 5)
	if _, err := io.ReadFull(c, early); err != nil || string(early) != "EARLY" {
		t.Fatalf("bytes after the header: %q, %v", early, err)
	}
	echoThrough(t, c)
	want := []string{
		"CONNECT [2001:db8::1]:9001 HTTP/1.0\r\n",
		"Host: [2001:db8::1]:9001\r\n",
		"Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("user:pa:ss")) + "\r\n",
	}
	if reqLines := <-linesc; strings.Join(reqLines, "") != strings.Join(want, "") {
		t.Errorf("request:\n%q\nwant\n%q", reqLines, want)
	}
}

func httpAnswer(t *testing.T, answer string) error {
	p := fakeProxy(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
		}
		c.Write([]byte(answer))
	})
	c, err := HTTPConnect(p, "", "").Dial(ctx(t), target4)
	if err == nil {
		c.Close()
	}
	return err
}

func TestHTTPRefusals(t *testing.T) {
	err := httpAnswer(t, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 403 || re.Msg != "HTTP/1.1 403 Forbidden" {
		t.Errorf("403: err = %v", err)
	}
	if err := httpAnswer(t, "HTTP/1.0 407 Proxy Authentication Required\r\n\r\n"); !errors.Is(err, ErrAuthFailed) || !errors.As(err, &re) {
		t.Errorf("407: err = %v, want ErrAuthFailed and a ReplyError", err)
	}
	if err := httpAnswer(t, "HTTP/1.1 200 OK\r\nX: "+strings.Repeat("x", 5000)+"\r\n\r\n"); !errors.Is(err, ErrBadReply) {
		t.Errorf("long header: err = %v, want ErrBadReply", err)
	}
	if err := httpAnswer(t, "HTTP/1.1 200 OK\r\nX: y\r\n"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: err = %v, want unexpected EOF", err)
	}
	if err := httpAnswer(t, "SSH-2.0-OpenSSH\r\n"); !errors.Is(err, ErrBadReply) {
		t.Errorf("garbage: err = %v, want ErrBadReply", err)
	}
	if err := httpAnswer(t, "HTTP/1.1 200 OK\r\n"+strings.Repeat("X: y\r\n", 100)+"\r\n"); !errors.Is(err, ErrBadReply) {
		t.Errorf("many headers: err = %v, want ErrBadReply", err)
	}
}

func FuzzSOCKS4Reply(f *testing.F) {
	f.Add([]byte{0, 90, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 91, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := readSOCKS4Reply(bytes.NewReader(b))
		if err == nil && (len(b) < 8 || b[1] != 90) {
			t.Fatalf("accepted %v", b)
		}
	})
}

func FuzzSOCKS5Reply(f *testing.F) {
	f.Add([]byte{5, 2, 1, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80})
	f.Add([]byte{5, 0, 5, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 80})
	f.Add([]byte{5, 0, 5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 80})
	f.Add([]byte{5, 0, 5, 1, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(b), io.Discard}
		err := socks5Handshake(rw, target4, true, "u", "p")
		if err == nil && (len(b) < 9 || b[0] != 5) {
			t.Fatalf("accepted %v", b)
		}
	})
}

func FuzzHTTPReply(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 407 Auth\r\nProxy-Authenticate: Basic\r\n\r\nxx"))
	f.Add([]byte("HTTP/1.1 200\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(b), maxHTTPLine)
		if err := readHTTPReply(br); err == nil && !bytes.HasPrefix(b, []byte("HTTP/1.")) {
			t.Fatalf("accepted %q", b)
		}
	})
}

func TestDirect(t *testing.T) {
	p := fakeProxy(t, func(c net.Conn) { io.Copy(c, c) })
	c, err := Direct().Dial(ctx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoThrough(t, c)
}
