package control

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"tinytor/tor/errfmt"
)

// CookieLen is the length of the control authentication cookie.
const CookieLen = 32

// s2kIndicator is the RFC 2440 iteration count byte C tor uses: 0x60 means
// (16 + 0) << (6 + 6) = 65536 bytes hashed.
const s2kIndicator = 0x60

// SafeCookie HMAC keys (control-spec 3.24).
const (
	safeCookieServerKey = "Tor safe cookie authentication server-to-controller hash"
	safeCookieClientKey = "Tor safe cookie authentication controller-to-server hash"
)

// s2kCount returns the number of bytes hashed for an RFC 2440 count byte.
func s2kCount(c byte) int {
	return (16 + int(c&15)) << ((c >> 4) + 6)
}

// s2k computes the RFC 2440 iterated and salted S2K with SHA-1: salt ||
// secret repeated until count bytes have been hashed (at least once).
func s2k(salt []byte, secret []byte, c byte) []byte {
	count := s2kCount(c)
	unit := make([]byte, 0, len(salt)+len(secret))
	unit = append(append(unit, salt...), secret...)
	if count < len(unit) {
		count = len(unit)
	}
	h := sha1.New()
	for count > 0 {
		n := min(count, len(unit))
		h.Write(unit[:n])
		count -= n
	}
	return h.Sum(nil)
}

// HashPassword returns password hashed as C tor's `tor --hash-password`
// does: "16:" followed by upper-case hex of salt(8) || 0x60 || SHA-1 S2K
// digest(20). salt must be 8 bytes; pass nil for a random salt.
func HashPassword(password string, salt []byte) (string, error) {
	if salt == nil {
		salt = make([]byte, 8)
		if _, err := rand.Read(salt); err != nil {
			return "", errfmt.Errorf("hash password: reading random salt: %w", err)
		}
	}
	if len(salt) != 8 {
		return "", errors.New("hash password: salt is " + strconv.Itoa(len(salt)) + " bytes, want 8")
	}
	spec := append(append([]byte{}, salt...), s2kIndicator)
	sum := s2k(salt, []byte(password), s2kIndicator)
	return "16:" + strings.ToUpper(hex.EncodeToString(append(spec, sum...))), nil
}

// decodeHashedPassword decodes a HashedControlPassword value ("16:" + hex,
// or base64 as C tor also accepts) into its 29 bytes.
func decodeHashedPassword(h string) ([]byte, error) {
	var raw []byte
	var err error
	why := "neither 16:hex nor base64"
	if rest, ok := strings.CutPrefix(h, "16:"); ok {
		raw, err = hex.DecodeString(rest)
		if err != nil {
			why = "bad hex: " + err.Error()
		}
	} else if raw, err = base64.StdEncoding.DecodeString(h); err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(h)
	}
	if err == nil {
		if len(raw) == 8+1+sha1.Size {
			return raw, nil
		}
		why = "decodes to " + strconv.Itoa(len(raw)) + " bytes, want 29"
	}
	return nil, errors.New("hashed password " + strconv.Quote(h) + ": " + why)
}

// ValidateHashedPassword reports whether h is a well-formed
// HashedControlPassword value.
func ValidateHashedPassword(h string) error {
	_, err := decodeHashedPassword(h)
	return err
}

// CheckPassword reports whether password matches the hashed value h (as
// produced by HashPassword or `tor --hash-password`). The comparison is
// constant-time.
func CheckPassword(password []byte, h string) (bool, error) {
	raw, err := decodeHashedPassword(h)
	if err != nil {
		return false, err
	}
	sum := s2k(raw[:8], password, raw[8])
	return subtle.ConstantTimeCompare(sum, raw[9:]) == 1, nil
}

// WriteFunc writes data to path with the given permissions, replacing any
// old file. The board's flash-aware store can be plugged in here.
type WriteFunc func(path string, data []byte, perm os.FileMode) error

// WriteFileAtomic is a WriteFunc for ordinary files: it writes a temporary
// file in the same directory, syncs it and renames it over path.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return errfmt.Errorf("write %s: %w", path, err)
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return errfmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// NewCookie makes a fresh 32-byte authentication cookie and stores it at
// path with mode 0600 through write (WriteFileAtomic if nil). As in C tor,
// the file holds the raw bytes with no header.
func NewCookie(path string, write WriteFunc) ([]byte, error) {
	if write == nil {
		write = WriteFileAtomic
	}
	c := make([]byte, CookieLen)
	if _, err := rand.Read(c); err != nil {
		return nil, errfmt.Errorf("control cookie: reading random bytes: %w", err)
	}
	if err := write(path, c, 0o600); err != nil {
		return nil, errfmt.Errorf("control cookie: %w", err)
	}
	return c, nil
}

// SafeCookieHashes computes the AUTHCHALLENGE SAFECOOKIE values: the
// server hash sent to the controller and the client hash it must send back
// in AUTHENTICATE. Both are HMAC-SHA256 over cookie || clientNonce ||
// serverNonce with the two constant keys of control-spec 3.24.
func SafeCookieHashes(cookie, clientNonce, serverNonce []byte) (serverHash, clientHash []byte) {
	msg := make([]byte, 0, len(cookie)+len(clientNonce)+len(serverNonce))
	msg = append(append(append(msg, cookie...), clientNonce...), serverNonce...)
	m := hmac.New(sha256.New, []byte(safeCookieServerKey))
	m.Write(msg)
	serverHash = m.Sum(nil)
	m = hmac.New(sha256.New, []byte(safeCookieClientKey))
	m.Write(msg)
	clientHash = m.Sum(nil)
	return serverHash, clientHash
}

// AuthConfig says how controllers authenticate.
type AuthConfig struct {
	// Cookie, when non-nil, enables COOKIE and SAFECOOKIE authentication
	// with this 32-byte value (see NewCookie).
	Cookie []byte
	// CookieFile is the absolute path announced in PROTOCOLINFO.
	CookieFile string
	// HashedPasswords are HashedControlPassword values ("16:...").
	HashedPasswords []string
	// AllowNull permits unauthenticated access when neither cookie nor
	// password is configured. Without it such a configuration is refused.
	AllowNull bool
}

// validate checks the configuration and decodes the passwords.
func (a *AuthConfig) validate() error {
	if a.Cookie != nil && len(a.Cookie) != CookieLen {
		return errors.New("control auth: cookie is " + strconv.Itoa(len(a.Cookie)) + " bytes, want 32")
	}
	if a.Cookie != nil && a.CookieFile == "" {
		return errors.New("control auth: cookie authentication needs the cookie file path")
	}
	for _, h := range a.HashedPasswords {
		if err := ValidateHashedPassword(h); err != nil {
			return errfmt.Errorf("control auth: HashedControlPassword: %w", err)
		}
	}
	if a.Cookie == nil && len(a.HashedPasswords) == 0 && !a.AllowNull {
		return errors.New("control auth: no authentication method configured (set a cookie or HashedControlPassword, or allow null authentication explicitly)")
	}
	return nil
}

func (a *AuthConfig) null() bool { return a.Cookie == nil && len(a.HashedPasswords) == 0 }

// methods returns the PROTOCOLINFO METHODS list in C tor's order.
func (a *AuthConfig) methods() string {
	if a.null() {
		return "NULL"
	}
	var m []string
	if a.Cookie != nil {
		m = append(m, "COOKIE", "SAFECOOKIE")
	}
	if len(a.HashedPasswords) > 0 {
		m = append(m, "HASHEDPASSWORD")
	}
	return strings.Join(m, ",")
}

// check verifies an AUTHENTICATE secret (not a SAFECOOKIE response) the
// way C tor does and returns the text after "Authentication failed: " on
// failure.
func (a *AuthConfig) check(secret []byte, quoted bool) (ok bool, why string) {
	if a.null() {
		return true, ""
	}
	badCookie := false
	if a.Cookie != nil {
		also := len(a.HashedPasswords) > 0
		switch {
		case len(secret) != CookieLen:
			if !also {
				return false, "Wrong length on authentication cookie."
			}
			badCookie = true
		case subtle.ConstantTimeCompare(secret, a.Cookie) != 1:
			if !also {
				return false, "Authentication cookie did not match expected value."
			}
			badCookie = true
		default:
			return true, ""
		}
	}
	for _, h := range a.HashedPasswords {
		if ok, err := CheckPassword(secret, h); err == nil && ok {
			return true, ""
		}
	}
	if badCookie {
		return false, "Password did not match HashedControlPassword *or* authentication cookie."
	}
	if quoted {
		return false, "Password did not match HashedControlPassword value from configuration"
	}
	return false, "Password did not match HashedControlPassword value from configuration. Maybe you tried a plain text password? If so, the standard requires that you put it in double quotes."
}
