// Package client reaches v3 onion services (rend-spec-v3): it parses the
// address, fetches the service's descriptor from the responsible HSDirs,
// decrypts it (with a client authorization key from ClientOnionAuthDir when
// the service requires one), meets the service at a rendezvous point
// through one of its introduction points, and opens streams over the
// resulting circuit's virtual hop.
//
// It is built on the pure building blocks of onion/addr, onion/keys,
// onion/ring, onion/desc, onion/hsntor and onion/hscell, and on circuits
// from package tor. Failures are *Error values whose Kind maps to the
// SOCKS5 extended error codes of proposal 304.
package client

import (
	"context"
	crand "crypto/rand"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"tinytor/onion/addr"
	"tinytor/tor"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/config"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/lock"
	"tinytor/tor/path"
	"tinytor/tor/torlog"
)

// Network is what the onion client needs from the Tor client
// (*tor.Client provides it).
type Network interface {
	// NetworkView returns the directory in use, nil before bootstrap.
	NetworkView() *path.Dir
	// BuildCircuitTo builds a circuit guard, middle, target.
	BuildCircuitTo(ctx context.Context, t circmgr.Target, opts circmgr.Options) (*circuit.Circuit, error)
}

// Config is what a Client is built from.
type Config struct {
	// Net builds circuits and gives the consensus.
	Net Network
	// Log receives the client's log lines; nil discards them.
	Log *torlog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Testing is TestingTorNetwork: time periods are 24 voting intervals.
	Testing bool
	// AuthDir is ClientOnionAuthDir ("" for none). Its *.auth_private
	// files are read at each connection, so keys added later take effect.
	AuthDir string
	// Dirtiness is how long a rendezvous circuit takes new streams
	// (MaxCircuitDirtiness); 0 means 10 minutes.
	Dirtiness time.Duration
	// Rand supplies cookies and ephemeral keys; nil means crypto/rand.
	Rand io.Reader
	// Events receives the descriptor fetch events (*event.HSDesc); on it
	// the client also hears event.NewNym and purges its state (Purge).
	// Nil publishes nothing.
	Events *event.Bus
	// StreamTimeout is CircuitStreamTimeout: how long a stream waits for
	// the service's answer to its BEGIN before the rendezvous circuit is
	// given up and the stream tried on a new one. 0 means the
	// CircuitStreamTimeout of Net's configuration when Net has one
	// (*tor.Client), else C tor's rule (10 s, 15 s from the third try).
	StreamTimeout time.Duration
	// PoWSolvers bounds the proof-of-work puzzles solved at once (each
	// holds a 1.5 MB solver, kept for reuse); 0 means 1. Introductions
	// waiting for a solver wait for their turn; other circuits never do.
	PoWSolvers int
}

// Limits, as in C tor.
const (
	// maxIntroCircuitRetries is how many circuits we build to one
	// introduction point before giving up on it
	// (MAX_INTRO_POINT_CIRCUIT_RETRIES).
	maxIntroCircuitRetries = 3
	// maxRendAttempts bounds rendezvous circuits per connection.
	maxRendAttempts = 3
	// maxRendStreamAttempts bounds the rendezvous circuits one stream is
	// tried on (after a circuit died or stayed silent).
	maxRendStreamAttempts = 3
	// hsdirTimeout bounds one descriptor fetch from one HSDir.
	hsdirTimeout = 30 * time.Second
	// introAckTimeout bounds the wait for INTRODUCE_ACK.
	introAckTimeout = 30 * time.Second
	// rendTimeout bounds the wait for RENDEZVOUS2 after a positive
	// INTRODUCE_ACK.
	rendTimeout = 45 * time.Second
	// defaultDirtiness is MaxCircuitDirtiness's default.
	defaultDirtiness = 10 * time.Minute
)

// randT is the generator type of withRand.
type randT = rand.Rand

// Client connects to onion services. It is safe for concurrent use.
type Client struct {
	cfg Config
	log *torlog.Logger

	rngMu lock.Mutex
	rng   *rand.Rand

	mu      lock.Mutex
	authDir string // ClientOnionAuthDir in force
	closed  bool
	descs   map[[32]byte]*cacheEntry // by blinded key
	rends   map[rendKey]*rendEntry
	creds   map[addr.Address]Credential // added by controllers
	unsub   func()                      // from the event bus
	solvers *solverPool                 // proof-of-work solvers

	// fails remembers failed HSDirs and introduction points.
	fails *failMemory

	// connectRend joins a rendezvous circuit to a service (c.connect;
	// tests replace it).
	connectRend func(ctx context.Context, a addr.Address) (rendCirc, error)
}

// rendCirc is what streams need of a rendezvous circuit
// (*circuit.Circuit).
type rendCirc interface {
	OpenStream(ctx context.Context, host string, port uint16, flags circuit.BeginFlags) (*circuit.Stream, error)
	Err() error
	Close() error
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Net == nil {
		return nil, errors.New("onion client: no network")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = crand.Reader
	}
	if cfg.Dirtiness <= 0 {
		cfg.Dirtiness = defaultDirtiness
	}
	if cfg.PoWSolvers <= 0 {
		cfg.PoWSolvers = defaultPoWSolvers
	}
	log := cfg.Log
	if log == nil {
		log = torlog.Discard()
	}
	var seed [32]byte
	if _, err := io.ReadFull(cfg.Rand, seed[:]); err != nil {
		return nil, errfmt.Errorf("onion client: seeding: %w", err)
	}
	c := &Client{
		authDir: cfg.AuthDir,
		cfg:     cfg,
		log:     log,
		rng:     rand.New(rand.NewChaCha8(seed)),
		descs:   map[[32]byte]*cacheEntry{},
		rends:   map[rendKey]*rendEntry{},
		creds:   map[addr.Address]Credential{},
		unsub:   func() {},
		solvers: newSolverPool(cfg.PoWSolvers),
	}
	c.fails = newFailMemory(cfg.Now, cfg.Testing)
	c.connectRend = func(ctx context.Context, a addr.Address) (rendCirc, error) {
		circ, err := c.connect(ctx, a)
		if err != nil {
			return nil, err
		}
		return circ, nil
	}
	if cfg.Events != nil {
		c.unsub = cfg.Events.Subscribe(func(e event.Event) {
			if _, ok := e.(event.NewNym); ok {
				c.Purge()
			}
		})
	}
	return c, nil
}

// withRand runs f with the client's random generator (for choices, not
// keys).
func (c *Client) withRand(f func(r *randT)) {
	c.rngMu.Lock()
	f(c.rng)
	c.rngMu.Unlock()
}

// SetAuthDir changes the ClientOnionAuthDir (after a reload of the
// torrc); later connections read their keys there.
func (c *Client) SetAuthDir(dir string) {
	c.mu.Lock()
	c.authDir = dir
	c.mu.Unlock()
}

// Purge forgets every cached descriptor and retires every rendezvous
// circuit (each closes when its last stream ends), so that later
// connections are unlinkable to earlier ones: what C tor's NEWNYM does
// to its onion service client state (hs_client_purge_state).
func (c *Client) Purge() {
	c.mu.Lock()
	clear(c.descs)
	c.fails.purge()
	rends := c.rends
	c.rends = map[rendKey]*rendEntry{}
	c.mu.Unlock()
	for _, e := range rends {
		e.retire(c)
	}
}

// Close closes every rendezvous circuit. Streams on them fail.
func (c *Client) Close() {
	c.unsub()
	c.mu.Lock()
	c.closed = true
	rends := c.rends
	c.rends = map[rendKey]*rendEntry{}
	c.mu.Unlock()
	for _, e := range rends {
		e.retire(c)
	}
}

// rendKey names a rendezvous circuit: one per service and isolation key.
type rendKey struct {
	svc [32]byte
	iso any
}

// rendEntry is a rendezvous circuit joined (or being joined) to a
// service.
type rendEntry struct {
	ready chan struct{} // closed once circ or err is set
	circ  rendCirc
	err   error

	// Guarded by Client.mu.
	streams int
	retired bool
	timer   *time.Timer
}

// retire takes e out of service: it takes no new streams and closes once
// its last stream closes. Client.mu must not be held.
func (e *rendEntry) retire(c *Client) {
	c.mu.Lock()
	if e.retired {
		c.mu.Unlock()
		return
	}
	e.retired = true
	if e.timer != nil {
		e.timer.Stop()
	}
	closeNow := e.streams == 0 && e.circ != nil
	c.mu.Unlock()
	if closeNow {
		e.circ.Close()
	}
}

// Dial opens a stream to port on the onion service host ("<56 base32
// characters>.onion", subdomains allowed). Streams whose iso keys are
// equal share a rendezvous circuit; others never do (iso must be
// comparable). Errors are *Error values, except for a service that
// closes the stream itself (a *tor.StreamError) and ctx ending.
func (c *Client) Dial(ctx context.Context, host string, port uint16, iso any) (net.Conn, error) {
	a, err := addr.Parse(host)
	if err != nil {
		return nil, &Error{Kind: BadAddress, Addr: host, Err: err}
	}
	key := rendKey{svc: a.Key, iso: iso}
	name := a.String()
	var lastErr error
	timeouts := 0
	for attempt := 0; attempt < maxRendStreamAttempts; attempt++ {
		e, owner, err := c.rendFor(key)
		if err != nil {
			return nil, err
		}
		if owner {
			circ, err := c.connectRend(ctx, a)
			c.finish(key, e, circ, err)
		}
		select {
		case <-e.ready:
		case <-ctx.Done():
			c.release(e)
			return nil, errfmt.Errorf("onion service: %w", ctx.Err())
		}
		if e.err != nil {
			c.release(e)
			return nil, e.err
		}
		cutoff := c.streamTimeout(timeouts)
		sctx, cancel := context.WithTimeout(ctx, cutoff)
		s, err := e.circ.OpenStream(sctx, "", port, 0)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
			// The rendezvous circuit is silent: no stream of this
			// isolation key may use it again; meet the service anew.
			c.release(e)
			c.drop(key, e)
			timeouts++
			lastErr = errfmt.Errorf("no answer to BEGIN within %s", cutoff)
			c.log.Noticef("Rend stream to %s got no answer within %d seconds. Retrying on a new rendezvous circuit.",
				name[:8], int(cutoff/time.Second))
			continue
		}
		if err != nil {
			var se *circuit.StreamEndError
			if errors.As(err, &se) {
				c.release(e)
				return nil, &tor.StreamError{Target: name + ":" + strconv.Itoa(int(port)), Reason: se.Reason, Err: err}
			}
			c.release(e)
			if e.circ.Err() != nil && ctx.Err() == nil {
				// The circuit died under us: build another.
				c.drop(key, e)
				lastErr = err
				continue
			}
			return nil, errfmt.Errorf("onion service: opening a stream: %w", err)
		}
		return &stream{st: s, release: func() { c.release(e) }}, nil
	}
	return nil, &Error{Kind: RendFailed, Addr: name, Err: lastErr}
}

// streamTimeout is how long the attempt of a stream that already timed
// out retries times waits for the service's answer (Config.StreamTimeout,
// else the network's CircuitStreamTimeout, else C tor's rule).
func (c *Client) streamTimeout(retries int) time.Duration {
	conf := c.cfg.StreamTimeout
	if conf <= 0 {
		if n, ok := c.cfg.Net.(interface{ Config() *config.Config }); ok {
			if cc := n.Config(); cc != nil {
				conf = cc.CircuitStreamTimeout
			}
		}
	}
	return tor.StreamRetryTimeout(conf, retries)
}

// rendFor returns the live rendezvous entry for key with a stream slot
// reserved, or a new one that the caller (owner) must complete.
func (c *Client) rendFor(key rendKey) (e *rendEntry, owner bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, false, errors.New("onion client closed")
	}
	if e := c.rends[key]; e != nil {
		dead := false
		select {
		case <-e.ready:
			dead = e.err != nil || e.circ.Err() != nil
		default:
		}
		if !dead && !e.retired {
			e.streams++
			return e, false, nil
		}
		delete(c.rends, key)
	}
	e = &rendEntry{ready: make(chan struct{}), streams: 1}
	c.rends[key] = e
	return e, true, nil
}

// finish records the outcome of building e's circuit.
func (c *Client) finish(key rendKey, e *rendEntry, circ rendCirc, err error) {
	c.mu.Lock()
	e.circ, e.err = circ, err
	if err != nil {
		if c.rends[key] == e {
			delete(c.rends, key)
		}
		e.retired = true
	} else {
		e.timer = time.AfterFunc(c.cfg.Dirtiness, func() { c.drop(key, e) })
		if c.closed {
			e.retired = true
		}
	}
	closeNow := err == nil && e.retired
	c.mu.Unlock()
	close(e.ready)
	if closeNow {
		circ.Close()
	}
}

// drop removes e from service (dirty, or dead).
func (c *Client) drop(key rendKey, e *rendEntry) {
	c.mu.Lock()
	if c.rends[key] == e {
		delete(c.rends, key)
	}
	c.mu.Unlock()
	e.retire(c)
}

// release gives back a stream slot of e, closing a retired circuit
// whose last stream ended.
func (c *Client) release(e *rendEntry) {
	c.mu.Lock()
	e.streams--
	closeNow := e.streams == 0 && e.retired && e.circ != nil
	c.mu.Unlock()
	if closeNow {
		e.circ.Close()
	}
}

// stream is a stream on a rendezvous circuit; closing it releases its
// slot on the circuit. Its methods forward to the circuit stream (a named
// field rather than an embedded one, so that no value-receiver copies of
// the stream's methods are made).
type stream struct {
	st      *circuit.Stream
	once    sync.Once
	release func()
}

func (s *stream) Read(p []byte) (int, error)         { return s.st.Read(p) }
func (s *stream) Write(p []byte) (int, error)        { return s.st.Write(p) }
func (s *stream) CloseWrite() error                  { return s.st.CloseWrite() }
func (s *stream) LocalAddr() net.Addr                { return s.st.LocalAddr() }
func (s *stream) RemoteAddr() net.Addr               { return s.st.RemoteAddr() }
func (s *stream) SetDeadline(t time.Time) error      { return s.st.SetDeadline(t) }
func (s *stream) SetReadDeadline(t time.Time) error  { return s.st.SetReadDeadline(t) }
func (s *stream) SetWriteDeadline(t time.Time) error { return s.st.SetWriteDeadline(t) }

// Close closes the stream.
func (s *stream) Close() error {
	err := s.st.Close()
	s.once.Do(s.release)
	return err
}
