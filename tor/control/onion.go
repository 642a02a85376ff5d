package control

import (
	"crypto/sha3"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"

	"filippo.io/edwards25519"
)

// OnionPort is one Port=VirtPort[,Target] of ADD_ONION.
type OnionPort struct {
	Virt   uint16
	Target string // "" (same port on 127.0.0.1), a port, addr:port or unix:path
}

// AddOnionRequest is a parsed ADD_ONION command (control-spec 3.27).
type AddOnionRequest struct {
	// NewKey asks the backend to generate an ED25519-V3 key (NEW:BEST or
	// NEW:ED25519-V3); otherwise PrivateKey holds the 64-byte expanded key
	// (secret scalar || PRF secret) given as ED25519-V3:<base64>.
	NewKey     bool
	PrivateKey []byte

	DiscardPK              bool
	Detach                 bool
	V3Auth                 bool
	NonAnonymous           bool
	MaxStreamsCloseCircuit bool
	MaxStreams             int

	Ports []OnionPort
	// ClientAuthV3 are the authorized clients' x25519 public keys.
	ClientAuthV3 [][32]byte
}

// AddOnionResult is what the backend returns for ADD_ONION.
type AddOnionResult struct {
	ServiceID string // address without ".onion"
	// PrivateKey is the generated 64-byte expanded key; it is sent to the
	// controller only for NewKey requests without DiscardPK.
	PrivateKey []byte
}

// ADD_ONION and ONION_CLIENT_AUTH_ADD replies with fixed texts.
var (
	errAddOnionArgs   = &Error{CodeSyntaxArgs, "Bad arguments to ADD_ONION: Need at least 1 argument(s)"}
	errKeyBlob        = &Error{CodeSyntaxArgs, "Invalid key type/blob"}
	errOnionPort      = &Error{CodeSyntaxArgs, "Invalid VIRTPORT/TARGET"}
	errClientAuthKey  = &Error{CodeSyntaxArgs, "Cannot decode v3 client auth key"}
	errClientAuthV2   = &Error{CodeUnrecognizedArg, "ClientAuth is for v2 onion services, which are not supported; use ClientAuthV3"}
	errMissingPort    = &Error{CodeSyntaxArgs, "Missing 'Port' argument"}
	errED25519Key     = &Error{CodeSyntaxArgs, "Failed to decode ED25519-V3 key"}
	errKeyType        = &Error{CodeUnrecognizedArg, "Invalid key type"}
	errClientAuthArgs = &Error{CodeSyntaxArgs, "Incomplete ONION_CLIENT_AUTH_ADD command"}
	errX25519Key      = &Error{CodeSyntaxArgs, "Failed to decode x25519 private key"}
)

// ParseAddOnion parses the argument text of ADD_ONION with C tor's error
// replies.
func ParseAddOnion(args string) (*AddOnionRequest, error) {
	as, err := ParsePositionalArgs(args, 1)
	if err != nil {
		return nil, argsError("ADD_ONION", err.Error())
	}
	if len(as) == 0 {
		return nil, errAddOnionArgs
	}
	key := as[0]
	if key.HasKey || key.Quoted {
		return nil, errKeyBlob
	}
	req := &AddOnionRequest{}
	for _, a := range as[1:] {
		if !a.HasKey {
			return nil, ErrorWith(CodeSyntaxArgs, "Unexpected argument", a.Value)
		}
		switch strings.ToLower(a.Key) {
		case "port":
			p, ok := parseOnionPort(a.Value)
			if !ok {
				return nil, errOnionPort
			}
			req.Ports = append(req.Ports, p)
		case "flags":
			for _, f := range strings.Split(a.Value, ",") {
				switch strings.ToLower(f) {
				case "discardpk":
					req.DiscardPK = true
				case "detach":
					req.Detach = true
				case "v3auth":
					req.V3Auth = true
				case "nonanonymous":
					req.NonAnonymous = true
				case "maxstreamsclosecircuit":
					req.MaxStreamsCloseCircuit = true
				default:
					return nil, ErrorWith(CodeSyntaxArgs, "Invalid 'Flags' argument:", f)
				}
			}
		case "maxstreams":
			n, err := strconv.Atoi(a.Value)
			if err != nil || n < 0 || n > 65535 {
				return nil, ErrorWith(CodeSyntaxArgs, "Invalid MaxStreams", a.Value)
			}
			req.MaxStreams = n
		case "clientauthv3":
			k, err := decodeBase32Key(a.Value)
			if err != nil {
				return nil, errClientAuthKey
			}
			req.ClientAuthV3 = append(req.ClientAuthV3, k)
		case "clientauth":
			return nil, errClientAuthV2
		default:
			return nil, ErrorWith(CodeUnrecognizedArg, "Unrecognized argument", a.Key)
		}
	}
	if len(req.Ports) == 0 {
		return nil, errMissingPort
	}
	typ, blob, ok := strings.Cut(key.Value, ":")
	if !ok {
		return nil, errKeyBlob
	}
	switch {
	case typ == "NEW" && (blob == "BEST" || blob == "ED25519-V3"):
		req.NewKey = true
	case typ == "ED25519-V3":
		k, err := decodeBase64(blob)
		if err != nil || len(k) != 64 {
			return nil, errED25519Key
		}
		req.PrivateKey = k
	default:
		return nil, errKeyType
	}
	if req.DiscardPK && !req.NewKey {
		req.DiscardPK = false // nothing to discard: only generated keys are returned
	}
	return req, nil
}

// parseOnionPort parses VIRTPORT[,TARGET] of ADD_ONION's Port argument.
func parseOnionPort(s string) (OnionPort, bool) {
	virt, target, comma := strings.Cut(s, ",")
	n, err := strconv.Atoi(virt)
	if err != nil || n < 1 || n > 65535 {
		return OnionPort{}, false
	}
	p := OnionPort{Virt: uint16(n), Target: target}
	switch path, unix := strings.CutPrefix(target, "unix:"); {
	case target == "":
		return p, !comma
	case unix:
		return p, path != ""
	}
	port := target
	if i := strings.LastIndexByte(target, ':'); i >= 0 {
		if i == 0 {
			return OnionPort{}, false
		}
		port = target[i+1:]
	}
	t, err := strconv.Atoi(port)
	return p, err == nil && t >= 1 && t <= 65535
}

func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// errKeyLength is a client auth key that does not decode to 32 bytes.
var errKeyLength = errors.New("key is not 32 bytes")

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func decodeBase32Key(s string) ([32]byte, error) {
	var k [32]byte
	b, err := b32.DecodeString(strings.ToUpper(s))
	if err != nil {
		return k, err
	}
	if len(b) != 32 {
		return k, errKeyLength
	}
	copy(k[:], b)
	return k, nil
}

// ValidOnionV3 reports whether addr (without ".onion") is a well-formed v3
// onion address: 56 base32 characters encoding pubkey(32) || checksum(2) ||
// version(1) with version 3 and checksum = SHA3-256(".onion checksum" ||
// pubkey || version)[:2] (rend-spec-v3 section 6).
func ValidOnionV3(addr string) bool {
	if len(addr) != 56 {
		return false
	}
	raw, err := b32.DecodeString(strings.ToUpper(addr))
	if err != nil || len(raw) != 35 || raw[34] != 3 {
		return false
	}
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(raw[:32])
	h.Write(raw[34:])
	sum := h.Sum(nil)
	return sum[0] == raw[32] && sum[1] == raw[33] && validEd25519Key(raw[:32])
}

// groupOrderMinus1 is l-1 (l the ed25519 group order), little-endian.
var groupOrderMinus1 = []byte{
	0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
}

// validEd25519Key checks a public key as C tor does before accepting an
// onion address: it must decode to a curve point other than the identity,
// and l*P must be the identity (no torsion component).
func validEd25519Key(k []byte) bool {
	p, err := new(edwards25519.Point).SetBytes(k)
	if err != nil {
		return false
	}
	id := edwards25519.NewIdentityPoint()
	if p.Equal(id) == 1 {
		return false
	}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(groupOrderMinus1)
	if err != nil {
		return false
	}
	q := new(edwards25519.Point).ScalarMult(s, p)
	q.Add(q, p)
	return q.Equal(id) == 1
}

// OnionClientCredential is a client-side v3 client authorization entry
// (ONION_CLIENT_AUTH_ADD / _VIEW).
type OnionClientCredential struct {
	Address    string // v3 address without ".onion"
	PrivateKey [32]byte
	ClientName string
	Permanent  bool
}

// ClientAuthAddResult is the outcome of ONION_CLIENT_AUTH_ADD.
type ClientAuthAddResult int

// ONION_CLIENT_AUTH_ADD outcomes (control-spec 3.30).
const (
	ClientAuthAdded     ClientAuthAddResult = iota // 250 OK
	ClientAuthReplaced                             // 251
	ClientAuthDecrypted                            // 252: a cached descriptor could now be decrypted
)

// ParseOnionClientAuthAdd parses the arguments of ONION_CLIENT_AUTH_ADD.
func ParseOnionClientAuthAdd(args string) (*OnionClientCredential, error) {
	as, err := ParsePositionalArgs(args, 2)
	if err != nil {
		return nil, argsError("ONION_CLIENT_AUTH_ADD", err.Error())
	}
	if len(as) < 2 || as[0].HasKey || as[1].HasKey {
		return nil, errClientAuthArgs
	}
	addr := strings.TrimSuffix(as[0].Value, ".onion")
	if !ValidOnionV3(addr) {
		return nil, ErrorWith(CodeSyntaxArgs, "Invalid v3 address", as[0].Value)
	}
	cred := &OnionClientCredential{Address: strings.ToLower(addr)}
	typ, blob, ok := strings.Cut(as[1].Value, ":")
	if !ok || !strings.EqualFold(typ, "x25519") {
		return nil, ErrorWith(CodeUnrecognizedEntity, "Unrecognized key type", typ)
	}
	k, err := decodeBase64(blob)
	if err != nil || len(k) != 32 {
		return nil, errX25519Key
	}
	copy(cred.PrivateKey[:], k)
	for _, a := range as[2:] {
		switch {
		case a.HasKey && strings.EqualFold(a.Key, "ClientName"):
			if !validNickname(a.Value) {
				return nil, ErrorWith(CodeSyntaxArgs, "Invalid nickname", a.Value)
			}
			cred.ClientName = a.Value
		case a.HasKey && strings.EqualFold(a.Key, "Flags"):
			for _, f := range strings.Split(a.Value, ",") {
				if !strings.EqualFold(f, "Permanent") {
					return nil, ErrorWith(CodeSyntaxArgs, "Invalid 'Flags' argument:", f)
				}
				cred.Permanent = true
			}
		default:
			return nil, ErrorWith(CodeSyntaxArgs, "Unrecognized argument", a.Key+a.Value)
		}
	}
	return cred, nil
}

func validNickname(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// formatCredential returns the VIEW line body for c.
func formatCredential(c OnionClientCredential) string {
	s := "CLIENT " + c.Address + " x25519:" + base64.StdEncoding.EncodeToString(c.PrivateKey[:])
	if c.ClientName != "" {
		s += " ClientName=" + c.ClientName
	}
	if c.Permanent {
		s += " Flags=Permanent"
	}
	return s
}
