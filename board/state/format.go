package state

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
)

// trailerMagic starts the last line of every checksummed state file.
//
// The on-flash format of a checksummed file is
//
//	payload || "\n" || "#tinytor-state v1 len=" || decimal(len(payload)) ||
//	" sha256=" || lowercase-hex(SHA-256(payload)) || "\n"
//
// The separator newline is always written, even if the payload ends with one
// or is empty, so the payload is recovered exactly. A file cut short anywhere
// loses (part of) its trailer; a file whose blocks were reordered or zeroed
// fails the length or hash check. Either way it is reported as ErrCorrupt.
const trailerMagic = "#tinytor-state v1 len="

// encode returns payload with its checksum trailer.
func encode(payload []byte) []byte {
	sum := sha256.Sum256(payload)
	out := make([]byte, 0, len(payload)+len(trailerMagic)+96)
	out = append(out, payload...)
	out = append(out, '\n')
	out = append(out, trailerMagic...)
	out = strconv.AppendInt(out, int64(len(payload)), 10)
	out = append(out, " sha256="...)
	out = hex.AppendEncode(out, sum[:])
	out = append(out, '\n')
	return out
}

// decode checks the trailer of a checksummed file and returns its payload
// (aliasing file). The error says what is wrong and where.
func decode(file []byte) ([]byte, error) {
	if len(file) == 0 {
		return nil, fmt.Errorf("empty file (no checksum trailer)")
	}
	if file[len(file)-1] != '\n' {
		return nil, fmt.Errorf("file of %d bytes does not end with a newline: trailer missing or cut short", len(file))
	}
	body := file[:len(file)-1]
	nl := bytes.LastIndexByte(body, '\n')
	if nl < 0 {
		return nil, fmt.Errorf("no checksum trailer line in %d bytes", len(file))
	}
	line := body[nl+1:]
	payload := body[:nl]
	rest, ok := bytes.CutPrefix(line, []byte(trailerMagic))
	if !ok {
		return nil, fmt.Errorf("last line at offset %d is not a %q trailer", nl+1, trailerMagic)
	}
	lenField, sumField, ok := bytes.Cut(rest, []byte(" sha256="))
	if !ok {
		return nil, fmt.Errorf("trailer at offset %d has no sha256 field", nl+1)
	}
	n, err := strconv.ParseUint(string(lenField), 10, 63)
	if err != nil || (len(lenField) > 1 && lenField[0] == '0') {
		return nil, fmt.Errorf("trailer at offset %d: bad length %q", nl+1, lenField)
	}
	if n != uint64(len(payload)) {
		return nil, fmt.Errorf("trailer says %d payload bytes, file has %d", n, len(payload))
	}
	if len(sumField) != 2*sha256.Size {
		return nil, fmt.Errorf("trailer at offset %d: sha256 field is %d characters, want %d", nl+1, len(sumField), 2*sha256.Size)
	}
	for i, c := range sumField {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, fmt.Errorf("trailer at offset %d: bad sha256 hex: character %q at %d (want lowercase hex)", nl+1, c, i)
		}
	}
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], sumField); err != nil {
		return nil, fmt.Errorf("trailer at offset %d: bad sha256 hex: %v", nl+1, err)
	}
	if sha256.Sum256(payload) != want {
		return nil, fmt.Errorf("SHA-256 of the %d payload bytes does not match the trailer", len(payload))
	}
	return payload, nil
}

func randRead(b []byte) (int, error) { return rand.Read(b) }

func hexString(b []byte) string { return hex.EncodeToString(b) }
