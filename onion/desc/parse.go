package desc

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"tinytor/onion/hscell"
	"tinytor/onion/keys"
	"tinytor/tor/cell"
	"tinytor/tor/cert"
	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
)

// SigPrefix is prefixed to the signed part of the outer document.
const SigPrefix = "Tor onion service descriptor sig v3"

// MaxLifetime is the longest descriptor-lifetime C tor accepts.
const MaxLifetime = 12 * time.Hour

// Outer is the verified outer document (rend-spec-v3 2.4).
type Outer struct {
	Lifetime time.Duration
	// SigningKeyCert is the type 8 certificate of the descriptor signing
	// key, signed by the blinded key.
	SigningKeyCert *cert.Ed25519
	// SigningKey is KP_hs_desc_sign.
	SigningKey ed25519.PublicKey
	// BlindedKey is KP_hs_blind_id, the key that signed the certificate.
	BlindedKey      ed25519.PublicKey
	RevisionCounter uint64
	// Superencrypted is the first layer's encrypted blob.
	Superencrypted []byte
}

func invalid(where string, err error) error {
	return errfmt.Errorf("%w: %s: %w", ErrInvalid, where, err)
}

// Reasons of item errors, wrapped with their line by the tokenizer.
var (
	errTwice     = errors.New("appears twice")
	errOneArg    = errors.New("want 1 argument")
	errNotNtor   = errors.New("key type is not ntor")
	errWrongSign = errors.New("certificate not signed by the descriptor signing key")
)

// missingError reports a required item absent from a document.
type missingError string

func (e missingError) Error() string { return "missing " + string(e) }

// itemIndex returns the index of the keyword kw in items, or -1.
func itemIndex(items []string, kw []byte) int {
	for i, s := range items {
		if s == string(kw) {
			return i
		}
	}
	return -1
}

// firstMissing returns the error for the first of items whose bit is not
// set in seen, or nil.
func firstMissing(items []string, seen uint) error {
	for i, kw := range items {
		if seen&(1<<i) == 0 {
			return missingError(kw)
		}
	}
	return nil
}

// outerItems are the items of the outer document, indexed by the outer*
// constants; each must appear exactly once.
var outerItems = []string{"hs-descriptor", "descriptor-lifetime", "descriptor-signing-key-cert", "revision-counter", "superencrypted", "signature"}

const (
	outerVersion = iota
	outerLifetime
	outerSigningKeyCert
	outerRevision
	outerSuperencrypted
	outerSignature

	// outerOneArg has the bits of the items that take exactly one
	// argument.
	outerOneArg = 1<<outerVersion | 1<<outerLifetime | 1<<outerRevision | 1<<outerSignature
)

// ParseOuter parses the outer document and verifies it as C tor does: the
// version is 3, the lifetime at most 12 hours, the signing key certificate
// has type 8, carries its signer (the blinded key), is correctly signed and
// not expired at now, and the document's signature by the signing key is
// valid. Unknown items are ignored.
func ParseOuter(doc []byte, now time.Time) (*Outer, error) {
	o, err := parseOuter(doc, now)
	if err != nil {
		return nil, invalid("outer document", err)
	}
	return o, nil
}

func parseOuter(doc []byte, now time.Time) (*Outer, error) {
	if len(doc) > MaxLen {
		return nil, errfmt.Errorf("%d bytes, at most %d", len(doc), MaxLen)
	}
	t := netdoc.NewTokenizer("onion service descriptor", withNewline(doc))
	o := &Outer{}
	var seen uint
	var sig []byte
	sigStart := -1
	for {
		it, err := t.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		k := itemIndex(outerItems, it.Keyword)
		switch {
		case seen == 0 && (k != outerVersion || len(it.Args) != 1 || string(it.Args[0]) != "3"):
			err = errors.New("does not start with \"hs-descriptor 3\"")
		case sigStart >= 0:
			err = errors.New("item after signature")
		case k < 0:
			continue
		case seen&(1<<k) != 0:
			err = errTwice
		case outerOneArg&(1<<k) != 0 && len(it.Args) != 1:
			err = errOneArg
		}
		switch {
		case err != nil:
		case k == outerLifetime:
			var m uint64
			if m, err = strconv.ParseUint(string(it.Args[0]), 10, 32); err == nil {
				o.Lifetime = time.Duration(m) * time.Minute
				if o.Lifetime > MaxLifetime {
					err = errfmt.Errorf("lifetime %d minutes is over %v", m, MaxLifetime)
				}
			}
		case k == outerSigningKeyCert:
			if o.SigningKeyCert, err = objectCert(&it, cert.TypeHSDescSigning, now); err == nil {
				o.SigningKey = o.SigningKeyCert.CertifiedEd25519()
				o.BlindedKey = o.SigningKeyCert.SignedWithKey
			}
		case k == outerRevision:
			o.RevisionCounter, err = strconv.ParseUint(string(it.Args[0]), 10, 64)
		case k == outerSuperencrypted:
			o.Superencrypted, err = messageObject(&it)
		case k == outerSignature:
			sig = make([]byte, ed25519.SignatureSize)
			err = netdoc.DecodeBase64NoPad(sig, it.Args[0])
			sigStart = it.Start
		}
		if err != nil {
			return nil, t.Wrap(&it, err)
		}
		seen |= 1 << k
	}
	if err := firstMissing(outerItems, seen); err != nil {
		return nil, err
	}
	if !ed25519.Verify(o.SigningKey, append([]byte(SigPrefix), doc[:sigStart]...), sig) {
		return nil, errors.New("bad signature by the descriptor signing key")
	}
	return o, nil
}

// objectCert decodes and checks the ED25519 CERT object of it: the type,
// the signed-with-key extension, the signature and the expiry.
func objectCert(it *netdoc.Item, typ cert.Type, now time.Time) (*cert.Ed25519, error) {
	if !it.HasObject() || string(it.ObjectType) != "ED25519 CERT" {
		return nil, errors.New("needs an ED25519 CERT object")
	}
	b, err := it.Object()
	if err != nil {
		return nil, err
	}
	c, err := cert.ParseEd25519(b)
	switch {
	case err != nil:
	case c.Type != typ:
		err = errfmt.Errorf("certificate type %v, want %v", c.Type, typ)
	case c.SignedWithKey == nil:
		err = errors.New("certificate lacks the signed-with-ed25519-key extension")
	case c.KeyType != cert.KeyEd25519:
		err = errfmt.Errorf("certified key type %d, want ed25519", c.KeyType)
	default:
		err = c.Check(nil, now)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// messageObject returns the encrypted blob in the MESSAGE object of it.
func messageObject(it *netdoc.Item) ([]byte, error) {
	if !it.HasObject() || string(it.ObjectType) != "MESSAGE" {
		return nil, errors.New("needs a MESSAGE object")
	}
	b, err := it.Object()
	if err != nil {
		return nil, err
	}
	if len(b) <= SaltLen+macLen {
		return nil, errfmt.Errorf("encrypted blob of %d bytes is too short", len(b))
	}
	return b, nil
}

// AuthClient is one auth-client entry of the first layer.
type AuthClient struct {
	ID              [ClientIDLen]byte
	IV              [16]byte
	EncryptedCookie [CookieLen]byte
}

// Middle is the first (superencrypted) layer's plaintext (rend-spec-v3
// 2.5.1.2).
type Middle struct {
	// EphemeralKey is KP_hss_desc_enc.
	EphemeralKey [32]byte
	Clients      []AuthClient
	// Encrypted is the second layer's encrypted blob.
	Encrypted []byte
}

// middleItems are the items of the first layer, indexed by the middle*
// constants; all must appear, all but auth-client at most once.
var middleItems = []string{"desc-auth-type", "desc-auth-ephemeral-key", "auth-client", "encrypted"}

const (
	middleAuthType = iota
	middleEphemeralKey
	middleAuthClient
	middleEncrypted
)

// authClientFields name the arguments of an auth-client line.
var authClientFields = [...]string{"client-id", "iv", "encrypted-cookie"}

// ParseMiddle parses the first layer's plaintext. desc-auth-type must be
// x25519.
func ParseMiddle(plain []byte) (*Middle, error) {
	t := netdoc.NewTokenizer("descriptor first layer", withNewline(plain))
	m := &Middle{}
	var seen uint
	for {
		it, err := t.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		k := itemIndex(middleItems, it.Keyword)
		if k < 0 {
			continue
		}
		switch {
		case k != middleAuthClient && seen&(1<<k) != 0:
			err = errTwice
		case k == middleAuthType:
			if len(it.Args) < 1 || string(it.Args[0]) != "x25519" {
				err = errors.New("auth type is not x25519")
			}
		case k == middleEphemeralKey:
			if len(it.Args) < 1 {
				err = errors.New("missing key")
			} else {
				err = netdoc.DecodeBase64NoPad(m.EphemeralKey[:], it.Args[0])
			}
		case k == middleAuthClient:
			if len(it.Args) < 3 {
				err = errors.New("want 3 arguments")
				break
			}
			var c AuthClient
			for i, dst := range [...][]byte{c.ID[:], c.IV[:], c.EncryptedCookie[:]} {
				if err = netdoc.DecodeBase64NoPad(dst, it.Args[i]); err != nil {
					err = errfmt.Errorf("%s: %w", authClientFields[i], err)
					break
				}
			}
			m.Clients = append(m.Clients, c)
		case k == middleEncrypted:
			m.Encrypted, err = messageObject(&it)
		}
		if err != nil {
			return nil, t.Wrap(&it, err)
		}
		seen |= 1 << k
	}
	if err := firstMissing(middleItems, seen); err != nil {
		return nil, err
	}
	return m, nil
}

// Cookie finds the auth-client entry for the client key sk and decrypts the
// descriptor cookie (rend-spec-v3 2.5.1.3). ok is false if no entry is for
// this client.
func (m *Middle) Cookie(sk *ecdh.PrivateKey, subcred [32]byte) (cookie [CookieLen]byte, ok bool) {
	id, ck, err := clientKeys(subcred, sk, m.EphemeralKey[:])
	if err != nil {
		return cookie, false
	}
	for _, c := range m.Clients {
		if c.ID == id {
			ctr(ck, c.IV[:], cookie[:], c.EncryptedCookie[:])
			return cookie, true
		}
	}
	return cookie, false
}

// IntroPoint is one introduction point of the second layer.
type IntroPoint struct {
	// LinkSpecs locate the introduction point; send them verbatim.
	LinkSpecs []cell.LinkSpec
	// OnionKey is the introduction point relay's ntor onion key.
	OnionKey [32]byte
	// AuthKey is KP_hs_ipt_sid, certified by AuthKeyCert (type 9).
	AuthKey     ed25519.PublicKey
	AuthKeyCert *cert.Ed25519
	// EncKey is KP_hss_ntor, certified by EncKeyCert (type 11).
	EncKey     [32]byte
	EncKeyCert *cert.Ed25519
}

// Inner is the second (encrypted) layer's plaintext (rend-spec-v3 2.5.2.2).
type Inner struct {
	Create2Formats    []int
	IntroAuthRequired []string
	SingleOnion       bool
	// FlowControl holds the flow-control line's arguments ("1-2", "31"),
	// nil if absent.
	FlowControl []string
	// PoW is the "pow-params v1" line (proposal 327), nil if absent.
	// Lines of other proof-of-work types are ignored.
	PoW         *PoWParams
	IntroPoints []IntroPoint
	// Skipped says why introduction points were left out (as C tor does,
	// an unusable introduction point does not invalidate the descriptor).
	Skipped []error
}

// ParseInner parses the second layer's plaintext. The introduction points'
// certificates must be signed by signingKey (the descriptor signing key) and
// not be expired at now; create2-formats must include ntor (2).
func ParseInner(plain []byte, signingKey ed25519.PublicKey, now time.Time) (*Inner, error) {
	// Split at "introduction-point" lines: the header, then one section
	// per introduction point.
	sections := splitIntroPoints(plain)
	in := &Inner{}
	t := netdoc.NewTokenizer("descriptor second layer", withNewline(sections[0]))
	haveFormats := false
	for {
		it, err := t.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch string(it.Keyword) {
		case "create2-formats":
			if haveFormats {
				return nil, t.Errorf(&it, "appears twice")
			}
			haveFormats = true
			for _, a := range it.Args {
				n, err := strconv.Atoi(string(a))
				if err != nil {
					continue // C tor ignores unparseable entries
				}
				in.Create2Formats = append(in.Create2Formats, n)
			}
		case "intro-auth-required":
			for _, a := range it.Args {
				in.IntroAuthRequired = append(in.IntroAuthRequired, string(a))
			}
		case "single-onion-service":
			in.SingleOnion = true
		case "flow-control":
			if len(it.Args) < 2 {
				return nil, t.Errorf(&it, "want 2 arguments")
			}
			for _, a := range it.Args {
				in.FlowControl = append(in.FlowControl, string(a))
			}
		case "pow-params":
			if err := parsePoWParams(t, &it, &in.PoW); err != nil {
				return nil, err
			}
		}
	}
	if !haveFormats {
		return nil, errors.New("missing create2-formats")
	}
	ntor := false
	for _, f := range in.Create2Formats {
		ntor = ntor || f == 2
	}
	if !ntor {
		return nil, errors.New("create2-formats does not include ntor (2)")
	}
	for i, s := range sections[1:] {
		ip, err := parseIntroPoint(s, signingKey, now)
		if err != nil {
			in.Skipped = append(in.Skipped, errfmt.Errorf("introduction point %d: %w", i+1, err))
			continue
		}
		in.IntroPoints = append(in.IntroPoints, *ip)
	}
	return in, nil
}

func splitIntroPoints(plain []byte) [][]byte {
	const kw = "introduction-point "
	var out [][]byte
	start := 0
	for i := 0; ; {
		j := bytes.Index(plain[i:], []byte(kw))
		if j < 0 {
			break
		}
		j += i
		if j == 0 || plain[j-1] == '\n' {
			out = append(out, plain[start:j])
			start = j
		}
		i = j + len(kw)
	}
	return append(out, plain[start:])
}

// introItems are the items of an introduction point section, indexed by
// the intro* constants; all must appear (onion-key: one of type ntor), all
// but onion-key at most once.
var introItems = []string{"introduction-point", "onion-key", "auth-key", "enc-key", "enc-key-cert"}

const (
	introLinkSpecs = iota
	introOnionKey
	introAuthKey
	introEncKey
	introEncKeyCert
)

func parseIntroPoint(s []byte, signingKey ed25519.PublicKey, now time.Time) (*IntroPoint, error) {
	t := netdoc.NewTokenizer("introduction point", withNewline(s))
	ip := &IntroPoint{}
	var seen uint
	for {
		it, err := t.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		k := itemIndex(introItems, it.Keyword)
		if k < 0 || k == introOnionKey && (len(it.Args) < 2 || string(it.Args[0]) != "ntor") {
			continue // C tor skips onion keys of other types
		}
		switch {
		case k != introOnionKey && seen&(1<<k) != 0:
			err = errTwice
		case k == introLinkSpecs:
			ip.LinkSpecs, err = parseLinkSpecsArg(it.Args)
		case k == introOnionKey:
			err = netdoc.DecodeBase64NoPad(ip.OnionKey[:], it.Args[1])
		case k == introAuthKey || k == introEncKeyCert:
			typ := cert.TypeHSIntroAuth
			if k == introEncKeyCert {
				typ = cert.TypeHSIntroEncrypted
			}
			var c *cert.Ed25519
			c, err = objectCert(&it, typ, now)
			switch {
			case err != nil:
			case !c.SignedWithKey.Equal(signingKey):
				err = errWrongSign
			case k == introEncKeyCert:
				ip.EncKeyCert = c
			default:
				ip.AuthKeyCert = c
				ip.AuthKey = c.CertifiedEd25519()
			}
		case k == introEncKey:
			if len(it.Args) < 2 || string(it.Args[0]) != "ntor" {
				err = errNotNtor
			} else {
				err = netdoc.DecodeBase64NoPad(ip.EncKey[:], it.Args[1])
			}
		}
		if err != nil {
			return nil, t.Wrap(&it, err)
		}
		seen |= 1 << k
	}
	if seen&(1<<introOnionKey) == 0 {
		return nil, errors.New("no ntor onion-key")
	}
	if err := firstMissing(introItems, seen); err != nil {
		return nil, err
	}
	return ip, nil
}

// parseLinkSpecsArg decodes the argument of an introduction-point item:
// a link specifier block in base64.
func parseLinkSpecsArg(args [][]byte) ([]cell.LinkSpec, error) {
	if len(args) != 1 {
		return nil, errOneArg
	}
	raw := make([]byte, len(args[0]))
	n, err := decodeBase64Any(raw, args[0])
	if err != nil {
		return nil, err
	}
	specs, rest, err := hscell.ParseLinkSpecs(raw[:n])
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errfmt.Errorf("%d bytes after the link specifiers", len(rest))
	}
	return specs, nil
}

// decodeBase64Any decodes base64 with or without padding into dst and
// returns the decoded length.
func decodeBase64Any(dst, src []byte) (int, error) {
	s := strings.TrimRight(string(src), "=")
	n := len(s) * 6 / 8
	if len(dst) < n {
		return 0, errors.New("base64 too long")
	}
	if err := netdoc.DecodeBase64NoPad(dst[:n], []byte(s)); err != nil {
		return 0, err
	}
	return n, nil
}

// Descriptor is a decoded and decrypted descriptor.
type Descriptor struct {
	Outer  *Outer
	Middle *Middle
	Inner  *Inner
	// Subcredential is N_hs_subcred for the descriptor's blinded key.
	Subcredential [32]byte
}

// Decode parses, verifies and decrypts a descriptor fetched for the
// service with identity key identity. blinded is the blinded key the
// client asked the HSDir for (nil skips that check). clientKey is the
// client authorization x25519 key for this service, or nil.
//
// Errors wrap ErrInvalid, ErrNeedClientAuth (no clientKey, and the second
// layer does not decrypt without a descriptor cookie) or ErrBadClientAuth
// (clientKey given, but neither the cookie of a matching auth-client entry
// nor the absence of a cookie decrypts the second layer).
func Decode(doc []byte, identity, blinded ed25519.PublicKey, clientKey *ecdh.PrivateKey, now time.Time) (*Descriptor, error) {
	o, err := ParseOuter(doc, now)
	if err != nil {
		return nil, err
	}
	if blinded != nil && !o.BlindedKey.Equal(blinded) {
		return nil, invalid("outer document", errors.New("signed by another blinded key than requested"))
	}
	d := &Descriptor{Outer: o, Subcredential: keys.Subcredential(identity, o.BlindedKey)}
	plain, err := DecryptLayer(o.Superencrypted, o.BlindedKey, d.Subcredential, o.RevisionCounter, SuperencryptedConst)
	if err == nil {
		d.Middle, err = ParseMiddle(plain)
	}
	if err != nil {
		return nil, invalid("first layer", err)
	}
	// As C tor does: with a client key, use the cookie of the matching
	// auth-client entry if there is one, else try without a cookie (the
	// service may not use client authorization).
	secret := append([]byte(nil), o.BlindedKey...)
	if clientKey != nil {
		if cookie, ok := d.Middle.Cookie(clientKey, d.Subcredential); ok {
			secret = append(secret, cookie[:]...)
		}
	}
	plain, err = DecryptLayer(d.Middle.Encrypted, secret, d.Subcredential, o.RevisionCounter, EncryptedConst)
	switch {
	case errors.Is(err, errMAC):
		auth := ErrNeedClientAuth
		if clientKey != nil {
			auth = ErrBadClientAuth
		}
		return nil, errfmt.Errorf("%w: second layer: %w", auth, err)
	case err == nil:
		d.Inner, err = ParseInner(plain, o.SigningKey, now)
	}
	if err != nil {
		return nil, invalid("second layer", err)
	}
	return d, nil
}

// withNewline returns b ending in a newline: C tor writes the first layer
// without a final newline (rend-spec-v3 2.5.1.2), which the tokenizer
// needs after an object.
func withNewline(b []byte) []byte {
	if len(b) == 0 || b[len(b)-1] == '\n' {
		return b
	}
	return append(b[:len(b):len(b)], '\n')
}
