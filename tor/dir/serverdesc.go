package dir

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"io"
	mathbits "math/bits"
	"net/netip"
	"time"

	"filippo.io/edwards25519/field"

	"tinytor/tor/cert"
	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
)

// ServerDescriptor is a relay's or bridge's server descriptor (dir-spec
// 2.1.1), as a bridge serves its own at /tor/server/authority. A
// *ServerDescriptor returned by ParseServerDescriptor has passed every
// check that does not depend on the time: see ParseServerDescriptor, and
// Verify for the certificates' lifetimes.
type ServerDescriptor struct {
	// Nickname is the "router" line's nickname.
	Nickname string
	// Address is the IPv4 address and ORPort of the "router" line.
	Address netip.AddrPort
	// DirPort is the "router" line's DirPort, 0 if none.
	DirPort uint16
	// ORAddresses are the "or-address" lines that parse as one address
	// and one port (IPv4 or bracketed IPv6), in document order; other
	// lines are ignored, as C tor ignores them.
	ORAddresses []netip.AddrPort

	// Fingerprint is the relay's RSA identity: SHA-1 of the PKCS #1 DER
	// encoding of IdentityKey ("signing-key").
	Fingerprint [20]byte
	// IdentityKey is the relay's 1024-bit RSA identity key.
	IdentityKey *rsa.PublicKey
	// Ed25519ID is the relay's Ed25519 master identity key: the key that
	// signed the identity-ed25519 certificate, equal to
	// "master-key-ed25519".
	Ed25519ID [32]byte
	// SigningKey is the Ed25519 descriptor signing key certified by the
	// identity-ed25519 certificate; it made router-sig-ed25519.
	SigningKey [32]byte
	// CertExpires is when the first of the identity-ed25519 certificate
	// and the ntor-onion-key-crosscert expires (C tor's
	// cert_expiration_time): after it the descriptor is not valid.
	CertExpires time.Time

	// NtorOnionKey is the relay's curve25519 key for the ntor handshake.
	NtorOnionKey [32]byte
	// HasTAPKey reports whether the descriptor has the obsolete RSA
	// "onion-key" (and so an onion-key-crosscert, which was checked).
	HasTAPKey bool

	// Protocols are the subprotocol versions of the "proto" line, and
	// ProtoLine that line's text after the keyword.
	Protocols Protocols
	ProtoLine string
	// Published is the "published" time.
	Published time.Time
	// Platform and Contact are the "platform" and "contact" lines' text,
	// "" if absent.
	Platform string
	Contact  string
	// Family is the declared "family", nil if none.
	Family *Family

	// Bandwidth in bytes per second: average, burst and observed.
	BandwidthRate, BandwidthBurst, BandwidthObserved uint32
	// Uptime is the "uptime" in seconds, 0 if absent.
	Uptime uint64
	// Hibernating is set by "hibernating 1": the relay should not be used.
	Hibernating bool
	// TunnelledDir reports whether the relay answers directory requests
	// over BEGIN_DIR: it has "tunnelled-dir-server" or a DirPort, as C
	// tor decides.
	TunnelledDir bool

	// Digest is SHA-1 of the signed portion (from "router" through the
	// newline after "router-signature"): the descriptor digest of
	// /tor/server/d/ and the ns consensus.
	Digest [20]byte
	// Raw is the descriptor's text from "router" through the end of its
	// signature (for a cache).
	Raw []byte

	certExpiresWhat string // which certificate expires at CertExpires
}

const serverDescDoc = "server descriptor"

// Errors wrapped by ParseServerDescriptor and Verify, for callers that
// decide on them with errors.Is (signature failures wrap ErrBadSignature;
// certificate failures wrap the tinytor/tor/cert errors, such as
// cert.ErrBadSignature and cert.ErrExpired).
var (
	// ErrFingerprintMismatch: the "fingerprint" line does not match the
	// identity key, or (ParseBridgeDescriptor) the identity is not the
	// expected one.
	ErrFingerprintMismatch = errors.New("fingerprint does not match the identity key")
	// ErrEd25519IDMismatch: "master-key-ed25519" does not match the key
	// that signed the identity-ed25519 certificate.
	ErrEd25519IDMismatch = errors.New("Ed25519 master key does not match the identity-ed25519 certificate")
	// ErrBadCrossCert: an onion key's cross-certification is invalid.
	ErrBadCrossCert = errors.New("invalid cross-certification")
)

// sdItem identifies the items a server descriptor holds at most once.
type sdItem uint32

const (
	sdRouter sdItem = 1 << iota
	sdIdentityEd25519
	sdMasterKey
	sdBandwidth
	sdPlatform
	sdPublished
	sdFingerprint
	sdHibernating
	sdUptime
	sdOnionKey
	sdOnionKeyCrossCert
	sdNtorKey
	sdNtorCrossCert
	sdSigningKey
	sdIPv6Policy
	sdRouterSigEd25519
	sdRouterSignature
	sdContact
	sdFamily
	sdReadHistory
	sdWriteHistory
	sdExtraInfoDigest
	sdHSDir
	sdCachesExtraInfo
	sdAllowSingleHop
	sdTunnelledDir
	sdProto
)

// sdKeywords names the once-only items, in the order of their sdItem
// bits, and the shape C tor's token table
// (routerdesc_token_table) gives them: minimum and maximum arguments
// (-1: any), whether an object is required, forbidden or allowed, and
// the type a required object must have.
var sdKeywords = [...]struct {
	kw       string
	min, max int8
	obj      netdoc.Shape
	required bool
	objType  string
}{
	{"router", 5, -1, netdoc.NoObject, true, ""},
	{"identity-ed25519", 0, 0, netdoc.NeedObject, true, "ED25519 CERT"},
	{"master-key-ed25519", 1, -1, netdoc.NoObject, true, ""},
	{"bandwidth", 3, -1, netdoc.NoObject, true, ""},
	{"platform", 0, -1, netdoc.NoObject, false, ""},
	{"published", 2, 2, netdoc.NoObject, true, ""},
	{"fingerprint", 1, -1, netdoc.NoObject, false, ""},
	{"hibernating", 1, -1, netdoc.NoObject, false, ""},
	{"uptime", 1, -1, netdoc.NoObject, false, ""},
	{"onion-key", 0, 0, netdoc.NeedObject, false, rsaKeyType},
	{"onion-key-crosscert", 0, 0, netdoc.NeedObject, false, "CROSSCERT"},
	{"ntor-onion-key", 1, -1, netdoc.NoObject, true, ""},
	{"ntor-onion-key-crosscert", 1, 1, netdoc.NeedObject, true, "ED25519 CERT"},
	{"signing-key", 0, 0, netdoc.NeedObject, true, rsaKeyType},
	{"ipv6-policy", 0, -1, netdoc.NoObject, false, ""},
	{"router-sig-ed25519", 1, -1, netdoc.NoObject, true, ""},
	{"router-signature", 0, 0, netdoc.NeedObject, true, "SIGNATURE"},
	{"contact", 0, -1, netdoc.NoObject, false, ""},
	{"family", 0, -1, netdoc.NoObject, false, ""},
	{"read-history", 0, -1, netdoc.NoObject, false, ""},
	{"write-history", 0, -1, netdoc.NoObject, false, ""},
	{"extra-info-digest", 1, -1, netdoc.NoObject, false, ""},
	{"hidden-service-dir", 0, 0, netdoc.NoObject, false, ""},
	{"caches-extra-info", 0, 0, netdoc.NoObject, false, ""},
	{"allow-single-hop-exits", 0, 0, netdoc.NoObject, false, ""},
	{"tunnelled-dir-server", 0, 0, netdoc.NoObject, false, ""},
	{"proto", 0, -1, netdoc.NoObject, true, ""},
}

// itemOf returns the once-only item with the given bit (zero if unseen).
func (p *sdParser) itemOf(bit sdItem) *netdoc.Item {
	return &p.items[mathbits.TrailingZeros32(uint32(bit))]
}

// edSigPrefix is prepended to the Ed25519-signed portion before hashing
// (dir-spec 2.1.1 "router-sig-ed25519").
const edSigPrefix = "Tor router descriptor signature v1"

// ParseServerDescriptor parses one server descriptor (dir-spec 2.1.1)
// and checks everything in it that does not depend on the time, as C
// tor's router_parse_entry_from_string does:
//
//   - the items: "router" first and "identity-ed25519" second,
//     "router-sig-ed25519" next to last and "router-signature" last;
//     each known item at most once, with the arguments and object C tor
//     requires; router, identity-ed25519, master-key-ed25519, bandwidth,
//     published, proto, ntor-onion-key, ntor-onion-key-crosscert,
//     signing-key, router-sig-ed25519 and router-signature present; at
//     least one accept/reject line and no accept6/reject6; onion-key and
//     onion-key-crosscert both or neither; family members that are
//     nicknames or hex digests; an ipv6-policy that parses; a non-zero
//     ORPort. Unknown items are ignored,
//     and so are bridge-distribution-request, extra-info-digest, the
//     exit policy lines' contents and "family-cert". Blank lines after
//     the signature are allowed; anything else after it is an error, and
//     so are annotations ("@...", which only C tor's cache files have).
//   - the "fingerprint" line, if any, against the identity key
//     (ErrFingerprintMismatch);
//   - the RSA "router-signature" by the identity key: PKCS #1 v1.5
//     without DigestInfo over SHA-1 of the text from "router" through the
//     newline after "router-signature" (ErrBadSignature);
//   - the identity-ed25519 certificate: type 4, certifying an Ed25519
//     key, with a signed-with-ed25519-key extension, signed by that key;
//     that key equal to "master-key-ed25519" (ErrEd25519IDMismatch);
//   - "router-sig-ed25519" by the certified signing key over SHA-256 of
//     "Tor router descriptor signature v1" and the text from "router"
//     through the space after "router-sig-ed25519" (ErrBadSignature);
//   - the ntor-onion-key-crosscert: a type 10 certificate of the master
//     key, signed by the Ed25519 form of the ntor key with the given sign
//     bit (ErrBadCrossCert);
//   - the onion-key-crosscert, when there is a TAP onion key: the onion
//     key's PKCS #1 v1.5 signature of the identity digest and the master
//     key (ErrBadCrossCert). The spec lets signers append data to the 52
//     bytes; C tor does not, and this package accepts exactly the 52.
//
// Errors are *netdoc.Error naming the line and keyword, wrapping the
// reasons above. The certificates' expiry is checked by Verify.
func ParseServerDescriptor(doc []byte) (*ServerDescriptor, error) {
	p := sdParser{t: netdoc.NewTokenizer(serverDescDoc, doc), doc: doc}
	return p.parse()
}

// ParseBridgeDescriptor parses a descriptor fetched from a bridge (see
// ParseServerDescriptor), checks its certificates at now (Verify) and,
// if want is not nil, that it is the descriptor of the bridge with that
// RSA identity (from the Bridge line), wrapping ErrFingerprintMismatch
// if not.
func ParseBridgeDescriptor(doc []byte, want *[20]byte, now time.Time) (*ServerDescriptor, error) {
	sd, err := ParseServerDescriptor(doc)
	if err != nil {
		return nil, err
	}
	if want != nil && sd.Fingerprint != *want {
		return nil, errfmt.Errorf("descriptor of %s is for identity %X, not the bridge's %X: %w",
			sd.Nickname, sd.Fingerprint, *want, ErrFingerprintMismatch)
	}
	if err := sd.Verify(now); err != nil {
		return nil, err
	}
	return sd, nil
}

// Verify checks what depends on the time: that the identity-ed25519
// certificate and the ntor-onion-key-crosscert have not expired at now
// (wrapping cert.ErrExpired). The signatures were checked by
// ParseServerDescriptor.
func (sd *ServerDescriptor) Verify(now time.Time) error {
	if now.After(sd.CertExpires) {
		return errfmt.Errorf("server descriptor %s (%X): %s expired at %s (now %s): %w", sd.Nickname, sd.Fingerprint,
			sd.certExpiresWhat, netdoc.Time(sd.CertExpires), netdoc.Time(now), cert.ErrExpired)
	}
	return nil
}

// sdParser holds the state of one ParseServerDescriptor call.
type sdParser struct {
	t    *netdoc.Tokenizer
	doc  []byte
	sd   *ServerDescriptor
	seen sdItem
	// items holds the once-only items seen, indexed as sdKeywords.
	items [len(sdKeywords)]netdoc.Item

	start int // offset of the "router" line

	identityKey  *rsa.PublicKey
	onionKey     *rsa.PublicKey
	fpValue      [20]byte
	masterKey    [32]byte
	idCert       *cert.Ed25519
	ntorCC       *cert.Ed25519
	ntorSignBit  byte
	tapCC        []byte
	edSig        [64]byte
	rsaSig       []byte
	haveExitRule bool
}

func (p *sdParser) parse() (*ServerDescriptor, error) {
	t := p.t
	sd := &ServerDescriptor{}
	p.sd = sd
	var prev, last netdoc.Item // the two items before the current one
	n := 0
	for {
		it, err := t.Scan()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if p.seen&sdRouterSignature != 0 {
			return nil, t.Fail(it, "item after router-signature (a descriptor ends with its signature)")
		}
		n++
		switch {
		case n == 1 && !it.Is("router"):
			return nil, t.Fail(it, "descriptor must start with a router line")
		case n == 2 && !it.Is("identity-ed25519"):
			return nil, t.Fail(it, "second item must be identity-ed25519")
		}
		if err := p.item(it); err != nil {
			return nil, err
		}
		prev, last = last, *it
	}
	if n == 0 {
		return nil, t.FailLine(0, "empty document")
	}
	for i, k := range sdKeywords {
		if k.required && p.seen&(1<<i) == 0 {
			return nil, t.FailLine(last.Line, "missing %s", []byte(k.kw))
		}
	}
	if !last.Is("router-signature") {
		return nil, t.Fail(&last, "router-signature must be the last item")
	}
	if !prev.Is("router-sig-ed25519") {
		return nil, t.Fail(&prev, "router-sig-ed25519 must come just before router-signature")
	}
	if !p.haveExitRule {
		return nil, t.FailLine(last.Line, "no exit policy (accept or reject) lines")
	}
	if (p.seen&sdOnionKey == 0) != (p.seen&sdOnionKeyCrossCert == 0) {
		it := p.itemOf(sdOnionKeyCrossCert)
		if p.seen&sdOnionKey == 0 {
			return nil, t.Fail(it, "onion-key-crosscert without onion-key")
		}
		return nil, t.FailLine(last.Line, "onion-key without onion-key-crosscert")
	}
	if sd.Address.Port() == 0 {
		return nil, t.Fail(p.itemOf(sdRouter), "ORPort is 0")
	}
	sd.TunnelledDir = sd.TunnelledDir || sd.DirPort != 0
	if err := p.verify(); err != nil {
		return nil, err
	}
	sd.Raw = append([]byte(nil), p.doc[p.start:last.End]...)
	return sd, nil
}

// verify checks the identity and the signatures once every item is read.
func (p *sdParser) verify() error {
	t, sd := p.t, p.sd

	// RSA identity.
	if p.seen&sdFingerprint != 0 && p.fpValue != sd.Fingerprint {
		return t.WrapMsg(p.itemOf(sdFingerprint), ErrFingerprintMismatch, "%s is not the identity key's digest %s", hexID(p.fpValue[:]), hexID(sd.Fingerprint[:]))
	}
	signed := p.doc[p.start : p.itemOf(sdRouterSignature).ArgsEnd+1]
	sd.Digest = sha1.Sum(signed)
	if err := verifyRaw(p.identityKey, sd.Digest[:], p.rsaSig); err != nil {
		return t.WrapMsg(p.itemOf(sdRouterSignature), &kindError{ErrBadSignature, err}, "RSA signature by the identity key %s", hexID(sd.Fingerprint[:]))
	}

	// Ed25519 identity and the descriptor signing key.
	c := p.idCert
	if c.Type != cert.TypeIdentitySigning || c.KeyType != cert.KeyEd25519 {
		return t.Errorf(p.itemOf(sdIdentityEd25519), "certificate is of type %d certifying key type %d, want type 4 certifying an Ed25519 key", c.Type, c.KeyType)
	}
	if c.SignedWithKey == nil {
		return t.Fail(p.itemOf(sdIdentityEd25519), "certificate lacks the signed-with-ed25519-key extension")
	}
	if err := c.Verify(nil); err != nil {
		return t.Wrap(p.itemOf(sdIdentityEd25519), err)
	}
	copy(sd.Ed25519ID[:], c.SignedWithKey)
	sd.SigningKey = c.CertifiedKey
	if p.masterKey != sd.Ed25519ID {
		return t.Wrap(p.itemOf(sdMasterKey), ErrEd25519IDMismatch)
	}
	sd.CertExpires, sd.certExpiresWhat = c.Expiration(), "identity-ed25519 certificate"

	end := p.itemOf(sdRouterSigEd25519).Start + len("router-sig-ed25519")
	if p.doc[end] != ' ' {
		return t.Fail(p.itemOf(sdRouterSigEd25519), "keyword must be followed by a single space")
	}
	h := sha256.New()
	h.Write([]byte(edSigPrefix))
	h.Write(p.doc[p.start : end+1])
	if !ed25519.Verify(sd.SigningKey[:], h.Sum(nil), p.edSig[:]) {
		return t.WrapMsg(p.itemOf(sdRouterSigEd25519), ErrBadSignature, "Ed25519 signature by the descriptor signing key")
	}

	// ntor onion key cross-certification.
	cc := p.ntorCC
	if cc.Type != cert.TypeNtorCrossCert || cc.KeyType != cert.KeyEd25519 || cc.CertifiedKey != sd.Ed25519ID {
		return t.Wrap(p.itemOf(sdNtorCrossCert), errfmt.Errorf("certificate of type %d does not certify the Ed25519 identity (want type 10): %w", cc.Type, ErrBadCrossCert))
	}
	ntorEd := curve25519ToEd25519(sd.NtorOnionKey, p.ntorSignBit)
	if err := cc.Verify(ntorEd[:]); err != nil {
		return t.WrapMsg(p.itemOf(sdNtorCrossCert), &kindError{ErrBadCrossCert, err}, "not signed by the ntor onion key")
	}
	if cc.Expiration().Before(sd.CertExpires) {
		sd.CertExpires, sd.certExpiresWhat = cc.Expiration(), "ntor-onion-key-crosscert"
	}

	// TAP onion key cross-certification.
	if sd.HasTAPKey {
		var msg [52]byte
		copy(msg[:20], sd.Fingerprint[:])
		copy(msg[20:], sd.Ed25519ID[:])
		if err := rsa.VerifyPKCS1v15(p.onionKey, crypto.Hash(0), msg[:], p.tapCC); err != nil {
			return t.WrapMsg(p.itemOf(sdOnionKeyCrossCert), &kindError{ErrBadCrossCert, err}, "not a signature of the identity digest and Ed25519 identity by the onion key")
		}
	}
	return nil
}

// curve25519ToEd25519 returns the Ed25519 public key with the given sign
// bit whose Montgomery form is the curve25519 key u: y = (u-1)/(u+1)
// (dir-spec appendix C, C tor's
// ed25519_public_key_from_curve25519_public_key).
func curve25519ToEd25519(u [32]byte, signBit byte) [32]byte {
	var x, one, num, den field.Element
	x.SetBytes(u[:]) // 32 bytes: cannot fail; the top bit is ignored
	one.One()
	num.Subtract(&x, &one)
	den.Add(&x, &one)
	den.Invert(&den)
	num.Multiply(&num, &den)
	var out [32]byte
	copy(out[:], num.Bytes())
	out[31] |= signBit << 7
	return out
}

// item checks one item's shape and records what it says.
func (p *sdParser) item(it *netdoc.Item) error {
	t, sd := p.t, p.sd
	kw := string(it.Keyword)
	switch kw {
	case "accept", "reject":
		// C tor's router_parse_addr_policy takes exactly one pattern.
		p.haveExitRule = true
		return t.CheckShape(it, 1, 1, netdoc.NoObject)
	case "accept6", "reject6":
		return t.Fail(it, "not allowed in descriptors (C tor rejects them: they crash older Tors)")
	case "or-address":
		if err := t.CheckShape(it, 1, -1, netdoc.NoObject); err != nil {
			return err
		}
		if ap, ok := parseORAddr(it.Args[0]); ok {
			sd.ORAddresses = append(sd.ORAddresses, ap)
		}
		return nil
	}
	var bit sdItem
	var obj []byte // the object, if its type is in the table
	for i, k := range sdKeywords {
		if k.kw != kw {
			continue
		}
		bit = 1 << i
		if p.seen&bit != 0 {
			return t.Fail(it, "appears more than once")
		}
		p.seen |= bit
		p.items[i] = *it
		if err := t.CheckShape(it, int(k.min), int(k.max), k.obj); err != nil {
			return err
		}
		if k.objType != "" {
			var err error
			if obj, err = t.ObjectOf(it, k.objType); err != nil {
				return err
			}
		}
		break
	}
	var err error
	switch bit {
	case 0:
		// Unknown items (and "opt", "family-cert") are ignored.
	case sdRouter:
		p.start = it.Start
		if !legalNickname(it.Args[0]) {
			return t.Fail(it, "invalid nickname %q", it.Args[0])
		}
		sd.Nickname = string(it.Args[0])
		a, err := parseIPv4(it.Args[1])
		if err != nil {
			return t.Fail(it, "address %q is not an IPv4 address", it.Args[1])
		}
		or, err := parseUint(it.Args[2], 65535)
		if err != nil {
			return t.Fail(it, "invalid ORPort %q", it.Args[2])
		}
		dp, err := parseUint(it.Args[4], 65535)
		if err != nil {
			return t.Fail(it, "invalid DirPort %q", it.Args[4])
		}
		sd.Address = netip.AddrPortFrom(netip.AddrFrom4(a), uint16(or))
		sd.DirPort = uint16(dp)
	case sdIdentityEd25519:
		p.idCert, err = cert.ParseEd25519(obj)
	case sdMasterKey, sdNtorKey, sdRouterSigEd25519:
		// A base64 key or signature.
		dst := p.edSig[:]
		switch bit {
		case sdMasterKey:
			dst = p.masterKey[:]
		case sdNtorKey:
			dst = sd.NtorOnionKey[:]
		}
		err = netdoc.DecodeBase64NoPad(dst, it.Args[0])
	case sdBandwidth:
		var v [3]uint64
		for i, name := range [...]string{"average", "burst", "observed"} {
			if v[i], err = parseUint(it.Args[i], 1<<31-1); err != nil || i == 0 && v[i] == 0 {
				return t.Fail(it, "invalid %s bandwidth %q", []byte(name), it.Args[i])
			}
		}
		sd.BandwidthRate, sd.BandwidthBurst, sd.BandwidthObserved = uint32(v[0]), uint32(v[1]), uint32(v[2])
	case sdPlatform, sdContact, sdProto:
		// The line's text after the keyword, without surrounding
		// whitespace (C tor's CONCAT_ARGS).
		text := string(bytes.Trim(p.doc[it.Start+len(it.Keyword):it.ArgsEnd], " \t"))
		switch bit {
		case sdPlatform:
			sd.Platform = text
		case sdContact:
			sd.Contact = text
		default:
			sd.ProtoLine = text
			for _, a := range it.Args {
				if err = sd.Protocols.addEntry(a); err != nil {
					break
				}
			}
		}
	case sdPublished:
		sd.Published, err = netdoc.TimeArgs(it)
	case sdFingerprint:
		// Groups of four hex digits; C tor strips the spaces.
		err = netdoc.DecodeHex(p.fpValue[:], bytes.Join(it.Args, nil))
	case sdHibernating:
		// C tor reads any number, non-zero meaning hibernating.
		n, err := parseUint(it.Args[0], 1<<63-1)
		sd.Hibernating = err == nil && n != 0
	case sdUptime:
		if sd.Uptime, err = parseUint(it.Args[0], 1<<63-1); err != nil {
			return t.Fail(it, "invalid uptime %q", it.Args[0])
		}
	case sdOnionKey:
		p.onionKey, err = parseOnionKey(obj)
		sd.HasTAPKey = true
	case sdOnionKeyCrossCert:
		p.tapCC = obj
	case sdNtorCrossCert:
		switch string(it.Args[0]) {
		case "0":
		case "1":
			p.ntorSignBit = 1
		default:
			return t.Fail(it, "sign bit %q is neither 0 nor 1", it.Args[0])
		}
		p.ntorCC, err = cert.ParseEd25519(obj)
	case sdSigningKey:
		p.identityKey, sd.Fingerprint, err = parseRSAKey(obj, cert.RSAIdentityBits, "identity key")
		sd.IdentityKey = p.identityKey
	case sdIPv6Policy:
		// C tor rejects a descriptor whose ipv6-policy does not parse.
		if len(it.Args) > 0 {
			_, err = ParsePortPolicy(it.Args)
		}
	case sdFamily:
		f := &Family{}
		for _, a := range it.Args {
			if !f.addMember(a) {
				return t.Fail(it, "illegal nickname %q in family line", a)
			}
		}
		if len(it.Args) > 0 {
			sd.Family = f
		}
	case sdTunnelledDir:
		sd.TunnelledDir = true
	case sdRouterSignature:
		p.rsaSig = obj
	}
	if err != nil {
		return t.Wrap(it, err)
	}
	return nil
}

// addMember adds a member of a server descriptor's family line: a
// nickname, or a hex digest with an optional '$' and an optional
// "=nickname" or "~nickname" (C tor's is_legal_nickname_or_hexdigest).
// It reports false for anything else.
func (f *Family) addMember(a []byte) bool {
	if legalNickname(a) {
		f.Nicknames = append(f.Nicknames, string(a))
		return true
	}
	hex := bytes.TrimPrefix(a, []byte("$"))
	if len(hex) > 40 {
		if (hex[40] != '=' && hex[40] != '~') || !legalNickname(hex[41:]) {
			return false
		}
		hex = hex[:40]
	}
	var id [20]byte
	if netdoc.DecodeHex(id[:], hex) != nil {
		return false
	}
	f.IDs = append(f.IDs, id)
	return true
}

// ParseServerDescriptors parses a concatenation of server descriptors,
// as in a /tor/server/d/ response or C tor's cached-descriptors files
// (where annotation lines such as "@downloaded-at" and "@purpose bridge"
// precede each descriptor: they are skipped). Each descriptor runs from
// its "router" line to the next annotation or "router" line, and is
// parsed and checked by ParseServerDescriptor. A descriptor that fails is
// skipped and the others are kept, as C tor keeps them; the error then
// joins (errors.Join) one *netdoc.Error per skipped descriptor, with
// lines numbered in the whole document. Lines before the first
// descriptor that are neither blank nor annotations make an error too.
func ParseServerDescriptors(doc []byte) ([]*ServerDescriptor, error) {
	var (
		out       []*ServerDescriptor
		errs      []error
		start     = -1 // offset of the current descriptor's router line
		startLine int
		stray     = -1 // offset of a line outside any descriptor
		strayLine int
	)
	finish := func(end int) {
		if start < 0 {
			return
		}
		sd, err := ParseServerDescriptor(doc[start:end])
		if err != nil {
			var ne *netdoc.Error
			if errors.As(err, &ne) && ne.Line > 0 {
				ne.Line += startLine - 1
			}
			errs = append(errs, err)
		} else {
			out = append(out, sd)
		}
		start = -1
	}
	line := 1
	for pos := 0; pos < len(doc); line++ {
		end := bytes.IndexByte(doc[pos:], '\n')
		if end < 0 {
			end = len(doc)
		} else {
			end += pos
		}
		l := doc[pos:end]
		switch {
		case len(l) > 0 && l[0] == '@':
			finish(pos)
		case bytes.HasPrefix(l, []byte("router ")) || bytes.HasPrefix(l, []byte("router\t")):
			finish(pos)
			start, startLine = pos, line
		case start < 0 && len(l) > 0 && stray < 0:
			stray, strayLine = pos, line
		}
		pos = end + 1
	}
	finish(len(doc))
	if stray >= 0 {
		errs = append(errs, &netdoc.Error{Doc: serverDescDoc, Line: strayLine,
			Err: netdoc.Message("line outside a descriptor (a descriptor starts with a router line)")})
	}
	if len(out) == 0 && len(errs) == 0 {
		return nil, &netdoc.Error{Doc: serverDescDoc, Err: netdoc.Message("no descriptor in document")}
	}
	return out, errors.Join(errs...)
}
