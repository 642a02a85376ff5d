package link

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"

	"tinytor/tor/cert"
	"tinytor/tor/errfmt"
)

// CertsMsg is a parsed CERTS cell (tor-spec 4.2): the encoded certificates
// by type. Each type appears at most once.
type CertsMsg map[cert.Type][]byte

// ParseCerts parses the payload of a CERTS cell. A certificate type given
// twice is an error (tor-spec 4.2: "no more than one certificate of each
// CertType"); extra bytes at the end are ignored as the spec requires.
// The certificates alias p.
func ParseCerts(p []byte) (CertsMsg, error) {
	if len(p) < 1 {
		return nil, errfmt.Errorf("CERTS cell is empty: %w", ErrBadCerts)
	}
	n := int(p[0])
	off := 1
	m := make(CertsMsg, n)
	for i := range n {
		if len(p)-off < 3 {
			return nil, errfmt.Errorf("CERTS cell certificate %d of %d at offset %d: header truncated: %w", i+1, n, off, ErrBadCerts)
		}
		t := cert.Type(p[off])
		l := int(binary.BigEndian.Uint16(p[off+1:]))
		off += 3
		if len(p)-off < l {
			return nil, errfmt.Errorf("CERTS cell certificate %d of %d (%s) at offset %d: %d bytes announced, %d left: %w", i+1, n, t, off-3, l, len(p)-off, ErrBadCerts)
		}
		if _, dup := m[t]; dup {
			return nil, errfmt.Errorf("CERTS cell has two certificates of type %d (%s): %w", uint8(t), t, ErrBadCerts)
		}
		m[t] = p[off : off+l]
		off += l
	}
	return m, nil
}

// AppendTo appends the encoding of m to b, certificates in increasing type
// order.
func (m CertsMsg) AppendTo(b []byte) []byte {
	b = append(b, byte(len(m)))
	for t := range 256 {
		c, ok := m[cert.Type(t)]
		if !ok {
			continue
		}
		b = append(b, byte(t))
		b = binary.BigEndian.AppendUint16(b, uint16(len(c)))
		b = append(b, c...)
	}
	return b
}

// VerifyResponder checks the CERTS cell of a relay that we connected to,
// as tor-spec 4.2 requires of an initiator that authenticates the responder
// as having an Ed25519,RSA identity key combination, and returns the
// identity it proves. tlsCert is the DER certificate that authenticated the
// TLS connection.
func VerifyResponder(m CertsMsg, tlsCert []byte, now time.Time) (Identity, error) {
	var id Identity
	need := func(t cert.Type) ([]byte, error) {
		b, ok := m[t]
		if !ok {
			return nil, errfmt.Errorf("no %s certificate (type %d): %w", t, uint8(t), ErrBadCerts)
		}
		return b, nil
	}
	rsaDER, err := need(cert.TypeRSAIdentity)
	if err != nil {
		return id, err
	}
	idSignDER, err := need(cert.TypeIdentitySigning)
	if err != nil {
		return id, err
	}
	signLinkDER, err := need(cert.TypeSigningLink)
	if err != nil {
		return id, err
	}
	crossDER, err := need(cert.TypeRSACrossCert)
	if err != nil {
		return id, err
	}

	// The certified key in the ID certificate is a 1024-bit RSA key, and
	// the certificate is correctly self-signed and not expired.
	rsaID, err := cert.ParseRSAIdentity(rsaDER)
	if err != nil {
		return id, errfmt.Errorf("%w: %w", ErrBadCerts, err)
	}
	if err := rsaID.Check(now); err != nil && !errors.Is(err, cert.ErrNotYetValid) {
		// A certificate that is "not yet valid" is accepted: a router
		// without a real-time clock may think it is 1970 until NETINFO
		// and the consensus tell it the time, and the start of the
		// identity certificate's lifetime protects nothing (the identity
		// is pinned by fingerprint; the Ed25519 certificates only expire).
		return id, errfmt.Errorf("%w: %w", ErrBadCerts, err)
	}

	// The identity key listed in the ID->Signing cert was used to sign it.
	idSign, err := cert.ParseEd25519(idSignDER)
	if err != nil {
		return id, errfmt.Errorf("%w: identity->signing: %w", ErrBadCerts, err)
	}
	if idSign.Type != cert.TypeIdentitySigning {
		return id, errfmt.Errorf("identity->signing certificate has type %s: %w", idSign.Type, ErrBadCerts)
	}
	if idSign.KeyType != cert.KeyEd25519 {
		return id, errfmt.Errorf("identity->signing certificate certifies key type %d, want Ed25519: %w", idSign.KeyType, ErrBadCerts)
	}
	if idSign.SignedWithKey == nil {
		return id, errfmt.Errorf("identity->signing certificate does not name the identity key: %w", ErrBadCerts)
	}
	if err := idSign.Check(nil, now); err != nil {
		return id, errfmt.Errorf("%w: %w", ErrBadCerts, err)
	}
	edID := idSign.SignedWithKey

	// The Signing->Link cert was signed with the signing key listed in the
	// ID->Signing cert, and certifies the SHA-256 of the TLS certificate.
	signLink, err := cert.ParseEd25519(signLinkDER)
	if err != nil {
		return id, errfmt.Errorf("%w: signing->link: %w", ErrBadCerts, err)
	}
	if signLink.Type != cert.TypeSigningLink {
		return id, errfmt.Errorf("signing->link certificate has type %s: %w", signLink.Type, ErrBadCerts)
	}
	// cert-spec A.4: tor before 0.4.5.1-alpha wrote 01 here; accept it.
	if signLink.KeyType != cert.KeySHA256OfX509 && signLink.KeyType != cert.KeyEd25519 {
		return id, errfmt.Errorf("signing->link certificate certifies key type %d, want SHA-256 of X.509: %w", signLink.KeyType, ErrBadCerts)
	}
	if err := signLink.Check(idSign.CertifiedEd25519(), now); err != nil {
		return id, errfmt.Errorf("%w: %w", ErrBadCerts, err)
	}
	if sha256.Sum256(tlsCert) != signLink.CertifiedKey {
		return id, errfmt.Errorf("signing->link certificate does not certify the TLS certificate: %w", ErrBadCerts)
	}

	// The RSA->Ed25519 cross-certificate certifies the Ed25519 identity and
	// is signed with the RSA identity key of the ID certificate.
	cross, err := cert.ParseCrossCert(crossDER)
	if err != nil {
		return id, errfmt.Errorf("%w: %w", ErrBadCerts, err)
	}
	if !ed25519.PublicKey(cross.Ed25519Key[:]).Equal(edID) {
		return id, errfmt.Errorf("RSA->Ed25519 cross-certificate certifies another Ed25519 key than the identity->signing certificate: %w", ErrBadCerts)
	}
	if err := cross.Check(rsaID.Key, now); err != nil {
		return id, errfmt.Errorf("%w: %w", ErrBadCerts, err)
	}

	id.RSA = rsaID.Fingerprint
	id.Ed25519 = [32]byte(edID)
	return id, nil
}
