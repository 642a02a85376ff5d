package control

import (
	"strings"
	"testing"
)

func TestParseMapAddress(t *testing.T) {
	got, err := ParseMapAddress(`1.2.3.4=torproject.org 0.0.0.0="x.onion"`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (MapAddressEntry{"1.2.3.4", "torproject.org"}) || got[1] != (MapAddressEntry{"0.0.0.0", "x.onion"}) {
		t.Fatalf("entries %+v", got)
	}
	for _, bad := range []string{"", "   ", "x.onion", `"*.a.b"=x`, "a=b c", `a="b`} {
		if e, err := ParseMapAddress(bad); err == nil {
			t.Errorf("ParseMapAddress(%q) = %+v", bad, e)
		}
	}
	got, err = ParseMapAddress(`a.example=b.example *.c.example="*.d.example"`)
	if err != nil || len(got) != 2 || got[1] != (MapAddressEntry{"*.c.example", "*.d.example"}) {
		t.Fatalf("wildcards: %+v, %v", got, err)
	}
}

func TestMapAddressCommand(t *testing.T) {
	_, addr, _ := startServer(t, fullAuth(), 0)
	c := authed(t, addr)
	c.expect("MAPADDRESS 0.0.0.0=x.onion a.example=b.example", "250-127.192.0.7=x.onion\r\n250 a.example=b.example\r\n")
	c.expect("MAPADDRESS a=bad:addr b=c", "512-syntax error: invalid address 'bad:addr'\r\n250 b=c\r\n")
	c.expect("MAPADDRESS", "512 syntax error: not enough arguments to mapaddress.\r\n")
	c.expect("MAPADDRESS x.onion", "512 syntax error: Too many arguments to MAPADDRESS\r\n")
}

func FuzzParseMapAddress(f *testing.F) {
	for _, s := range []string{"1.2.3.4=torproject.org", `0.0.0.0=x.onion ::="y.onion"`, "*.a=*.b c", `a="\x41`, "="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		es, err := ParseMapAddress(s)
		if err != nil {
			return
		}
		if len(es) == 0 {
			t.Fatal("no entries and no error")
		}
		for _, e := range es {
			if e.From == "" || strings.ContainsAny(e.From, " \t=") {
				t.Fatalf("bad source %q from %q", e.From, s)
			}
		}
	})
}
