package desc

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
)

// PoWTypeV1 is the only proof-of-work type of the "pow-params" line
// (proposal 327): Equi-X over a v1 challenge (see onion/pow).
const PoWTypeV1 = "v1"

// PoWParams is a "pow-params v1" line of the second layer:
//
//	pow-params v1 <seed-b64> <suggested-effort> <expiration-time>
type PoWParams struct {
	// Seed is the service's current 32-byte puzzle seed.
	Seed [32]byte
	// SuggestedEffort is the effort the service asks clients to solve
	// at; 0 means no proof of work is needed now.
	SuggestedEffort uint32
	// Expires is when the seed and suggested effort stop being valid (a
	// client with a cached descriptor past it fetches a new one).
	Expires time.Time
}

// Expired reports whether p is no longer valid at now (C tor:
// expiration_time < now).
func (p *PoWParams) Expired(now time.Time) bool {
	return p.Expires.Before(now.Truncate(time.Second))
}

// append writes p as C tor does: "pow-params v1 <seed, base64 without
// padding> <effort> <expiration, YYYY-MM-DDTHH:MM:SS UTC>".
func (p *PoWParams) append(b []byte) []byte {
	b = append(b, "pow-params "+PoWTypeV1+" "...)
	b = base64.RawStdEncoding.AppendEncode(b, p.Seed[:])
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(p.SuggestedEffort), 10)
	b = append(b, ' ')
	b = p.Expires.UTC().AppendFormat(b, "2006-01-02T15:04:05")
	return append(b, '\n')
}

// parsePoWParams reads one "pow-params" line into *v1, as C tor 0.4.9's
// decode_pow_params: the line may appear any number of times, lines of
// types other than "v1" are ignored, and a second v1 line, a v1 line with
// fewer than 4 arguments, a seed that is not 32 base64 bytes, an effort
// that is not a 32-bit decimal number and a malformed expiration time
// (ISO time without a space, "2006-01-02T15:04:05", UTC) are errors that
// invalidate the descriptor.
func parsePoWParams(t *netdoc.Tokenizer, it *netdoc.Item, v1 **PoWParams) error {
	if len(it.Args) < 1 {
		return t.Errorf(it, "want at least 1 argument")
	}
	if string(it.Args[0]) != PoWTypeV1 {
		return nil
	}
	if *v1 != nil {
		return t.Errorf(it, "duplicate v1 proof-of-work entries")
	}
	if len(it.Args) < 4 {
		return t.Errorf(it, "insufficient arguments for a v1 proof-of-work entry: %d, want 4", len(it.Args))
	}
	p := &PoWParams{}
	seed, err := decodeSeed(string(it.Args[1]))
	if err != nil {
		return t.Errorf(it, "unparseable seed %q: %w", it.Args[1], err)
	}
	p.Seed = seed
	e, err := parseDecimal32(string(it.Args[2]))
	if err != nil {
		return t.Errorf(it, "unparseable suggested effort %q: %w", it.Args[2], err)
	}
	p.SuggestedEffort = e
	exp, err := time.Parse("2006-01-02T15:04:05", string(it.Args[3]))
	if err != nil {
		return t.Errorf(it, "unparseable expiration time %q: %w", it.Args[3], err)
	}
	p.Expires = exp.UTC()
	*v1 = p
	return nil
}

// decodeSeed decodes a base64 seed of exactly 32 bytes, with or without
// its "=" padding (C tor's base64_decode takes both).
func decodeSeed(s string) ([32]byte, error) {
	var seed [32]byte
	raw := strings.TrimRight(s, "=")
	if len(s)-len(raw) > 2 {
		return seed, errors.New("too much padding")
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil {
		return seed, err
	}
	if len(b) != len(seed) {
		return seed, errfmt.Errorf("%d bytes, want %d", len(b), len(seed))
	}
	copy(seed[:], b)
	return seed, nil
}

// parseDecimal32 parses a decimal number of at most 2^32-1 as C tor's
// tor_parse_ulong(s, 10, 0, UINT32_MAX) does through strtoul: an optional
// sign, then digits only; "-0" is 0 and other negative numbers wrap
// around, so they are out of range.
func parseDecimal32(s string) (uint32, error) {
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, errors.New("not a decimal number")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if neg && n != 0 || n > math.MaxUint32 {
		return 0, errors.New("out of range")
	}
	return uint32(n), nil
}
