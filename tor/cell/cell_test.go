package cell

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
)

func TestMarshalRoundTrip(t *testing.T) {
	var c Cell
	c.CircID = 0x80000001
	c.Command = Create2
	for i := range c.Payload {
		c.Payload[i] = byte(i)
	}
	var buf [Len]byte
	c.MarshalTo(&buf)
	if buf[0] != 0x80 || buf[3] != 0x01 || buf[4] != 10 || buf[5] != 0 || buf[Len-1] != 0xfc {
		t.Fatalf("bad encoding: % x", buf[:8])
	}
	var d Cell
	d.Unmarshal(&buf)
	if d != c {
		t.Fatal("round trip mismatch")
	}
}

func TestIsVariable(t *testing.T) {
	for cmd, want := range map[Command]bool{Padding: false, Versions: true, Netinfo: false, Create2: false, VPadding: true, Certs: true, AuthChallenge: true, 255: true, 127: false} {
		if IsVariable(cmd) != want {
			t.Errorf("IsVariable(%v) = %v", cmd, !want)
		}
	}
	if Certs.String() != "CERTS" || Command(200).String() != "command(200)" {
		t.Error("String")
	}
}

func TestReaderWriter(t *testing.T) {
	var stream bytes.Buffer
	w := NewWriter(&stream)
	if err := w.WriteVarCell(&VarCell{Command: Versions, Payload: EncodeVersions(4, 5)}); err != nil {
		t.Fatal(err)
	}
	w.SetLinkVersion(4)
	c := &Cell{CircID: 0x80001234, Command: CreateFast}
	c.Payload[0] = 0xaa
	if err := w.WriteCell(c); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteVarCell(&VarCell{Command: VPadding, Payload: make([]byte, 100)}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteVarCell(&VarCell{Command: Certs, Payload: []byte{0}}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCell(&Cell{Command: Certs}); err == nil {
		t.Error("WriteCell accepted a variable command")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 7, 0, 4, 0, 4, 0, 5}
	if !bytes.Equal(stream.Bytes()[:9], want) {
		t.Fatalf("VERSIONS encoding % x, want % x", stream.Bytes()[:9], want)
	}
	if stream.Len() != 9+Len+4+1+2+100+4+1+2+1 {
		t.Fatalf("stream length %d", stream.Len())
	}

	pool := NewPool(4)
	r := NewReader(&stream, pool)
	f, v, err := r.ReadCell()
	if err != nil || f != nil || v.Command != Versions {
		t.Fatalf("first cell: %v %v %v", f, v, err)
	}
	vs, err := ParseVersions(v.Payload)
	if err != nil || len(vs) != 2 || vs[0] != 4 || vs[1] != 5 {
		t.Fatalf("versions %v %v", vs, err)
	}
	r.SetLinkVersion(4)
	f, v, err = r.ReadCell()
	if err != nil || v != nil || f.CircID != 0x80001234 || f.Command != CreateFast || f.Payload[0] != 0xaa {
		t.Fatalf("second cell: %v %v %v", f, v, err)
	}
	pool.Put(f)
	f, v, err = r.ReadCell()
	if err != nil || f != nil || v.Command != VPadding || v.Payload != nil {
		t.Fatalf("VPADDING cell: %v %v %v", f, v, err)
	}
	f, v, err = r.ReadCell()
	if err != nil || f != nil || v.Command != Certs || len(v.Payload) != 1 {
		t.Fatalf("third cell: %v %v %v", f, v, err)
	}
	if _, _, err = r.ReadCell(); !errors.Is(err, io.EOF) {
		t.Fatalf("at end: %v", err)
	}
	// A stream cut inside a cell.
	r = NewReader(bytes.NewReader([]byte{0, 0, 0, 1, 3, 9, 9}), pool)
	r.SetLinkVersion(5)
	if _, _, err = r.ReadCell(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestWriterNarrowCircID(t *testing.T) {
	w := NewWriter(io.Discard)
	if err := w.WriteCell(&Cell{CircID: 0x10000}); !errors.Is(err, ErrCircIDTooWide) {
		t.Fatalf("got %v", err)
	}
	var b bytes.Buffer
	w = NewWriter(&b)
	w.SetLinkVersion(3)
	if err := w.WriteCell(&Cell{CircID: 0x1234, Command: Relay}); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if b.Len() != LenV3 || b.Bytes()[0] != 0x12 || b.Bytes()[2] != 3 {
		t.Fatalf("v3 cell % x", b.Bytes()[:4])
	}
}

func TestRelayHeader(t *testing.T) {
	var p [PayloadLen]byte
	if err := SetRelay(&p, RelayBeginDir, 0x1234, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	SetRelayDigest(&p, [4]byte{1, 2, 3, 4})
	want := []byte{13, 0, 0, 0x12, 0x34, 1, 2, 3, 4, 0, 2, 'h', 'i'}
	if !bytes.Equal(p[:13], want) {
		t.Fatalf("got % x want % x", p[:13], want)
	}
	h := ParseRelayHeader(&p)
	if h.Command != RelayBeginDir || h.StreamID != 0x1234 || h.Digest != [4]byte{1, 2, 3, 4} || h.Length != 2 || h.Recognized != 0 {
		t.Fatalf("%+v", h)
	}
	if RelayCmd(&p) != RelayBeginDir || RelayStreamID(&p) != 0x1234 || RelayDigest(&p) != h.Digest || RelayRecognized(&p) != 0 {
		t.Fatal("accessors")
	}
	body, err := RelayBody(&p)
	if err != nil || string(body) != "hi" {
		t.Fatalf("%q %v", body, err)
	}
	p[9], p[10] = 0x01, 0xf3 // 499
	if _, err := RelayBody(&p); err == nil {
		t.Fatal("accepted length 499")
	}
	if err := SetRelay(&p, RelayData, 1, make([]byte, RelayDataLen+1)); err == nil {
		t.Fatal("accepted 499 bytes of data")
	}
	if RelayDataLen != 498 || RelayEstablishIntro != 32 || RelayIntroduceAck != 40 || RelayExtended2.String() != "EXTENDED2" {
		t.Fatal("constants")
	}
	if EndConnectRefused.String() != "CONNECTREFUSED" || DestroyORIdentity.String() != "OR_IDENTITY" || DestroyReason(99).String() != "destroy_reason(99)" {
		t.Fatal("reason names")
	}
}

func TestCreate2Created2(t *testing.T) {
	var p [PayloadLen]byte
	c := Create2Msg{HandshakeType: HandshakeNtor, HandshakeData: bytes.Repeat([]byte{7}, 84)}
	if err := c.MarshalTo(&p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p[:5], []byte{0, 2, 0, 84, 7}) {
		t.Fatalf("% x", p[:5])
	}
	d, err := ParseCreate2(p[:])
	if err != nil || d.HandshakeType != 2 || !bytes.Equal(d.HandshakeData, c.HandshakeData) {
		t.Fatalf("%+v %v", d, err)
	}
	p[2], p[3] = 0x01, 0xfa // 506 > 505
	if _, err := ParseCreate2(p[:]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("overlong HLEN: %v", err)
	}
	r := Created2Msg{HandshakeData: []byte{1, 2, 3}}
	if err := r.MarshalTo(&p); err != nil {
		t.Fatal(err)
	}
	e, err := ParseCreated2(p[:])
	if err != nil || !bytes.Equal(e.HandshakeData, []byte{1, 2, 3}) {
		t.Fatalf("%+v %v", e, err)
	}
	if got := r.AppendTo(nil); !bytes.Equal(got, []byte{0, 3, 1, 2, 3}) {
		t.Fatalf("% x", got)
	}
}

func TestFast(t *testing.T) {
	var p [PayloadLen]byte
	cf := CreateFastMsg{X: [20]byte{1, 19: 2}}
	cf.MarshalTo(&p)
	got, err := ParseCreateFast(p[:])
	if err != nil || got != cf {
		t.Fatal(got, err)
	}
	cd := CreatedFastMsg{Y: [20]byte{3}, DerivativeKH: [20]byte{19: 4}}
	cd.MarshalTo(&p)
	if p[0] != 3 || p[39] != 4 {
		t.Fatal("layout")
	}
	got2, err := ParseCreatedFast(p[:])
	if err != nil || got2 != cd {
		t.Fatal(got2, err)
	}
	if _, err := ParseCreatedFast(p[:39]); !errors.Is(err, ErrTruncated) {
		t.Fatal(err)
	}
	MarshalDestroy(&p, DestroyFinished)
	if r, err := ParseDestroy(p[:]); err != nil || r != DestroyFinished {
		t.Fatal(r, err)
	}
}

func TestNetinfo(t *testing.T) {
	var p [PayloadLen]byte
	n := NetinfoMsg{Time: 0x01020304, OtherAddr: netip.MustParseAddr("127.0.0.1"),
		MyAddrs: []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::1")}}
	if err := n.MarshalTo(&p); err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 2, 3, 4, 4, 4, 127, 0, 0, 1, 2, 4, 4, 10, 1, 2, 3, 6, 16, 0x20, 0x01}
	if !bytes.Equal(p[:len(want)], want) {
		t.Fatalf("got % x", p[:len(want)])
	}
	m, err := ParseNetinfo(p[:])
	if err != nil || m.Time != n.Time || m.OtherAddr != n.OtherAddr || len(m.MyAddrs) != 2 || m.MyAddrs[1] != n.MyAddrs[1] {
		t.Fatalf("%+v %v", m, err)
	}
	// Unknown type and wrong-length addresses are skipped.
	m, err = ParseNetinfo([]byte{0, 0, 0, 0, 9, 1, 0, 2, 4, 3, 1, 2, 3, 4, 4, 8, 8, 8, 8})
	if err != nil || m.OtherAddr.IsValid() || len(m.MyAddrs) != 1 || m.MyAddrs[0] != netip.MustParseAddr("8.8.8.8") {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := ParseNetinfo([]byte{0, 0, 0, 0, 4, 4, 1, 2}); !errors.Is(err, ErrTruncated) {
		t.Fatal(err)
	}
	if _, err := ParseVersions([]byte{0, 4, 0}); err == nil {
		t.Fatal("odd VERSIONS accepted")
	}
}

func TestExtend2(t *testing.T) {
	e := Extend2Msg{
		Specs: []LinkSpec{
			LinkSpecAddr(netip.MustParseAddrPort("127.0.0.1:9001")),
			LinkSpecRSAID([20]byte{0xaa}),
			LinkSpecEdID([32]byte{0xbb}),
			LinkSpecAddr(netip.MustParseAddrPort("[::1]:443")),
		},
		Create2Msg: Create2Msg{HandshakeType: HandshakeNtor, HandshakeData: make([]byte, 84)},
	}
	b, err := e.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + 8 + 22 + 34 + 20 + 4 + 84; len(b) != want {
		t.Fatalf("len %d want %d", len(b), want)
	}
	if !bytes.Equal(b[:9], []byte{4, 0, 6, 127, 0, 0, 1, 0x23, 0x29}) {
		t.Fatalf("% x", b[:9])
	}
	d, err := ParseExtend2(b)
	if err != nil || len(d.Specs) != 4 || d.HandshakeType != HandshakeNtor || len(d.HandshakeData) != 84 {
		t.Fatalf("%+v %v", d, err)
	}
	ap, err := d.Specs[3].AddrPort()
	if err != nil || ap != netip.MustParseAddrPort("[::1]:443") {
		t.Fatal(ap, err)
	}
	if _, err := d.Specs[1].AddrPort(); err == nil {
		t.Fatal("identity as address")
	}
	// Two legacy identities.
	dup := Extend2Msg{Specs: []LinkSpec{LinkSpecRSAID([20]byte{}), LinkSpecRSAID([20]byte{})}}
	b, _ = dup.AppendTo(nil)
	if _, err := ParseExtend2(b); err == nil {
		t.Fatal("duplicate legacy id accepted")
	}
	bad := Extend2Msg{Specs: []LinkSpec{{Type: LinkSpecIPv4, Data: []byte{1}}}}
	if _, err := bad.AppendTo(nil); err == nil {
		t.Fatal("bad length encoded")
	}
	if _, err := ParseExtend2([]byte{1, 0, 5, 1, 2, 3, 4, 5, 0, 2, 0, 0}); err == nil {
		t.Fatal("bad IPv4 length decoded")
	}
	big := Extend2Msg{Create2Msg: Create2Msg{HandshakeData: make([]byte, 494)}}
	if _, err := big.AppendTo(nil); err == nil {
		t.Fatal("oversized EXTEND2 encoded")
	}
}

// loopReader yields the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

func TestReadCellAllocs(t *testing.T) {
	var buf [Len]byte
	(&Cell{CircID: 0x80000001, Command: Relay}).MarshalTo(&buf)
	pool := NewPool(8)
	r := NewReader(&loopReader{data: buf[:]}, pool)
	r.SetLinkVersion(4)
	allocs := testing.AllocsPerRun(1000, func() {
		c, _, err := r.ReadCell()
		if err != nil {
			panic(err)
		}
		pool.Put(c)
	})
	if allocs != 0 {
		t.Fatalf("ReadCell allocated %v times per fixed cell", allocs)
	}
}

func BenchmarkReadCell(b *testing.B) {
	var buf [Len]byte
	(&Cell{CircID: 0x80000001, Command: Relay}).MarshalTo(&buf)
	pool := NewPool(8)
	r := NewReader(&loopReader{data: buf[:]}, pool)
	r.SetLinkVersion(4)
	b.ReportAllocs()
	b.SetBytes(Len)
	for b.Loop() {
		c, _, err := r.ReadCell()
		if err != nil {
			b.Fatal(err)
		}
		pool.Put(c)
	}
}

func BenchmarkWriteCell(b *testing.B) {
	w := NewWriter(io.Discard)
	w.SetLinkVersion(4)
	c := &Cell{CircID: 0x80000001, Command: Relay}
	b.ReportAllocs()
	b.SetBytes(Len)
	for b.Loop() {
		if err := w.WriteCell(c); err != nil {
			b.Fatal(err)
		}
	}
}
