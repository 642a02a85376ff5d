package state

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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

// formatError says what is wrong with a checksummed file.
type formatError struct {
	off int    // offset of the trailer line, or -1 if the file has none
	msg string // what is wrong
}

func (e *formatError) Error() string {
	if e.off < 0 {
		return e.msg
	}
	return "trailer at offset " + strconv.Itoa(e.off) + ": " + e.msg
}

// decode checks the trailer of a checksummed file and returns its payload
// (aliasing file). The error says what is wrong and where.
func decode(file []byte) ([]byte, error) {
	size := strconv.Itoa(len(file))
	if len(file) == 0 {
		return nil, &formatError{-1, "empty file (no checksum trailer)"}
	}
	if file[len(file)-1] != '\n' {
		return nil, &formatError{-1, "file of " + size + " bytes does not end with a newline: trailer missing or cut short"}
	}
	body := file[:len(file)-1]
	nl := bytes.LastIndexByte(body, '\n')
	if nl < 0 {
		return nil, &formatError{-1, "no checksum trailer line in " + size + " bytes"}
	}
	line := body[nl+1:]
	payload := body[:nl]
	bad := &formatError{off: nl + 1}
	rest, ok := bytes.CutPrefix(line, []byte(trailerMagic))
	lenField, sumField, hasSum := bytes.Cut(rest, []byte(" sha256="))
	n, err := strconv.ParseUint(string(lenField), 10, 63)
	switch {
	case !ok:
		bad.msg = "last line is not a " + strconv.Quote(trailerMagic) + " trailer"
	case !hasSum:
		bad.msg = "no sha256 field"
	case err != nil || (len(lenField) > 1 && lenField[0] == '0'):
		bad.msg = "bad length " + strconv.Quote(string(lenField))
	case n != uint64(len(payload)):
		bad.off, bad.msg = -1, "trailer says "+string(lenField)+" payload bytes, file has "+strconv.Itoa(len(payload))
	case len(sumField) != 2*sha256.Size:
		bad.msg = "sha256 field is " + strconv.Itoa(len(sumField)) + " characters, want 64"
	}
	for i, c := range sumField {
		if bad.msg == "" && !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			bad.msg = "bad sha256 hex: character " + strconv.QuoteRune(rune(c)) + " at " + strconv.Itoa(i) + " (want lowercase hex)"
		}
	}
	if bad.msg != "" {
		return nil, bad
	}
	var want [sha256.Size]byte
	hex.Decode(want[:], sumField) // valid: checked above
	if sha256.Sum256(payload) != want {
		return nil, &formatError{-1, "SHA-256 of the " + strconv.Itoa(len(payload)) + " payload bytes does not match the trailer"}
	}
	return payload, nil
}

func randRead(b []byte) (int, error) { return rand.Read(b) }

func hexString(b []byte) string { return hex.EncodeToString(b) }
