package desc

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"filippo.io/edwards25519/field"

	"tinytor/onion/hscell"
	"tinytor/onion/keys"
	"tinytor/tor/cell"
	"tinytor/tor/cert"
	"tinytor/tor/errfmt"
)

// Defaults a service uses (C tor hs_descriptor.h).
const (
	DefaultLifetime = 3 * time.Hour
	// DefaultCertLifetime is how long the certificates in a descriptor
	// are valid (HS_DESC_CERT_LIFETIME).
	DefaultCertLifetime = 54 * time.Hour
)

// NewIntroPoint describes one introduction point to put in a descriptor.
type NewIntroPoint struct {
	// LinkSpecs locate the introduction point relay (all its addresses,
	// its RSA and ed25519 identities).
	LinkSpecs []cell.LinkSpec
	// OnionKey is the relay's ntor onion key.
	OnionKey [32]byte
	// AuthKey is KP_hs_ipt_sid, the key of the ESTABLISH_INTRO cell.
	AuthKey ed25519.PublicKey
	// EncKey is KP_hss_ntor, the service's hs-ntor key for this point.
	EncKey [32]byte
}

// Params is everything Build needs.
type Params struct {
	// Identity is KP_hs_id, for the subcredential.
	Identity ed25519.PublicKey
	// Blinded is the blinded signing key for the descriptor's period.
	Blinded *keys.SigningKey
	// SigningKey is KS_hs_desc_sign, a fresh key per descriptor.
	SigningKey ed25519.PrivateKey
	// RevisionCounter must grow for each upload under the same blinded key.
	RevisionCounter uint64
	// Lifetime defaults to DefaultLifetime; whole minutes.
	Lifetime time.Duration
	// Now and CertLifetime (default DefaultCertLifetime) set certificate
	// expirations.
	Now          time.Time
	CertLifetime time.Duration

	IntroPoints       []NewIntroPoint
	IntroAuthRequired []string
	SingleOnion       bool
	// FlowControl, if set, is the flow-control line's arguments, as C tor
	// 0.4.8 writes them: {"1-2", "31"}.
	FlowControl []string
	// PoW, if set, is the pow-params line of a service with proof-of-work
	// defenses (proposal 327).
	PoW *PoWParams
	// AuthorizedClients are the x25519 public keys of the clients allowed
	// to decrypt the second layer; none disables client authorization.
	AuthorizedClients [][32]byte

	// Rand supplies salts, ephemeral keys, the descriptor cookie and fake
	// auth-client entries.
	Rand io.Reader
}

// Build makes, encrypts and signs a descriptor as C tor does: the first
// layer plaintext is NUL-padded to a multiple of 10000 bytes, the second
// layer is not padded, auth-client entries (real, or all fake when client
// authorization is off) are padded with fake ones to a multiple of 16 and
// shuffled, and the descriptor signing key is certified by the blinded key.
func Build(p Params) ([]byte, error) {
	doc, err := build(p)
	if err != nil {
		return nil, errfmt.Errorf("build descriptor: %w", err)
	}
	return doc, nil
}

func build(p Params) ([]byte, error) {
	if p.Blinded == nil || p.SigningKey == nil || len(p.Identity) != ed25519.PublicKeySize || p.Rand == nil {
		return nil, errors.New("missing keys or randomness")
	}
	if p.Now.IsZero() {
		return nil, errors.New("Now unset (certificate expirations derive from it)")
	}
	if p.Lifetime == 0 {
		p.Lifetime = DefaultLifetime
	}
	if p.CertLifetime == 0 {
		p.CertLifetime = DefaultCertLifetime
	}
	if p.Lifetime > MaxLifetime || p.Lifetime < time.Minute {
		return nil, errfmt.Errorf("lifetime %v out of range", p.Lifetime)
	}
	blinded := p.Blinded.Public()
	subcred := keys.Subcredential(p.Identity, blinded)
	signPub := p.SigningKey.Public().(ed25519.PublicKey)
	expire := p.Now.Add(p.CertLifetime)

	inner, err := innerPlaintext(p, signPub, expire)
	if err != nil {
		return nil, err
	}

	// Client authorization.
	eph, err := ecdh.X25519().GenerateKey(p.Rand)
	if err != nil {
		return nil, errfmt.Errorf("ephemeral key: %w", err)
	}
	secret := append([]byte(nil), blinded...)
	var clients []AuthClient
	if len(p.AuthorizedClients) > 0 {
		var cookie [CookieLen]byte
		if _, err := io.ReadFull(p.Rand, cookie[:]); err != nil {
			return nil, errfmt.Errorf("cookie: %w", err)
		}
		for i, pk := range p.AuthorizedClients {
			id, ck, err := clientKeys(subcred, eph, pk[:])
			if err != nil {
				return nil, errfmt.Errorf("authorized client %d: %w", i, err)
			}
			c := AuthClient{ID: id}
			if _, err := io.ReadFull(p.Rand, c.IV[:]); err != nil {
				return nil, err
			}
			ctr(ck, c.IV[:], c.EncryptedCookie[:], cookie[:])
			clients = append(clients, c)
		}
		secret = append(secret, cookie[:]...)
	}
	for len(clients) == 0 || len(clients)%AuthClientMultiple != 0 {
		// A fake entry: random ID, IV and encrypted cookie.
		var c AuthClient
		for _, f := range [...][]byte{c.ID[:], c.IV[:], c.EncryptedCookie[:]} {
			if _, err := io.ReadFull(p.Rand, f); err != nil {
				return nil, err
			}
		}
		clients = append(clients, c)
	}
	if err := shuffle(p.Rand, clients); err != nil {
		return nil, err
	}

	layer2, err := EncryptLayer(p.Rand, inner, secret, subcred, p.RevisionCounter, EncryptedConst, false)
	if err != nil {
		return nil, err
	}
	mid := []byte("desc-auth-type x25519\ndesc-auth-ephemeral-key " + base64.StdEncoding.EncodeToString(eph.PublicKey().Bytes()) + "\n")
	nopad := base64.RawStdEncoding
	for i := range clients {
		c := &clients[i]
		mid = append(mid, "auth-client "+nopad.EncodeToString(c.ID[:])+" "+nopad.EncodeToString(c.IV[:])+" "+nopad.EncodeToString(c.EncryptedCookie[:])+"\n"...)
	}
	mid = writeObject(append(mid, "encrypted\n"...), "MESSAGE", layer2)
	// C tor writes no final newline after the first layer.
	layer1, err := EncryptLayer(p.Rand, mid[:len(mid)-1], blinded, subcred, p.RevisionCounter, SuperencryptedConst, true)
	if err != nil {
		return nil, err
	}

	signCert := p.Blinded.Cert(certTemplate(cert.TypeHSDescSigning, expire, [32]byte(signPub)))

	// The signature covers SigPrefix and the document up to it.
	doc := []byte(SigPrefix + "hs-descriptor 3\ndescriptor-lifetime " + strconv.Itoa(int(p.Lifetime/time.Minute)) + "\ndescriptor-signing-key-cert\n")
	doc = writeObject(doc, "ED25519 CERT", signCert)
	doc = append(doc, "revision-counter "+strconv.FormatUint(p.RevisionCounter, 10)+"\nsuperencrypted\n"...)
	doc = writeObject(doc, "MESSAGE", layer1)
	sig := ed25519.Sign(p.SigningKey, doc)
	doc = append(doc[len(SigPrefix):], "signature "+nopad.EncodeToString(sig)+"\n"...)
	if len(doc) >= MaxLen {
		return nil, errfmt.Errorf("%d bytes, HSDirs accept less than %d", len(doc), MaxLen)
	}
	return doc, nil
}

// certTemplate is a certificate of an ed25519 key that names its signer,
// as descriptors carry them.
func certTemplate(typ cert.Type, expire time.Time, key [32]byte) cert.Ed25519Template {
	return cert.Ed25519Template{Type: typ, Expiration: expire, KeyType: cert.KeyEd25519, CertifiedKey: key, IncludeSigner: true}
}

func innerPlaintext(p Params, signPub ed25519.PublicKey, expire time.Time) ([]byte, error) {
	b := []byte("create2-formats 2\n")
	if len(p.IntroAuthRequired) > 0 {
		b = append(b, "intro-auth-required "+strings.Join(p.IntroAuthRequired, " ")+"\n"...)
	}
	if p.SingleOnion {
		b = append(b, "single-onion-service\n"...)
	}
	if len(p.FlowControl) > 0 {
		b = append(b, "flow-control "+strings.Join(p.FlowControl, " ")+"\n"...)
	}
	if p.PoW != nil {
		b = p.PoW.append(b)
	}
	signer, err := keys.FromPrivateKey(p.SigningKey)
	if err != nil {
		return nil, err
	}
	for i := range p.IntroPoints {
		ip := &p.IntroPoints[i]
		ls, err := hscell.AppendLinkSpecs(nil, ip.LinkSpecs)
		if err != nil {
			return nil, errfmt.Errorf("introduction point %d: %w", i, err)
		}
		if len(ip.AuthKey) != ed25519.PublicKeySize {
			return nil, errfmt.Errorf("introduction point %d: auth key is %d bytes", i, len(ip.AuthKey))
		}
		edEnc, err := Curve25519ToEd25519(ip.EncKey)
		if err != nil {
			return nil, errfmt.Errorf("introduction point %d: %w", i, err)
		}
		authCert := signer.Cert(certTemplate(cert.TypeHSIntroAuth, expire, [32]byte(ip.AuthKey)))
		encCert := signer.Cert(certTemplate(cert.TypeHSIntroEncrypted, expire, edEnc))
		b64 := base64.StdEncoding.EncodeToString
		b = append(b, "introduction-point "+b64(ls)+"\nonion-key ntor "+b64(ip.OnionKey[:])+"\nauth-key\n"...)
		b = writeObject(b, "ED25519 CERT", authCert)
		b = append(b, "enc-key ntor "+b64(ip.EncKey[:])+"\nenc-key-cert\n"...)
		b = writeObject(b, "ED25519 CERT", encCert)
	}
	return b, nil
}

// writeObject appends a PEM-like object with 64-column base64 to b, as C
// tor writes them.
func writeObject(b []byte, typ string, data []byte) []byte {
	b = append(b, "-----BEGIN "+typ+"-----\n"...)
	s := base64.StdEncoding.EncodeToString(data)
	for len(s) > 64 {
		b = append(append(b, s[:64]...), '\n')
		s = s[64:]
	}
	if s != "" {
		b = append(append(b, s...), '\n')
	}
	return append(b, "-----END "+typ+"-----\n"...)
}

// shuffle permutes clients uniformly (Fisher-Yates) with randomness from r.
func shuffle(r io.Reader, clients []AuthClient) error {
	for i := len(clients) - 1; i > 0; i-- {
		j, err := uniform(r, uint64(i+1))
		if err != nil {
			return err
		}
		clients[i], clients[j] = clients[j], clients[i]
	}
	return nil
}

func uniform(r io.Reader, n uint64) (uint64, error) {
	limit := ^uint64(0) - ^uint64(0)%n
	var b [8]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, err
		}
		if v := binary.BigEndian.Uint64(b[:]); v < limit {
			return v % n, nil
		}
	}
}

// Curve25519ToEd25519 converts a curve25519 public key u to the ed25519
// public key with y = (u-1)/(u+1) and sign bit 0 (proposal 228 appendix A,
// as C tor certifies enc-keys).
func Curve25519ToEd25519(u [32]byte) ([32]byte, error) {
	var out [32]byte
	x, err := new(field.Element).SetBytes(u[:])
	if err != nil {
		return out, err
	}
	one := new(field.Element).One()
	num := new(field.Element).Subtract(x, one)
	den := new(field.Element).Add(x, one)
	if den.Equal(new(field.Element).Zero()) == 1 {
		return out, errors.New("curve25519 key u = -1 has no ed25519 equivalent")
	}
	y := new(field.Element).Multiply(num, new(field.Element).Invert(den))
	copy(out[:], y.Bytes())
	out[31] &^= 0x80
	return out, nil
}
