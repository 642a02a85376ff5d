# Included by ../Makefile and ../buildroot/package/tinytor/tinytor.mk.
#
# Code that runs rarely (configuration, the control port, directory and guard
# bookkeeping, onion-service handshakes, the board layer, main) is compiled
# without inlining: about 330 KB less flash on mipsle. The per-cell path
# (tor/cell, link, circuit, relaycrypto, chanmgr, socks, tor/dir's parsers,
# crypto, runtime) keeps it. A later -gcflags (the Makefile's CROSS_GCFLAGS) wins.
COLD_PKGS := tinytor tinytor/board/... tinytor/onion/... \
	tinytor/tor/config tinytor/tor/control tinytor/tor/ctlbackend \
	tinytor/tor/dirmgr tinytor/tor/metrics tinytor/tor/clientmetrics \
	tinytor/tor/policy tinytor/tor/addrmap tinytor/tor/cstring \
	tinytor/tor/guard tinytor/tor/path tinytor/tor/cert \
	tinytor/tor/bootstrap tinytor/tor/torlog tinytor/tor/netlisten \
	tinytor/tor/circmgr tinytor/socks/dnsport tinytor/socks/httptunnel \
	tinytor/socks/transparent github.com/spf13/pflag \
	crypto/x509 encoding/asn1 net/url fmt math/big
