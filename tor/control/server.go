// Package control implements the server side of Tor's control protocol
// (control-spec.txt), as spoken by stem and nyx: command parsing, replies,
// authentication (NULL, COOKIE, SAFECOOKIE, HASHEDPASSWORD), event
// subscriptions and the commands tinytor supports, answered through a
// Backend that the client implements.
package control

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"tinytor/tor/torlog"
)

// ConfEntry is one configuration option for GETCONF/SETCONF/RESETCONF.
// HasValue false means "no value": unset in GETCONF replies, reset to the
// default in SETCONF.
type ConfEntry struct {
	Key      string
	Value    string
	HasValue bool
}

// Backend is what the control port controls. Methods are called from
// connection goroutines, possibly concurrently. Returning an *Error selects
// the exact reply; ErrNotFound gives the command's 552 reply; any other
// error gives "551 <text>".
type Backend interface {
	// GetInfo answers one GETINFO key (including "version" and
	// "config/names"). A value with line breaks is sent as a data reply.
	GetInfo(key string) (string, error)
	GetConf(keys []string) ([]ConfEntry, error)
	SetConf(entries []ConfEntry) error
	ResetConf(entries []ConfEntry) error
	SaveConf(force bool) error
	// Signal receives the canonical name: RELOAD, SHUTDOWN, DUMP, DEBUG,
	// HALT, NEWNYM, CLEARDNSCACHE, HEARTBEAT, DORMANT or ACTIVE.
	Signal(name string) error
	CloseCircuit(id string, ifUnused bool) error
	CloseStream(id string, reason int) error
	AddOnion(req *AddOnionRequest) (*AddOnionResult, error)
	DelOnion(serviceID string) error
	OnionClientAuthAdd(cred *OnionClientCredential) (ClientAuthAddResult, error)
	// OnionClientAuthRemove reports whether credentials existed.
	OnionClientAuthRemove(address string) (bool, error)
	// OnionClientAuthView lists credentials, all of them for address "".
	OnionClientAuthView(address string) ([]OnionClientCredential, error)
	HSFetch(address string, servers []string) error
	// MapAddress maps the address from to to (MAPADDRESS) and returns
	// the address mapped: from itself, or the virtual address chosen when
	// from is ".", "0.0.0.0" or "::". An *Error selects the reply line
	// (512 for a bad address, 451 when no virtual address is left).
	MapAddress(from, to string) (string, error)
	// TakeOwnership makes the process exit when the owning connection
	// closes: the server calls release at that moment.
	TakeOwnership() (release func(), err error)
}

// Config configures a Server.
type Config struct {
	Auth    AuthConfig
	Backend Backend
	Logger  *torlog.Logger
	// MaxLine and MaxData bound command lines and bodies (0: defaults).
	MaxLine, MaxData int
	// EventQueue bounds the events waiting to be written to one
	// controller (0: 1024). A controller that falls that far behind is
	// disconnected rather than slowing the core down.
	EventQueue int
}

// Server is a control-port server.
type Server struct {
	cfg    Config
	log    *torlog.Logger
	mu     sync.Mutex
	conns  map[*conn]struct{}
	detach map[string]bool // detached ADD_ONION services
	wanted [64]atomic.Int32
	wg     sync.WaitGroup
}

// NewServer checks cfg and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("control: no backend")
	}
	if err := cfg.Auth.validate(); err != nil {
		return nil, err
	}
	if cfg.EventQueue <= 0 {
		cfg.EventQueue = 1024
	}
	l := cfg.Logger
	if l == nil {
		l = torlog.Discard()
	}
	return &Server{cfg: cfg, log: l, conns: map[*conn]struct{}{}, detach: map[string]bool{}}, nil
}

func eventIndex(name string) int {
	for i, n := range eventNames {
		if n == name {
			return i
		}
	}
	return -1
}

// Wants reports whether any controller is subscribed to eventType, so
// producers can skip formatting events nobody reads.
func (s *Server) Wants(eventType string) bool {
	i := eventIndex(eventType)
	return i >= 0 && s.wanted[i].Load() > 0
}

// Emit queues e for every controller subscribed to e.Type. It never
// blocks and never logs (it may be called from a log hook): a controller
// whose queue is full is disconnected.
func (s *Server) Emit(e Event) {
	i := eventIndex(e.Type)
	if i < 0 || s.wanted[i].Load() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if !c.subscribed(i) {
			continue
		}
		select {
		case c.events <- e:
		default:
			c.overflow.Store(true)
			c.cancel()
		}
	}
}

// LogHook turns log messages into NOTICE/WARN/ERR events; register it with
// (*torlog.Logger).OnMessage.
func (s *Server) LogHook(sev torlog.Severity, msg string) { s.Emit(LogEvent(sev, msg)) }

// Serve accepts controllers on l until ctx is cancelled or l fails. It
// closes l and all connections, and waits for their goroutines, before
// returning.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer s.wg.Wait() // runs last: connections end once ctx is cancelled
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.Close()
			return fmt.Errorf("control port: accept: %w", err)
		}
		c := s.newConn(ctx, nc)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.run()
		}()
	}
}

// conn is one controller connection.
type conn struct {
	s        *Server
	nc       net.Conn
	ctx      context.Context
	cancel   context.CancelFunc
	r        *Reader
	wmu      sync.Mutex // serialises replies and events
	w        *ReplyWriter
	events   chan Event
	overflow atomic.Bool
	subs     atomic.Uint64 // bit i: subscribed to eventNames[i]

	// Owned by the command goroutine.
	authed       bool
	sawProtoInfo bool
	sawChallenge bool
	safeCookie   []byte // expected AUTHENTICATE after AUTHCHALLENGE
	onions       []string
	releaseOwner func()
}

func (s *Server) newConn(ctx context.Context, nc net.Conn) *conn {
	cctx, cancel := context.WithCancel(ctx)
	c := &conn{
		s: s, nc: nc, ctx: cctx, cancel: cancel,
		r:      NewReader(nc, s.cfg.MaxLine, s.cfg.MaxData),
		w:      NewReplyWriter(nc),
		events: make(chan Event, s.cfg.EventQueue),
	}
	return c
}

func (c *conn) subscribed(i int) bool { return c.subs.Load()&(1<<uint(i)) != 0 }

// setEvents replaces the subscription set and keeps Server.wanted counts.
func (c *conn) setEvents(mask uint64) {
	old := c.subs.Swap(mask)
	for i := range eventNames {
		bit := uint64(1) << uint(i)
		switch {
		case old&bit == 0 && mask&bit != 0:
			c.s.wanted[i].Add(1)
		case old&bit != 0 && mask&bit == 0:
			c.s.wanted[i].Add(-1)
		}
	}
}

func (c *conn) run() {
	s := c.s
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	stop := context.AfterFunc(c.ctx, func() { c.nc.Close() })
	var ew sync.WaitGroup
	ew.Add(1)
	go func() {
		defer ew.Done()
		c.writeEvents()
	}()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.setEvents(0)
		c.cancel()
		stop()
		c.nc.Close()
		ew.Wait()
		c.cleanup()
	}()
	for {
		cmd, err := c.r.ReadCommand()
		if err != nil {
			var ce *Error
			if errors.As(err, &ce) {
				c.reply(func(w *ReplyWriter) { w.Error(ce) })
			} else if c.overflow.Load() {
				s.log.Warnf("Control connection from %s fell %d events behind; closing it.", c.nc.RemoteAddr(), s.cfg.EventQueue)
			} else if !errors.Is(err, io.EOF) && c.ctx.Err() == nil {
				s.log.Infof("Control connection from %s: %v", c.nc.RemoteAddr(), err)
			}
			return
		}
		if !c.handle(cmd) {
			return
		}
	}
}

// writeEvents sends queued events until the connection ends.
func (c *conn) writeEvents() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case e := <-c.events:
			if !c.subscribed(eventIndex(e.Type)) {
				continue // unsubscribed since it was queued
			}
			c.reply(func(w *ReplyWriter) { writeEvent(w, e) })
		}
	}
}

func writeEvent(w *ReplyWriter, e Event) {
	if strings.ContainsAny(e.Body, "\r\n") {
		w.Data(CodeAsync, e.Type, e.Body)
		w.End(CodeAsync, "OK")
		return
	}
	if e.Body == "" {
		w.End(CodeAsync, e.Type)
		return
	}
	w.End(CodeAsync, e.Type+" "+e.Body)
}

// reply writes one whole reply atomically with respect to events.
func (c *conn) reply(f func(w *ReplyWriter)) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	f(c.w)
	if err := c.w.Flush(); err != nil {
		c.cancel()
	}
}

func (c *conn) replyErr(e *Error) { c.reply(func(w *ReplyWriter) { w.Error(e) }) }

func (c *conn) ok() { c.reply(func(w *ReplyWriter) { w.End(CodeOK, "OK") }) }

// cleanup removes the connection's non-detached onion services and ends
// ownership.
func (c *conn) cleanup() {
	for _, id := range c.onions {
		if err := c.s.cfg.Backend.DelOnion(id); err != nil {
			c.s.log.Warnf("Removing onion service %s of a closed control connection: %v", id, err)
		}
	}
	if c.releaseOwner != nil {
		c.s.log.Noticef("Owning controller connection has closed -- exiting now.")
		c.releaseOwner()
	}
}

// handle runs one command and reports whether to keep the connection.
func (c *conn) handle(cmd *Command) bool {
	if !c.authed {
		return c.handlePreAuth(cmd)
	}
	switch cmd.Keyword {
	case "QUIT":
		c.reply(func(w *ReplyWriter) { w.End(CodeOK, "closing connection") })
		return false
	case "PROTOCOLINFO":
		c.protocolInfo(cmd)
		return true
	case "AUTHENTICATE":
		// C tor re-runs authentication and closes on failure.
		return c.authenticate(cmd)
	case "AUTHCHALLENGE":
		c.replyErr(Errorf(CodeSyntaxProtocol, "AUTHCHALLENGE is only valid before authentication."))
		return true
	}
	h, ok := commands[cmd.Keyword]
	if !ok {
		c.replyErr(Errorf(CodeUnrecognizedCommand, "Unrecognized command %s", QuoteString(cmd.Keyword)))
		return true
	}
	h(c, cmd)
	return true
}

// handlePreAuth allows PROTOCOLINFO (once), AUTHCHALLENGE (once, and then
// only AUTHENTICATE), AUTHENTICATE and QUIT; anything else gets 514 and the
// connection is closed, as in C tor.
func (c *conn) handlePreAuth(cmd *Command) bool {
	if c.safeCookie != nil && cmd.Keyword != "AUTHENTICATE" {
		c.replyErr(Errorf(CodeAuthRequired, "Authentication required."))
		return false
	}
	switch cmd.Keyword {
	case "QUIT":
		c.reply(func(w *ReplyWriter) { w.End(CodeOK, "closing connection") })
		return false
	case "PROTOCOLINFO":
		if !c.sawProtoInfo {
			c.sawProtoInfo = true
			return c.protocolInfo(cmd)
		}
	case "AUTHCHALLENGE":
		if !c.sawChallenge {
			c.sawChallenge = true
			return c.authChallenge(cmd)
		}
	case "AUTHENTICATE":
		return c.authenticate(cmd)
	}
	c.replyErr(Errorf(CodeAuthRequired, "Authentication required."))
	return false
}

func (c *conn) protocolInfo(cmd *Command) bool {
	as, err := ParseArgs(cmd.Args)
	if err != nil {
		c.replyErr(Errorf(CodeSyntaxArgs, "Bad arguments to PROTOCOLINFO: %v", err))
		return false
	}
	for _, a := range as {
		if _, err := strconv.Atoi(a.Value); err != nil || a.HasKey {
			c.replyErr(Errorf(CodeUnrecognizedArg, "No such version %s", QuoteString(a.Value)))
			return false
		}
	}
	version, err := c.s.cfg.Backend.GetInfo("version")
	if err != nil {
		c.replyErr(asError(err, "Unable to read version"))
		return false
	}
	auth := &c.s.cfg.Auth
	c.reply(func(w *ReplyWriter) {
		w.Mid(CodeOK, "PROTOCOLINFO 1")
		line := "AUTH METHODS=" + auth.methods()
		if auth.Cookie != nil {
			line += " COOKIEFILE=" + QuoteString(auth.CookieFile)
		}
		w.Mid(CodeOK, line)
		w.Mid(CodeOK, "VERSION Tor="+QuoteString(version))
		w.End(CodeOK, "OK")
	})
	return true
}

// secretArg decodes the single AUTHENTICATE/AUTHCHALLENGE argument: a
// QuotedString or hex.
func secretArg(as []Arg) (secret []byte, quoted bool, err error) {
	a := as[0]
	if a.Quoted {
		return []byte(a.Value), true, nil
	}
	b, err := hex.DecodeString(a.Value)
	return b, false, err
}

func (c *conn) authChallenge(cmd *Command) bool {
	as, err := ParseArgs(cmd.Args)
	if err != nil {
		c.replyErr(Errorf(CodeSyntaxArgs, "Bad arguments to AUTHCHALLENGE: %v", err))
		return false
	}
	if len(as) == 0 {
		c.replyErr(Errorf(CodeSyntaxArgs, "Bad arguments to AUTHCHALLENGE: Need at least 1 argument(s)"))
		return false
	}
	if as[0].HasKey || !strings.EqualFold(as[0].Value, "SAFECOOKIE") {
		c.replyErr(Errorf(CodeUnrecognizedArg, "AUTHCHALLENGE only supports SAFECOOKIE authentication"))
		return false
	}
	cookie := c.s.cfg.Auth.Cookie
	if cookie == nil {
		c.replyErr(Errorf(CodeBadAuth, "Cookie authentication is disabled"))
		return false
	}
	if len(as) != 2 {
		c.replyErr(Errorf(CodeSyntaxArgs, "Wrong number of arguments for AUTHCHALLENGE"))
		return false
	}
	if as[1].HasKey {
		c.replyErr(Errorf(CodeSyntaxArgs, "AUTHCHALLENGE does not accept keyword arguments."))
		return false
	}
	nonce, _, err := secretArg(as[1:])
	if err != nil {
		c.replyErr(Errorf(CodeUnrecognizedArg, "Invalid base16 client nonce"))
		return false
	}
	serverNonce := make([]byte, 32)
	if _, err := rand.Read(serverNonce); err != nil {
		c.replyErr(Errorf(CodeInternal, "Unable to make a nonce"))
		return false
	}
	sh, ch := SafeCookieHashes(cookie, nonce, serverNonce)
	c.safeCookie = ch
	c.reply(func(w *ReplyWriter) {
		w.End(CodeOK, "AUTHCHALLENGE SERVERHASH="+strings.ToUpper(hex.EncodeToString(sh))+
			" SERVERNONCE="+strings.ToUpper(hex.EncodeToString(serverNonce)))
	})
	return true
}

func (c *conn) authenticate(cmd *Command) bool {
	as, err := ParseArgs(cmd.Args)
	if err != nil {
		c.replyErr(Errorf(CodeSyntaxArgs, "Bad arguments to AUTHENTICATE: %v", err))
		return false
	}
	var secret []byte
	quoted := false
	switch {
	case len(as) == 0:
	case len(as) > 1:
		c.replyErr(Errorf(CodeSyntaxArgs, "Too many arguments to AUTHENTICATE."))
		return false
	case as[0].HasKey:
		c.replyErr(Errorf(CodeSyntaxArgs, "AUTHENTICATE does not accept keyword arguments."))
		return false
	default:
		secret, quoted, err = secretArg(as)
		if err != nil {
			c.replyErr(Errorf(CodeInternal, "Invalid hexadecimal encoding.  Maybe you tried a plain text password?  If so, the standard requires that you put it in double quotes."))
			return false
		}
	}
	fail := func(why string) bool {
		c.s.log.Warnf("Bad password or authentication cookie on controller from %s.", c.nc.RemoteAddr())
		c.replyErr(Errorf(CodeBadAuth, "Authentication failed: %s", why))
		return false
	}
	if expect := c.safeCookie; expect != nil {
		c.safeCookie = nil
		if len(secret) != len(expect) {
			return fail("Wrong length for safe cookie response.")
		}
		if !hmacEqual(secret, expect) {
			return fail("Safe cookie response did not match expected value.")
		}
	} else if ok, why := c.s.cfg.Auth.check(secret, quoted); !ok {
		return fail(why)
	}
	c.authed = true
	c.s.log.Infof("Authenticated control connection from %s", c.nc.RemoteAddr())
	c.ok()
	return true
}

func hmacEqual(a, b []byte) bool {
	var v byte
	for i := range a {
		v |= a[i] ^ b[i]
	}
	return v == 0 && len(a) == len(b)
}

var commands map[string]func(*conn, *Command)

func init() {
	commands = map[string]func(*conn, *Command){
		"GETINFO":                  (*conn).getInfo,
		"GETCONF":                  (*conn).getConf,
		"SETCONF":                  func(c *conn, cmd *Command) { c.setConf(cmd, false) },
		"RESETCONF":                func(c *conn, cmd *Command) { c.setConf(cmd, true) },
		"SAVECONF":                 (*conn).saveConf,
		"SIGNAL":                   (*conn).signal,
		"SETEVENTS":                (*conn).setEventsCmd,
		"CLOSECIRCUIT":             (*conn).closeCircuit,
		"CLOSESTREAM":              (*conn).closeStream,
		"ADD_ONION":                (*conn).addOnion,
		"DEL_ONION":                (*conn).delOnion,
		"ONION_CLIENT_AUTH_ADD":    (*conn).clientAuthAdd,
		"ONION_CLIENT_AUTH_REMOVE": (*conn).clientAuthRemove,
		"ONION_CLIENT_AUTH_VIEW":   (*conn).clientAuthView,
		"HSFETCH":                  (*conn).hsFetch,
		"MAPADDRESS":               (*conn).mapAddress,
		"TAKEOWNERSHIP":            (*conn).takeOwnership,
		"USEFEATURE":               (*conn).useFeature,
	}
}

// args parses cmd's arguments, replying 512 on a syntax error.
func (c *conn) args(cmd *Command, min int) ([]Arg, bool) {
	as, err := ParseArgs(cmd.Args)
	if err != nil {
		c.replyErr(Errorf(CodeSyntaxArgs, "Bad arguments to %s: %v", cmd.Keyword, err))
		return nil, false
	}
	if len(as) < min {
		c.replyErr(Errorf(CodeSyntaxArgs, "Bad arguments to %s: Need at least %d argument(s)", cmd.Keyword, min))
		return nil, false
	}
	return as, true
}

func (c *conn) getInfo(cmd *Command) {
	as, ok := c.args(cmd, 0)
	if !ok {
		return
	}
	type kv struct{ k, v string }
	var out []kv
	for _, a := range as {
		key := a.Value
		if a.HasKey || a.Quoted {
			c.replyErr(Errorf(CodeUnrecognizedEntity, "Unrecognized key %s", QuoteString(a.Key+"="+a.Value)))
			return
		}
		var v string
		var err error
		switch key {
		case "events/names":
			v = strings.Join(eventNames[:listedEvents], " ")
		case "onions/current":
			// As C tor: the services this connection added and owns.
			v = strings.Join(c.onions, "\n")
		case "onions/detached":
			c.s.mu.Lock()
			ids := make([]string, 0, len(c.s.detach))
			for id := range c.s.detach {
				ids = append(ids, id)
			}
			c.s.mu.Unlock()
			sort.Strings(ids)
			v = strings.Join(ids, "\n")
		default:
			v, err = c.s.cfg.Backend.GetInfo(key)
		}
		if err != nil {
			c.replyErr(asError(err, "Unrecognized key "+QuoteString(key)))
			return
		}
		out = append(out, kv{key, v})
	}
	c.reply(func(w *ReplyWriter) {
		for _, p := range out {
			if strings.ContainsAny(p.v, "\r\n") {
				w.Data(CodeOK, p.k+"=", p.v)
			} else {
				w.Mid(CodeOK, p.k+"="+p.v)
			}
		}
		w.End(CodeOK, "OK")
	})
}

func (c *conn) getConf(cmd *Command) {
	as, ok := c.args(cmd, 0)
	if !ok {
		return
	}
	keys := make([]string, 0, len(as))
	for _, a := range as {
		if a.HasKey || a.Quoted {
			c.replyErr(Errorf(CodeUnrecognizedEntity, "Unrecognized configuration key %s", QuoteString(a.Key+"="+a.Value)))
			return
		}
		keys = append(keys, a.Value)
	}
	if len(keys) == 0 {
		c.ok()
		return
	}
	entries, err := c.s.cfg.Backend.GetConf(keys)
	if err != nil {
		c.replyErr(asError(err, "Unrecognized configuration key"))
		return
	}
	if len(entries) == 0 {
		c.ok()
		return
	}
	c.reply(func(w *ReplyWriter) {
		for i, e := range entries {
			line := e.Key
			if e.HasValue {
				line += "=" + e.Value
			}
			if i == len(entries)-1 {
				w.End(CodeOK, line)
			} else {
				w.Mid(CodeOK, line)
			}
		}
	})
}

func (c *conn) setConf(cmd *Command, reset bool) {
	as, ok := c.args(cmd, 0)
	if !ok {
		return
	}
	entries := make([]ConfEntry, 0, len(as))
	for _, a := range as {
		if !a.HasKey && a.Quoted {
			c.replyErr(Errorf(CodeSyntaxArgs, "Bad arguments to %s: quoted string without a key", cmd.Keyword))
			return
		}
		if a.HasKey {
			entries = append(entries, ConfEntry{Key: a.Key, Value: a.Value, HasValue: true})
		} else {
			entries = append(entries, ConfEntry{Key: a.Value})
		}
	}
	if len(entries) == 0 {
		c.ok()
		return
	}
	var err error
	if reset {
		err = c.s.cfg.Backend.ResetConf(entries)
	} else {
		err = c.s.cfg.Backend.SetConf(entries)
	}
	if err != nil {
		c.replyErr(asError(err, "Unrecognized option"))
		return
	}
	c.ok()
}

func (c *conn) saveConf(cmd *Command) {
	as, ok := c.args(cmd, 0)
	if !ok {
		return
	}
	force := false
	for _, a := range as {
		if !a.HasKey && strings.EqualFold(a.Value, "FORCE") {
			force = true
		}
	}
	if err := c.s.cfg.Backend.SaveConf(force); err != nil {
		c.replyErr(asError(err, "Unable to write configuration to disk."))
		return
	}
	c.ok()
}

// signalNames maps accepted SIGNAL names to the canonical ones.
var signalNames = map[string]string{
	"RELOAD": "RELOAD", "HUP": "RELOAD",
	"SHUTDOWN": "SHUTDOWN", "INT": "SHUTDOWN",
	"DUMP": "DUMP", "USR1": "DUMP",
	"DEBUG": "DEBUG", "USR2": "DEBUG",
	"HALT": "HALT", "TERM": "HALT",
	"NEWNYM": "NEWNYM", "CLEARDNSCACHE": "CLEARDNSCACHE",
	"HEARTBEAT": "HEARTBEAT", "DORMANT": "DORMANT", "ACTIVE": "ACTIVE",
}

func (c *conn) signal(cmd *Command) {
	as, ok := c.args(cmd, 1)
	if !ok {
		return
	}
	name, known := signalNames[strings.ToUpper(as[0].Value)]
	if !known || as[0].HasKey || len(as) > 1 {
		c.replyErr(Errorf(CodeUnrecognizedEntity, "Unrecognized signal code %s", QuoteString(as[0].Value)))
		return
	}
	if name == "SHUTDOWN" || name == "HALT" {
		// Reply first: acting on it ends the process.
		c.ok()
		if err := c.s.cfg.Backend.Signal(name); err != nil {
			c.s.log.Warnf("Controller signal %s failed: %v", name, err)
		}
		return
	}
	if err := c.s.cfg.Backend.Signal(name); err != nil {
		c.replyErr(asError(err, "Unrecognized signal code "+QuoteString(name)))
		return
	}
	c.ok()
}

func (c *conn) setEventsCmd(cmd *Command) {
	as, ok := c.args(cmd, 0)
	if !ok {
		return
	}
	var mask uint64
	for _, a := range as {
		name := strings.ToUpper(a.Value)
		if a.HasKey || a.Quoted {
			name = a.Key + "=" + a.Value
		}
		if name == "EXTENDED" {
			continue // always on since 0.2.2.1-alpha
		}
		i := eventIndex(name)
		if i < 0 {
			c.replyErr(Errorf(CodeUnrecognizedEntity, "Unrecognized event %s", QuoteString(a.Value)))
			return
		}
		mask |= 1 << uint(i)
	}
	// Under the write lock, so no newly subscribed event precedes the OK.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.setEvents(mask)
	c.w.End(CodeOK, "OK")
	if err := c.w.Flush(); err != nil {
		c.cancel()
	}
}

func (c *conn) closeCircuit(cmd *Command) {
	as, ok := c.args(cmd, 1)
	if !ok {
		return
	}
	ifUnused := false
	for _, a := range as[1:] {
		if !a.HasKey && strings.EqualFold(a.Value, "IfUnused") {
			ifUnused = true
		}
	}
	if err := c.s.cfg.Backend.CloseCircuit(as[0].Value, ifUnused); err != nil {
		c.replyErr(asError(err, "Unknown circuit "+QuoteString(as[0].Value)))
		return
	}
	c.ok()
}

func (c *conn) closeStream(cmd *Command) {
	as, ok := c.args(cmd, 2)
	if !ok {
		return
	}
	reason, err := strconv.Atoi(as[1].Value)
	if err != nil || reason < 0 || reason > 255 {
		c.replyErr(Errorf(CodeUnrecognizedEntity, "Unrecognized reason %s", QuoteString(as[1].Value)))
		return
	}
	if err := c.s.cfg.Backend.CloseStream(as[0].Value, reason); err != nil {
		c.replyErr(asError(err, "Unknown stream "+QuoteString(as[0].Value)))
		return
	}
	c.ok()
}

func (c *conn) addOnion(cmd *Command) {
	req, err := ParseAddOnion(cmd.Args)
	if err != nil {
		c.replyErr(asError(err, ""))
		return
	}
	res, err := c.s.cfg.Backend.AddOnion(req)
	if err != nil {
		c.replyErr(asError(err, "Unable to add onion service"))
		return
	}
	if req.Detach {
		c.s.mu.Lock()
		c.s.detach[res.ServiceID] = true
		c.s.mu.Unlock()
	} else {
		c.onions = append(c.onions, res.ServiceID)
	}
	c.reply(func(w *ReplyWriter) {
		w.Mid(CodeOK, "ServiceID="+res.ServiceID)
		if req.NewKey && !req.DiscardPK && res.PrivateKey != nil {
			w.Mid(CodeOK, "PrivateKey=ED25519-V3:"+b64(res.PrivateKey))
		}
		w.End(CodeOK, "OK")
	})
}

func (c *conn) delOnion(cmd *Command) {
	as, ok := c.args(cmd, 1)
	if !ok {
		return
	}
	id := as[0].Value
	if len(as) != 1 || as[0].HasKey || !ValidOnionV3(id) {
		c.replyErr(Errorf(CodeSyntaxArgs, "Malformed Onion Service id"))
		return
	}
	own := -1
	for i, o := range c.onions {
		if o == id {
			own = i
		}
	}
	c.s.mu.Lock()
	detached := c.s.detach[id]
	c.s.mu.Unlock()
	if own < 0 && !detached {
		c.replyErr(Errorf(CodeUnrecognizedEntity, "Unknown Onion Service id"))
		return
	}
	if err := c.s.cfg.Backend.DelOnion(id); err != nil {
		c.replyErr(asError(err, "Unknown Onion Service id"))
		return
	}
	if own >= 0 {
		c.onions = append(c.onions[:own], c.onions[own+1:]...)
	} else {
		c.s.mu.Lock()
		delete(c.s.detach, id)
		c.s.mu.Unlock()
	}
	c.ok()
}

func (c *conn) clientAuthAdd(cmd *Command) {
	cred, err := ParseOnionClientAuthAdd(cmd.Args)
	if err != nil {
		c.replyErr(asError(err, ""))
		return
	}
	res, err := c.s.cfg.Backend.OnionClientAuthAdd(cred)
	if err != nil {
		c.replyErr(asError(err, "Unable to add client authorization"))
		return
	}
	switch res {
	case ClientAuthReplaced:
		c.replyErr(Errorf(CodeUnnecessary, "Client for onion existed and replaced"))
	case ClientAuthDecrypted:
		c.replyErr(Errorf(252, "Registered client and decrypted desc"))
	default:
		c.ok()
	}
}

func (c *conn) clientAuthRemove(cmd *Command) {
	as, ok := c.args(cmd, 1)
	if !ok {
		return
	}
	addr := strings.ToLower(strings.TrimSuffix(as[0].Value, ".onion"))
	if as[0].HasKey || !ValidOnionV3(addr) {
		c.replyErr(Errorf(CodeSyntaxArgs, "Invalid v3 address %s", QuoteString(as[0].Value)))
		return
	}
	existed, err := c.s.cfg.Backend.OnionClientAuthRemove(addr)
	if err != nil {
		c.replyErr(asError(err, "Unable to remove client authorization"))
		return
	}
	if !existed {
		c.replyErr(Errorf(CodeUnnecessary, "No credentials for %s", QuoteString(addr)))
		return
	}
	c.ok()
}

func (c *conn) clientAuthView(cmd *Command) {
	as, ok := c.args(cmd, 0)
	if !ok {
		return
	}
	addr := ""
	if len(as) > 0 {
		addr = strings.ToLower(strings.TrimSuffix(as[0].Value, ".onion"))
		if as[0].HasKey || !ValidOnionV3(addr) || len(as) > 1 {
			c.replyErr(Errorf(CodeSyntaxArgs, "Invalid v3 address %s", QuoteString(as[0].Value)))
			return
		}
	}
	creds, err := c.s.cfg.Backend.OnionClientAuthView(addr)
	if err != nil {
		c.replyErr(asError(err, "Unable to list client authorization"))
		return
	}
	c.reply(func(w *ReplyWriter) {
		head := "ONION_CLIENT_AUTH_VIEW"
		if addr != "" {
			head += " " + addr
		}
		w.Mid(CodeOK, head)
		for _, cr := range creds {
			w.Mid(CodeOK, formatCredential(cr))
		}
		w.End(CodeOK, "OK")
	})
}

func (c *conn) hsFetch(cmd *Command) {
	as, ok := c.args(cmd, 1)
	if !ok {
		return
	}
	addr := strings.ToLower(strings.TrimSuffix(as[0].Value, ".onion"))
	if as[0].HasKey || !ValidOnionV3(addr) {
		c.replyErr(Errorf(CodeUnrecognizedArg, "Invalid argument %s", QuoteString(as[0].Value)))
		return
	}
	var servers []string
	for _, a := range as[1:] {
		if !a.HasKey || !strings.EqualFold(a.Key, "SERVER") {
			c.replyErr(Errorf(CodeUnrecognizedArg, "Invalid argument %s", QuoteString(a.Key+"="+a.Value)))
			return
		}
		servers = append(servers, a.Value)
	}
	if err := c.s.cfg.Backend.HSFetch(addr, servers); err != nil {
		c.replyErr(asError(err, "Unable to fetch descriptor"))
		return
	}
	c.ok()
}

// useFeature accepts the features that are always on since Tor 0.2.2.1.
func (c *conn) useFeature(cmd *Command) {
	as, ok := c.args(cmd, 0)
	if !ok {
		return
	}
	for _, a := range as {
		switch f := strings.ToUpper(a.Value); {
		case a.HasKey || a.Quoted || f != "VERBOSE_NAMES" && f != "EXTENDED_EVENTS":
			c.replyErr(Errorf(CodeUnrecognizedEntity, "Unrecognized feature %s", QuoteString(a.Value)))
			return
		}
	}
	c.ok()
}

func (c *conn) takeOwnership(cmd *Command) {
	if c.releaseOwner != nil {
		c.ok()
		return
	}
	release, err := c.s.cfg.Backend.TakeOwnership()
	if err != nil {
		c.replyErr(asError(err, "Unable to take ownership"))
		return
	}
	c.releaseOwner = release
	c.ok()
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
