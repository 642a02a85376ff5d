//go:build tools

// This file pins the project's only allowed dependencies in go.mod, so that
// `go mod tidy` keeps them while packages are being written. It is never built.
package main

import (
	_ "filippo.io/edwards25519"
	_ "golang.org/x/crypto/curve25519"
	_ "golang.org/x/net/dns/dnsmessage"
	_ "golang.org/x/sys/unix"
)
