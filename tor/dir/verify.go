package dir

import (
	"errors"
	"strconv"
	"time"
)

// Reasons a consensus signature does not count (use errors.Is on
// SignatureError).
var (
	ErrUnknownAuthority = errors.New("signer is not a configured authority")
	ErrUnknownAlgorithm = errors.New("unrecognized digest algorithm")
	ErrMissingCert      = errors.New("no certificate for the signing key")
	ErrBadCert          = errors.New("certificate for the signing key is invalid")
	ErrBadSignature     = errors.New("signature does not verify")
)

// SignatureError explains why one directory-signature does not count.
type SignatureError struct {
	Authority        [20]byte
	SigningKeyDigest [20]byte
	Algorithm        string
	Err              error
}

func (e *SignatureError) Error() string {
	return "consensus signature (" + e.Algorithm + ") from " + string(hexID(e.Authority[:])) +
		" with signing key " + string(hexID(e.SigningKeyDigest[:])) + " invalid: " + e.Err.Error()
}

func (e *SignatureError) Unwrap() error { return e.Err }

// kindError is err classified as kind, a sentinel error for errors.Is:
// "kind: err".
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.kind.Error() + ": " + e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// CertID names an authority certificate: its identity and signing key.
type CertID struct {
	Identity         [20]byte
	SigningKeyDigest [20]byte
}

// SignatureReport is the outcome of checking a consensus's signatures.
type SignatureReport struct {
	// Signed lists the configured authorities with at least one valid
	// signature.
	Signed [][20]byte
	// Required is how many authorities must sign: more than half.
	Required int
	// MissingCerts names the certificates to fetch: those of configured
	// authorities whose signatures could not be checked for lack of a
	// (valid) certificate.
	MissingCerts []CertID
	// Problems lists every signature that did not count, and why.
	Problems []*SignatureError
}

// OK reports whether enough authorities signed.
func (r *SignatureReport) OK() bool { return len(r.Signed) >= r.Required }

// NotEnoughSignaturesError is returned by Verify when fewer than the
// required number of configured authorities signed validly.
type NotEnoughSignaturesError struct {
	Report *SignatureReport
}

func (e *NotEnoughSignaturesError) Error() string {
	msg := "consensus has " + strconv.Itoa(len(e.Report.Signed)) + " valid authority signatures, needs " + strconv.Itoa(e.Report.Required)
	if n := len(e.Report.MissingCerts); n > 0 {
		msg += " (" + strconv.Itoa(n) + " certificates missing)"
	}
	for _, p := range e.Report.Problems {
		msg += "; " + p.Error()
	}
	return msg
}

// Unwrap returns the individual signature problems.
func (e *NotEnoughSignaturesError) Unwrap() []error {
	out := make([]error, len(e.Report.Problems))
	for i, p := range e.Report.Problems {
		out[i] = p
	}
	return out
}

// CheckSignatures checks every directory-signature against the
// certificates (matched by identity and signing-key digest; each
// certificate must itself verify at now). Only signatures by the
// configured authorities (v3ident fingerprints) count, each authority once.
func (c *Consensus) CheckSignatures(certs []*AuthCert, authorities [][20]byte, now time.Time) *SignatureReport {
	rep := &SignatureReport{Required: len(authorities)/2 + 1}
	signed := map[[20]byte]bool{}
	missing := map[CertID]bool{}
	for i := range c.Signatures {
		s := &c.Signatures[i]
		if err := c.checkSignature(s, certs, authorities, now, rep, signed, missing); err != nil {
			rep.Problems = append(rep.Problems, &SignatureError{Authority: s.Identity,
				SigningKeyDigest: s.SigningKeyDigest, Algorithm: s.Algorithm, Err: err})
		}
	}
	// A certificate found later for an authority that also signed validly
	// is not needed.
	kept := rep.MissingCerts[:0]
	for _, m := range rep.MissingCerts {
		if !signed[m.Identity] {
			kept = append(kept, m)
		}
	}
	rep.MissingCerts = kept
	return rep
}

// checkSignature checks one signature for CheckSignatures, adding to rep
// and to the sets of authorities that signed and of certificates missing,
// and returns why it does not count, if it does not.
func (c *Consensus) checkSignature(s *Signature, certs []*AuthCert, authorities [][20]byte, now time.Time,
	rep *SignatureReport, signed map[[20]byte]bool, missing map[CertID]bool) error {
	configured := false
	for _, a := range authorities {
		configured = configured || a == s.Identity
	}
	if !configured {
		return ErrUnknownAuthority
	}
	var digest []byte
	switch s.Algorithm {
	case "sha1":
		digest = c.digestSHA1[:]
	case "sha256":
		digest = c.digestSHA256[:]
	default:
		return ErrUnknownAlgorithm
	}
	if signed[s.Identity] {
		return nil
	}
	var certErr error
	for _, cert := range certs {
		if cert.Fingerprint != s.Identity || cert.SigningKeyDigest != s.SigningKeyDigest {
			continue
		}
		if err := cert.Verify(now); err != nil {
			certErr = err
			continue
		}
		if err := verifyRaw(cert.SigningKey, digest, s.Signature); err != nil {
			return &kindError{ErrBadSignature, err}
		}
		signed[s.Identity] = true
		rep.Signed = append(rep.Signed, s.Identity)
		return nil
	}
	id := CertID{s.Identity, s.SigningKeyDigest}
	if !missing[id] {
		missing[id] = true
		rep.MissingCerts = append(rep.MissingCerts, id)
	}
	if certErr != nil {
		return &kindError{ErrBadCert, certErr}
	}
	return ErrMissingCert
}

// Verify checks that more than half of the configured authorities signed
// the consensus (see CheckSignatures). It returns nil or a
// *NotEnoughSignaturesError carrying the full report.
func (c *Consensus) Verify(certs []*AuthCert, authorities [][20]byte, now time.Time) error {
	rep := c.CheckSignatures(certs, authorities, now)
	if !rep.OK() {
		return &NotEnoughSignaturesError{Report: rep}
	}
	return nil
}
