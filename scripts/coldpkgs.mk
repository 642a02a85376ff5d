# Included by ../Makefile and ../buildroot/package/tinytor/tinytor.mk.
#
# Code that runs rarely (configuration, the control port, directory and guard
# bookkeeping, handshakes, onion services, the board layer, main) is compiled
# without inlining: about 460 KB less flash on mipsle (tor/dir's parsers
# measured the same CPU time per consensus and per microdescriptor either
# way). The per-cell path (tor/cell, link, circuit, relaycrypto, chanmgr,
# socks, AES/SHA/TLS records, runtime) keeps it; so does HOT_PKGS. A later
# -gcflags (the Makefile's CROSS_GCFLAGS) wins.
COLD_PKGS := tinytor tinytor/board/... tinytor/onion/... \
	tinytor/tor/config tinytor/tor/control tinytor/tor/ctlbackend \
	tinytor/tor/dirmgr tinytor/tor/metrics tinytor/tor/clientmetrics \
	tinytor/tor/policy tinytor/tor/addrmap tinytor/tor/cstring \
	tinytor/tor/guard tinytor/tor/path tinytor/tor/cert \
	tinytor/tor/bootstrap tinytor/tor/torlog tinytor/tor/netlisten \
	tinytor/tor/circmgr tinytor/socks/dnsport tinytor/socks/httptunnel \
	tinytor/socks/transparent tinytor/tor/pt tinytor/tor/netproxy \
	tinytor/tor/bridge tinytor/tor/cbt tinytor/tor/vanguards \
	tinytor/tor/circuit/handshake tinytor/tor/dir tinytor/tor/dir/netdoc \
	crypto/x509 encoding/asn1 net/url fmt math/big \
	crypto/ecdsa crypto/rsa crypto/hpke crypto/internal/fips140/ecdsa \
	crypto/internal/fips140/rsa crypto/internal/fips140/bigmod \
	crypto/internal/fips140/nistec crypto/internal/fips140/nistec/fiat \
	crypto/internal/fips140/mlkem
# Hot code under a cold pattern keeps inlining (the later flag wins): the
# onion-service proof-of-work solver.
HOT_PKGS := tinytor/onion/pow/...
