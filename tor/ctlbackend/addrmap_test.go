package ctlbackend

import (
	"errors"
	"strings"
	"testing"
	"time"

	"tinytor/tor/addrmap"
	"tinytor/tor/control"
	"tinytor/tor/torlog"
)

func TestMapAddressAndMappings(t *testing.T) {
	m, err := addrmap.New(addrmap.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &Backend{cfg: Config{AddrMap: m}, log: torlog.Discard()}
	const onion = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion"
	v, err := b.MapAddress("0.0.0.0", onion)
	if err != nil || !strings.HasPrefix(v, "127.") {
		t.Fatalf("MapAddress 0.0.0.0: %q, %v", v, err)
	}
	if v2, _ := b.MapAddress("0.0.0.0", onion); v2 != v {
		t.Fatalf("second MapAddress gave %q, first %q", v2, v)
	}
	if got, err := b.MapAddress("a.example", "b.example"); err != nil || got != "a.example" {
		t.Fatalf("MapAddress a.example: %q, %v", got, err)
	}
	for _, bad := range [][2]string{{"a", "b c"}, {"*", "x"}, {"x", "*.y"}} {
		var ce *control.Error
		if _, err := b.MapAddress(bad[0], bad[1]); !errors.As(err, &ce) {
			t.Errorf("MapAddress(%q, %q): %v, want a control error", bad[0], bad[1], err)
		}
	}
	h, err := b.MapAddress(".", "c.example")
	if err != nil || !strings.HasSuffix(h, ".virtual") {
		t.Fatalf("MapAddress .: %q, %v", h, err)
	}
	m.Register(h, h, addrmap.FromController, time.Time{}) // unmap it again
	all, err := b.GetInfo("address-mappings/all")
	if err != nil || all != v+" "+onion+" NEVER\na.example b.example NEVER" {
		t.Errorf("address-mappings/all = %q, %v", all, err)
	}
	if s, _ := b.GetInfo("address-mappings/control"); s != all {
		t.Errorf("address-mappings/control = %q", s)
	}
	if s, err := b.GetInfo("address-mappings/config"); s != "" || err != nil {
		t.Errorf("address-mappings/config = %q, %v", s, err)
	}
	if _, err := b.GetInfo("address-mappings/nosuch"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("address-mappings/nosuch: %v", err)
	}
}
