// Package dnsport is the DNSPort front end: a DNS server for the LAN that
// answers A, AAAA and PTR queries through Tor (RESOLVE and RESOLVE_PTR
// cells at an exit, through a Resolver), over UDP and over TCP (RFC 1035
// section 4.2.2 framing), as C tor's dnsserv.c does over UDP.
//
// As in C tor: the first question of class IN and type A, AAAA or PTR is
// answered (with the question's own spelling of the name); a query with
// none gets NOTIMP and one with no question an empty answer; an exit's
// "not found" is NXDOMAIN, any other failure SERVFAIL; TTLs below 60
// seconds are raised to 60; clients SocksPolicy rejects get REFUSED.
// Answers are cached per isolation key for the exit's TTL clipped as C
// tor's clip_dns_ttl (MinCacheTTL or MaxCacheTTL). Messages are parsed and
// built with golang.org/x/net/dns/dnsmessage. A malformed UDP message is
// dropped; a malformed, truncated or oversized TCP message closes its
// connection; neither disturbs other queries.
//
// The package knows nothing of circuits: a Resolver answers the lookups,
// as socks.Server's Dialer does.
package dnsport

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"tinytor/socks"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/policy"
	"tinytor/tor/torlog"
)

// Resolver answers lookups for the Server. Errors wrapping ErrNotFound
// give NXDOMAIN, others SERVFAIL. Every method must return promptly once
// ctx is done.
type Resolver interface {
	// Resolve looks host up for client; ipv6 says an AAAA record was
	// asked for. ttl is the exit's TTL in seconds; 0 means the answer has
	// none (it is then not cached, as C tor caches only answers from
	// exits).
	Resolve(ctx context.Context, host string, ipv6 bool, client netip.AddrPort, iso socks.IsolationKey) (addrs []netip.Addr, ttl uint32, err error)
	// ResolvePTR looks up the name of addr for client.
	ResolvePTR(ctx context.Context, addr netip.Addr, client netip.AddrPort, iso socks.IsolationKey) (name string, ttl uint32, err error)
}

// ErrNotFound is the error a Resolver wraps when the name does not exist.
var ErrNotFound = errors.New("no such name")

// C tor's TTL rules (connection_edge.h, dnsserv.c).
const (
	// MinAnswerTTL is the least TTL sent to a client (dnsserv_resolved).
	MinAnswerTTL = 60
	// MinCacheTTL and MaxCacheTTL are clip_dns_ttl's two values.
	MinCacheTTL = 5 * 60
	MaxCacheTTL = 60 * 60
)

// ClipTTL is C tor's clip_dns_ttl: how long an exit's answer is cached.
// Only two values are used, against DNS-based traffic confirmation
// ("DefectTor").
func ClipTTL(ttl uint32) uint32 {
	if ttl < MinCacheTTL {
		return MinCacheTTL
	}
	return MaxCacheTTL
}

// Outcome is what became of a query, for the counters.
type Outcome uint8

// Query outcomes.
const (
	Answered   Outcome = iota // answered with records from an exit
	Cached                    // answered from the cache
	NoData                    // the name exists but has no record of the type
	NXDomain                  // no such name
	ServFail                  // the lookup failed
	NotImp                    // no supported question, or an opcode other than QUERY
	Refused                   // the client is not allowed (SocksPolicy)
	Malformed                 // not a DNS query: dropped, or its TCP connection closed
	Overloaded                // too many queries outstanding: SERVFAIL at once
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"answered", "cached", "nodata", "nxdomain", "servfail", "notimp", "refused", "malformed", "overloaded"}

// String is the outcome's metric label.
func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// Outcomes lists every outcome, for metrics.
func Outcomes() []Outcome {
	out := make([]Outcome, numOutcomes)
	for i := range out {
		out[i] = Outcome(i)
	}
	return out
}

// Counters count queries by outcome. One Counters may be shared by
// several Servers (and outlive them across reloads); it is safe for
// concurrent use.
type Counters struct {
	n       [numOutcomes]atomic.Uint64
	observe atomic.Pointer[func(Outcome)]
}

// OnAdd sets a function called with each counted outcome (a metrics
// counter), replacing any set before; it must not block.
func (c *Counters) OnAdd(f func(Outcome)) { c.observe.Store(&f) }

// Get returns the count of o.
func (c *Counters) Get(o Outcome) uint64 {
	if o >= numOutcomes {
		return 0
	}
	return c.n[o].Load()
}

func (c *Counters) add(o Outcome) {
	c.n[o].Add(1)
	if f := c.observe.Load(); f != nil {
		(*f)(o)
	}
}

// Defaults of the Config bounds.
const (
	DefaultMaxOutstanding = 256
	DefaultMaxTCPConns    = 64
	DefaultMaxTCPMessage  = 4096
	DefaultCacheEntries   = 1024
	DefaultTimeout        = 60 * time.Second
	DefaultTCPIdle        = 10 * time.Second
)

// Config configures a Server.
type Config struct {
	// ID names the port in isolation keys and logs ("127.0.0.1:53").
	ID string
	// Flags are the port's isolation flags (IsolateClientAddr,
	// IsolateDestAddr, SessionGroup; the SOCKS-only ones are ignored).
	Flags socks.Flags
	// Policy is SocksPolicy; empty accepts loopback clients only, as for
	// the SocksPort.
	Policy policy.Policy
	// Log receives C tor style messages; nil discards them.
	Log *torlog.Logger
	// UnsafeLogging writes names into logs (SafeLogging 0).
	UnsafeLogging bool
	// Counters, if set, count queries by outcome.
	Counters *Counters
	// MaxOutstanding bounds the queries being resolved at once, over
	// every transport; more get SERVFAIL at once.
	MaxOutstanding int
	// MaxTCPConns bounds open TCP connections; more are closed at once.
	MaxTCPConns int
	// MaxTCPMessage bounds a TCP message's length; a longer one closes
	// the connection.
	MaxTCPMessage int
	// CacheEntries bounds the answer cache; 0 means the default, -1 no
	// cache.
	CacheEntries int
	// Timeout bounds one lookup.
	Timeout time.Duration
	// TCPIdle closes a TCP connection that sends nothing for this long.
	TCPIdle time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server answers DNS queries. Create it with New; it is safe for
// concurrent use.
type Server struct {
	cfg      Config
	resolver Resolver
	log      *torlog.Logger
	sem      chan struct{} // one token per outstanding query
	counters *Counters

	ctx    context.Context
	cancel context.CancelFunc
	mu     lock.Mutex     // guards closed and wg.Add from zero
	closed bool           // Close was called
	wg     sync.WaitGroup // serving loops and their queries

	tcpConns atomic.Int64

	cacheMu lock.Mutex
	cache   map[cacheKey]cacheEntry
}

type cacheKey struct {
	iso   socks.IsolationKey
	name  string // lower case, no final dot
	qtype uint16 // dnsmessage.Type
}

type cacheEntry struct {
	addrs   []netip.Addr
	ptr     string
	expires time.Time
}

// New returns a Server answering with r.
func New(cfg Config, r Resolver) (*Server, error) {
	if r == nil {
		return nil, errors.New("dnsport: nil Resolver")
	}
	if len(cfg.Policy) == 0 {
		cfg.Policy = policy.Loopback()
	}
	if cfg.MaxOutstanding <= 0 {
		cfg.MaxOutstanding = DefaultMaxOutstanding
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = DefaultMaxTCPConns
	}
	if cfg.MaxTCPMessage <= 0 {
		cfg.MaxTCPMessage = DefaultMaxTCPMessage
	}
	if cfg.MaxTCPMessage > 65535 {
		cfg.MaxTCPMessage = 65535
	}
	if cfg.CacheEntries == 0 {
		cfg.CacheEntries = DefaultCacheEntries
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TCPIdle <= 0 {
		cfg.TCPIdle = DefaultTCPIdle
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Log
	if log == nil {
		log = torlog.Discard()
	}
	counters := cfg.Counters
	if counters == nil {
		counters = &Counters{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, resolver: r, log: log, counters: counters, ctx: ctx, cancel: cancel,
		sem: make(chan struct{}, cfg.MaxOutstanding), cache: map[cacheKey]cacheEntry{}}, nil
}

// Close stops the serving loops and the queries in progress and waits
// for them.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// isoKey builds the isolation key of a lookup of name (lower case) by client, from
// the port's flags (C tor's DNSPort takes its listener's isolation flags).
func (s *Server) isoKey(name string, client netip.Addr) socks.IsolationKey {
	f := s.cfg.Flags
	k := socks.IsolationKey{Listener: s.cfg.ID, SessionGroup: -1}
	if f.SessionGroupSet {
		k.Listener, k.SessionGroup = "", f.SessionGroup
	}
	if f.IsolateDestAddr {
		k.DestAddr = name
	}
	if f.IsolateClientAddr {
		k.ClientAddr = client.Unmap()
	}
	return k
}

// safe returns name for a log message, or "[scrubbed]".
func (s *Server) safe(name string) string {
	if s.cfg.UnsafeLogging {
		return name
	}
	return "[scrubbed]"
}

// query is one parsed request.
type query struct {
	hdr       dnsmessage.Header
	questions []dnsmessage.Question
	q         *dnsmessage.Question // the one answered, nil if none
}

// parse reads a request; an error means the message is to be dropped.
func parse(msg []byte) (*query, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, errfmt.Errorf("bad DNS header: %w", err)
	}
	if h.Response {
		return nil, errors.New("a DNS response, not a query")
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return nil, errfmt.Errorf("bad DNS question: %w", err)
	}
	r := &query{hdr: h, questions: qs}
	for i := range qs {
		if qs[i].Class != dnsmessage.ClassINET {
			continue
		}
		switch qs[i].Type {
		case dnsmessage.TypeA, dnsmessage.TypeAAAA, dnsmessage.TypePTR:
			r.q = &qs[i]
		}
		if r.q != nil {
			break
		}
	}
	return r, nil
}

// reply is what answers a query.
type reply struct {
	rcode dnsmessage.RCode
	addrs []netip.Addr
	ptr   string
	ttl   uint32
}

// handle answers one message from client; nil means drop it (malformed).
// udp limits the answer to 512 bytes (truncated: TC set, no answers).
func (s *Server) handle(ctx context.Context, msg []byte, client netip.AddrPort, udp bool) []byte {
	q, err := parse(msg)
	if err != nil {
		s.counters.add(Malformed)
		s.log.Infof("Dropping malformed DNS request from %v: %v", client.Addr(), err)
		return nil
	}
	var rep reply
	outcome := Answered
	switch {
	case !s.cfg.Policy.Allows(client.Addr(), policy.AcceptUnmatched):
		s.log.Warnf("Rejecting DNS request from disallowed IP.")
		rep.rcode, outcome = dnsmessage.RCodeRefused, Refused
	case q.hdr.OpCode != 0:
		rep.rcode, outcome = dnsmessage.RCodeNotImplemented, NotImp
	case len(q.questions) == 0:
		s.log.Infof("No questions in DNS request; sending back nil reply.")
		rep.rcode, outcome = dnsmessage.RCodeSuccess, NoData
	case q.q == nil:
		s.log.Infof("None of the questions we got were ones we're willing to support. Sending NOTIMPL.")
		rep.rcode, outcome = dnsmessage.RCodeNotImplemented, NotImp
	default:
		select {
		case s.sem <- struct{}{}:
			rep, outcome = s.lookup(ctx, q.q, client)
			<-s.sem
		default:
			s.log.Infof("Too many DNS requests outstanding (%d); answering SERVFAIL.", s.cfg.MaxOutstanding)
			rep.rcode, outcome = dnsmessage.RCodeServerFailure, Overloaded
		}
	}
	s.counters.add(outcome)
	out, err := build(q, rep, udp)
	if err != nil {
		s.log.Warnf("Building a DNS answer failed: %v", err)
		return nil
	}
	return out
}

// lookup answers the question q through the cache or the Resolver.
func (s *Server) lookup(ctx context.Context, q *dnsmessage.Question, client netip.AddrPort) (reply, Outcome) {
	// As C tor, names go to the exit in lower case; the answer keeps the
	// question's spelling (for clients using 0x20 randomisation).
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	if name == "" {
		return reply{rcode: dnsmessage.RCodeNameError}, NXDomain
	}
	iso := s.isoKey(name, client.Addr())
	key := cacheKey{iso: iso, name: name, qtype: uint16(q.Type)}
	now := s.cfg.Now()
	if e, ok := s.cached(key, now); ok {
		ttl := max(uint32(e.expires.Sub(now)/time.Second), MinAnswerTTL)
		return reply{addrs: e.addrs, ptr: e.ptr, ttl: ttl}, Cached
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var rep reply
	var err error
	if q.Type == dnsmessage.TypePTR {
		if a, ok := ParsePTRName(name); !ok {
			err = errfmt.Errorf("%w: not an in-addr.arpa or ip6.arpa name of an address", ErrNotFound)
		} else {
			rep.ptr, rep.ttl, err = s.resolver.ResolvePTR(ctx, a, client, iso)
		}
		if err == nil && (rep.ptr == "" || len(rep.ptr) > 253) {
			err = errfmt.Errorf("reverse lookup gave an unusable name of %d bytes", len(rep.ptr))
		}
	} else {
		ipv6 := q.Type == dnsmessage.TypeAAAA
		if a, perr := netip.ParseAddr(name); perr == nil {
			// An address resolves to itself at once, as in C tor.
			if a.Is6() == ipv6 {
				return reply{addrs: []netip.Addr{a}, ttl: MinAnswerTTL}, Answered
			}
			return reply{ttl: MinAnswerTTL}, NoData
		}
		var addrs []netip.Addr
		addrs, rep.ttl, err = s.resolver.Resolve(ctx, name, ipv6, client, iso)
		for _, a := range addrs {
			if a = a.Unmap(); a.Is6() == ipv6 && len(rep.addrs) < 8 {
				rep.addrs = append(rep.addrs, a)
			}
		}
	}
	if err != nil {
		s.log.Infof("DNS lookup of %s failed: %v", s.safe(name), err)
		if errors.Is(err, ErrNotFound) {
			return reply{rcode: dnsmessage.RCodeNameError}, NXDomain
		}
		return reply{rcode: dnsmessage.RCodeServerFailure}, ServFail
	}
	if rep.ttl > 0 {
		s.store(key, cacheEntry{addrs: rep.addrs, ptr: rep.ptr, expires: now.Add(time.Duration(ClipTTL(rep.ttl)) * time.Second)}, now)
	}
	rep.ttl = max(rep.ttl, MinAnswerTTL)
	if len(rep.addrs) == 0 && rep.ptr == "" {
		return rep, NoData
	}
	return rep, Answered
}

func (s *Server) cached(k cacheKey, now time.Time) (cacheEntry, bool) {
	if s.cfg.CacheEntries < 0 {
		return cacheEntry{}, false
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	e, ok := s.cache[k]
	if ok && !now.Before(e.expires) {
		delete(s.cache, k)
		ok = false
	}
	return e, ok
}

// store caches an answer; when the cache is full, expired entries go
// first, then arbitrary ones.
func (s *Server) store(k cacheKey, e cacheEntry, now time.Time) {
	if s.cfg.CacheEntries < 0 {
		return
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if len(s.cache) >= s.cfg.CacheEntries {
		for ck, ce := range s.cache {
			if !now.Before(ce.expires) {
				delete(s.cache, ck)
			}
		}
		for ck := range s.cache {
			if len(s.cache) < s.cfg.CacheEntries {
				break
			}
			delete(s.cache, ck)
		}
	}
	s.cache[k] = e
}

// build encodes the answer to q. Over UDP an answer longer than 512 bytes
// is replaced by a truncated one (TC set, no records).
func build(q *query, rep reply, udp bool) ([]byte, error) {
	out, err := encode(q, rep, false)
	if err == nil && udp && len(out) > 512 {
		out, err = encode(q, rep, true)
	}
	return out, err
}

func encode(q *query, rep reply, truncated bool) ([]byte, error) {
	h := dnsmessage.Header{ID: q.hdr.ID, Response: true, OpCode: q.hdr.OpCode, RecursionDesired: q.hdr.RecursionDesired,
		RecursionAvailable: true, RCode: rep.rcode, Truncated: truncated}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if !truncated {
		for _, qq := range q.questions {
			if err := b.Question(qq); err != nil {
				return nil, err
			}
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.q != nil && !truncated && rep.rcode == dnsmessage.RCodeSuccess {
		rh := dnsmessage.ResourceHeader{Name: q.q.Name, Class: dnsmessage.ClassINET, TTL: rep.ttl}
		for _, a := range rep.addrs {
			var err error
			if a.Is4() {
				err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
			} else {
				err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
			}
			if err != nil {
				return nil, err
			}
		}
		if rep.ptr != "" {
			n, err := dnsmessage.NewName(strings.TrimSuffix(rep.ptr, ".") + ".")
			if err != nil {
				return nil, errfmt.Errorf("PTR answer: %w", err)
			}
			if err := b.PTRResource(rh, dnsmessage.PTRResource{PTR: n}); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}

// ParsePTRName returns the address of an in-addr.arpa or ip6.arpa name
// (C tor's tor_addr_parse_PTR_name, case-insensitive).
func ParsePTRName(name string) (netip.Addr, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if s, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		// Reverse the four labels, then parse the dotted quad.
		rev := ""
		for i := 0; i < 4; i++ {
			label, rest, _ := strings.Cut(s, ".")
			rev, s = label+"."+rev, rest
		}
		a, err := netip.ParseAddr(strings.TrimSuffix(rev, "."))
		return a, err == nil && s == "" && a.Is4()
	}
	if s, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		nibbles := strings.Split(s, ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nibbles {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", n[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			pos := 31 - i // nibbles are least significant first
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
