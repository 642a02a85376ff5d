package client

import (
	"strconv"

	"tinytor/tor/errfmt"
)

// Kind says why a connection to an onion service failed, in the terms
// of proposal 304's SOCKS5 extended error codes, so that the SOCKS layer
// can answer with the matching code.
type Kind uint8

// The failure kinds (proposal 304, socks-extensions "Extended error
// codes" X'F0' to X'F7').
const (
	// DescNotFound: no responsible HSDir had the descriptor (F0).
	DescNotFound Kind = iota + 1
	// DescInvalid: the descriptor did not parse, verify or decrypt (F1).
	DescInvalid
	// IntroFailed: every introduction point refused or failed (F2).
	IntroFailed
	// RendFailed: the rendezvous circuit failed (F3).
	RendFailed
	// MissingClientAuth: the service requires client authorization and
	// we have no key for it (F4).
	MissingClientAuth
	// BadClientAuth: our client authorization key is not accepted (F5).
	BadClientAuth
	// BadAddress: the address is not a valid v3 onion address (F6).
	BadAddress
	// IntroTimeout: the introduction (or the service's answer to it)
	// timed out (F7).
	IntroTimeout
)

var kindNames = [...]string{
	DescNotFound:      "descriptor not found",
	DescInvalid:       "invalid descriptor",
	IntroFailed:       "introduction failed",
	RendFailed:        "rendezvous failed",
	MissingClientAuth: "missing client authorization",
	BadClientAuth:     "bad client authorization",
	BadAddress:        "bad onion address",
	IntroTimeout:      "introduction timed out",
}

// String names k.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "onion error kind " + strconv.Itoa(int(k))
}

// Error is a failure to reach an onion service.
type Error struct {
	Kind Kind
	// Addr is the service's address (for the caller; not in Error()).
	Addr string
	Err  error
}

// Error formats the failure and its cause. It leaves the address out,
// as SafeLogging would scrub it from logs.
func (e *Error) Error() string {
	s := "onion service: " + e.Kind.String()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func errorf(k Kind, addr string, format string, args ...any) *Error {
	return &Error{Kind: k, Addr: addr, Err: errfmt.Errorf(format, args...)}
}
