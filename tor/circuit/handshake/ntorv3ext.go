package handshake

import (
	"cmp"
	"errors"
	"sort"

	"tinytor/tor/errfmt"
)

// Extension field types of the ntor v3 client and server messages
// (tor-spec "CREATE2 extensions"; proposal 324 10.3; proposal 346).
const (
	// ExtCCRequest (client to exit): congestion control is wanted on this
	// circuit. Empty body.
	ExtCCRequest = 1
	// ExtCCResponse (relay to client): congestion control accepted; the
	// body is the relay's cc_sendme_inc, one byte.
	ExtCCResponse = 2
	// ExtSubprotoRequest (client to relay): enable these subprotocol
	// capabilities on the circuit. The body is a list of (PROTOCOL_ID,
	// CAPABILITY) byte pairs in ascending order without repeats. A C tor
	// 0.4.9 relay answers DESTROY (reason PROTOCOL) if it lists anything
	// but Relay=6 (CGO relay crypto), or Relay=6 without ExtCCRequest;
	// with Relay=6 accepted it switches the hop to CGO.
	ExtSubprotoRequest = 3
)

// Numeric protocol ids of subprotocol capabilities (tor-spec
// "Subprotocol versioning"), as used in ExtSubprotoRequest.
const (
	ProtoLink      = 0
	ProtoLinkAuth  = 1
	ProtoRelay     = 2
	ProtoDirCache  = 3
	ProtoHSDir     = 4
	ProtoHSIntro   = 5
	ProtoHSRend    = 6
	ProtoDesc      = 7
	ProtoMicrodesc = 8
	ProtoCons      = 9
	ProtoPadding   = 10
	ProtoFlowCtrl  = 11
	ProtoConflux   = 12
)

// ErrMalformedExt is wrapped by every error about a malformed ntor v3
// message or extension body.
var ErrMalformedExt = errors.New("malformed ntor v3 extension data")

// ErrUnsolicitedCC is wrapped by the error ParseNtorV3Reply returns when
// the relay answered a congestion control request that was not made
// (proposal 324 10.5: the client must close the circuit).
var ErrUnsolicitedCC = errors.New("congestion control response without a request")

// Ext is one extension field of an ntor v3 message.
type Ext struct {
	Type uint8
	// Body is EXT_FIELD, at most 255 bytes. When parsed it aliases the
	// parsed message.
	Body []byte
}

// AppendExts appends the encoding of an extension list, the ntor v3
// message made of exts (or the extensions of an onion service cell):
// N_EXTENSIONS(1) then, for each, EXT_FIELD_TYPE(1) EXT_FIELD_LEN(1)
// EXT_FIELD. The order of exts is kept (the spec asks senders for
// ascending types).
func AppendExts(b []byte, exts []Ext) ([]byte, error) {
	if len(exts) > 255 {
		return nil, errfmt.Errorf("%d extensions, at most 255", len(exts))
	}
	b = append(b, byte(len(exts)))
	for _, e := range exts {
		if len(e.Body) > 255 {
			return nil, errfmt.Errorf("extension of type %d: body of %d bytes, at most 255", e.Type, len(e.Body))
		}
		b = append(b, e.Type, byte(len(e.Body)))
		b = append(b, e.Body...)
	}
	return b, nil
}

// ParseExts decodes an ntor v3 message into its extensions, in order and
// with repeats (FindExt gives the first of a type, which is the one that
// counts). A message that is empty, truncated, or has bytes after the
// last extension is malformed. Bodies alias b.
func ParseExts(b []byte) ([]Ext, error) {
	exts, rest, err := CutExts(b)
	if err == nil && len(rest) != 0 {
		err = errfmt.Errorf("%d bytes after the %d extensions", len(rest), len(exts))
	}
	if err != nil {
		return nil, errfmt.Errorf("ntor v3 message: %w: %w", err, ErrMalformedExt)
	}
	return exts, nil
}

// CutExts decodes the extension list at the start of b, N_EXTENSIONS(1)
// then, for each, EXT_FIELD_TYPE(1) EXT_FIELD_LEN(1) EXT_FIELD, as ntor
// v3 messages and onion service cells carry it. It returns the extensions
// in order and with repeats, and the bytes after the list; bodies alias b.
// Its errors say where the list is truncated (offsets count from b).
func CutExts(b []byte) (exts []Ext, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, errors.New("empty, N_EXTENSIONS missing")
	}
	n := int(b[0])
	off := 1
	if n > 0 {
		exts = make([]Ext, 0, n)
	}
	for i := 1; i <= n; i++ {
		if len(b)-off < 2 {
			return nil, nil, errfmt.Errorf("extension %d of %d at byte %d: header needs 2 bytes, %d left", i, n, off, len(b)-off)
		}
		typ, l := b[off], int(b[off+1])
		off += 2
		if len(b)-off < l {
			return nil, nil, errfmt.Errorf("extension %d of %d (type %d) at byte %d: body of %d bytes, %d left", i, n, typ, off-2, l, len(b)-off)
		}
		exts = append(exts, Ext{Type: typ, Body: b[off : off+l : off+l]})
		off += l
	}
	return exts, b[off:], nil
}

// FindExt returns the body of the first extension of type typ; later
// ones are ignored (proposal 332 A.2).
func FindExt(exts []Ext, typ uint8) ([]byte, bool) {
	for _, e := range exts {
		if e.Type == typ {
			return e.Body, true
		}
	}
	return nil, false
}

// Subproto is one subprotocol capability, such as Relay=6.
type Subproto struct {
	Protocol   uint8 // numeric protocol id, e.g. ProtoRelay
	Capability uint8 // capability number, e.g. 6
}

func cmpSubproto(a, b Subproto) int {
	if c := cmp.Compare(a.Protocol, b.Protocol); c != 0 {
		return c
	}
	return cmp.Compare(a.Capability, b.Capability)
}

// AppendSubprotoRequest appends the body of an ExtSubprotoRequest
// extension listing reqs, sorted and without repeats as relays require.
func AppendSubprotoRequest(b []byte, reqs []Subproto) ([]byte, error) {
	s := append([]Subproto(nil), reqs...)
	// sort.Slice rather than a generic sort: no copy of the sort code
	// for this element type.
	sort.Slice(s, func(i, j int) bool { return cmpSubproto(s[i], s[j]) < 0 })
	start := len(b)
	for i, r := range s {
		if i == 0 || r != s[i-1] {
			b = append(b, r.Protocol, r.Capability)
		}
	}
	if n := len(b) - start; n > 255 {
		return nil, errfmt.Errorf("subprotocol request: %d capabilities, at most 127", n/2)
	}
	return b, nil
}

// ParseSubprotoRequest decodes the body of an ExtSubprotoRequest
// extension. As C tor does, it rejects an odd length and a list that is
// not strictly ascending.
func ParseSubprotoRequest(body []byte) ([]Subproto, error) {
	if len(body)%2 != 0 {
		return nil, errfmt.Errorf("subprotocol request: odd length %d: %w", len(body), ErrMalformedExt)
	}
	reqs := make([]Subproto, 0, len(body)/2)
	for i := 0; i < len(body); i += 2 {
		r := Subproto{Protocol: body[i], Capability: body[i+1]}
		if n := len(reqs); n > 0 && cmpSubproto(reqs[n-1], r) >= 0 {
			return nil, errfmt.Errorf("subprotocol request: %d=%d after %d=%d is not in ascending order: %w",
				r.Protocol, r.Capability, reqs[n-1].Protocol, reqs[n-1].Capability, ErrMalformedExt)
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// NtorV3Request is what a client asks of a relay in its ntor v3 message.
// The zero value asks for nothing and encodes as the single byte 00, what
// C tor sends when it uses ntor v3 without congestion control.
type NtorV3Request struct {
	// CongestionControl sends ExtCCRequest. Only for a hop that will carry
	// streams (the exit, or an onion service's rendezvous hop), that
	// advertises FlowCtrl=2 and Relay=4, and when the consensus cc_alg is
	// not 0 (proposal 324 10.1).
	CongestionControl bool
	// Subprotocols, if any, are sent in an ExtSubprotoRequest. The relay
	// must advertise Relay=5 and every listed capability, or it closes the
	// circuit; a relay that accepts a capability uses it from then on, so
	// list only what the client implements.
	Subprotocols []Subproto
}

// Marshal encodes r as an ntor v3 client message, extensions in
// ascending type order.
func (r NtorV3Request) Marshal() ([]byte, error) {
	var exts []Ext
	if r.CongestionControl {
		exts = append(exts, Ext{Type: ExtCCRequest})
	}
	if len(r.Subprotocols) > 0 {
		body, err := AppendSubprotoRequest(nil, r.Subprotocols)
		if err != nil {
			return nil, err
		}
		exts = append(exts, Ext{Type: ExtSubprotoRequest, Body: body})
	}
	return AppendExts(make([]byte, 0, 16), exts)
}

// NtorV3Reply is what a relay's ntor v3 message says to a client.
type NtorV3Reply struct {
	// CongestionControl is true when the relay sent ExtCCResponse: the hop
	// uses congestion control with SENDMEs every SendmeInc cells.
	CongestionControl bool
	// SendmeInc is the relay's cc_sendme_inc (1-255), or 0 without
	// congestion control. The caller checks it against its own consensus
	// with SendmeIncAcceptable.
	SendmeInc uint8
}

// ParseNtorV3Reply decodes the relay's message sm (from
// NtorV3Client.Finish) given the request the client sent. Unknown
// extensions are ignored; of repeated ones the first counts. It fails on
// a malformed message, on an ExtCCResponse that answers no request
// (wrapping ErrUnsolicitedCC), and on an ExtCCResponse with an empty body
// or a sendme_inc of 0. Bytes after sendme_inc in the response body are
// ignored, as C tor does.
func ParseNtorV3Reply(sm []byte, req NtorV3Request) (NtorV3Reply, error) {
	r, err := parseNtorV3Reply(sm, req)
	if err != nil {
		return NtorV3Reply{}, errfmt.Errorf("ntor v3 server message: %w", err)
	}
	return r, nil
}

func parseNtorV3Reply(sm []byte, req NtorV3Request) (NtorV3Reply, error) {
	exts, err := ParseExts(sm)
	if err != nil {
		return NtorV3Reply{}, err
	}
	body, ok := FindExt(exts, ExtCCResponse)
	switch {
	case !ok:
		return NtorV3Reply{}, nil
	case !req.CongestionControl:
		return NtorV3Reply{}, ErrUnsolicitedCC
	case len(body) < 1:
		return NtorV3Reply{}, errfmt.Errorf("congestion control response without sendme_inc: %w", ErrMalformedExt)
	case body[0] == 0:
		return NtorV3Reply{}, errfmt.Errorf("congestion control response with sendme_inc 0: %w", ErrMalformedExt)
	}
	return NtorV3Reply{CongestionControl: true, SendmeInc: body[0]}, nil
}

// SendmeIncAcceptable reports whether the sendme_inc a relay sent is
// within a factor of two of the consensus cc_sendme_inc (proposal 324
// 10.5), with C tor's integer bounds: consensus/2 <= got <= 2*consensus
// and got != 0. A client closes the circuit when it is not.
func SendmeIncAcceptable(got uint8, consensus int) bool {
	g := int(got)
	return g != 0 && g <= 2*consensus && g >= consensus/2
}
