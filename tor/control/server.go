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
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
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
	mu     lock.Mutex
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
	s.mu.Unlock()
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
			return errfmt.Errorf("control port: accept: %w", err)
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
	wmu      lock.Mutex // serialises replies and events
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
	if e.Block {
		w.Data(CodeAsync, e.Type+" "+e.Body, e.Data)
		w.End(CodeAsync, "OK")
		return
	}
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
	f(c.w)
	if err := c.w.Flush(); err != nil {
		c.cancel()
	}
	c.wmu.Unlock()
}

func (c *conn) replyErr(e *Error) { c.reply(func(w *ReplyWriter) { w.Error(e) }) }

func (c *conn) ok() { c.reply(writeOK) }

func writeOK(w *ReplyWriter) { w.End(CodeOK, "OK") }

// writeQuit is the reply to QUIT.
func writeQuit(w *ReplyWriter) { w.End(CodeOK, "closing connection") }

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

// Replies with fixed texts.
var (
	errAuthRequired      = &Error{CodeAuthRequired, "Authentication required."}
	errChallengeAfter    = &Error{CodeSyntaxProtocol, "AUTHCHALLENGE is only valid before authentication."}
	errChallengeMethod   = &Error{CodeUnrecognizedArg, "AUTHCHALLENGE only supports SAFECOOKIE authentication"}
	errCookieDisabled    = &Error{CodeBadAuth, "Cookie authentication is disabled"}
	errChallengeArgCount = &Error{CodeSyntaxArgs, "Wrong number of arguments for AUTHCHALLENGE"}
	errChallengeKeyword  = &Error{CodeSyntaxArgs, "AUTHCHALLENGE does not accept keyword arguments."}
	errClientNonce       = &Error{CodeUnrecognizedArg, "Invalid base16 client nonce"}
	errNoNonce           = &Error{CodeInternal, "Unable to make a nonce"}
	errAuthArgCount      = &Error{CodeSyntaxArgs, "Too many arguments to AUTHENTICATE."}
	errAuthKeyword       = &Error{CodeSyntaxArgs, "AUTHENTICATE does not accept keyword arguments."}
	errAuthHex           = &Error{CodeInternal, "Invalid hexadecimal encoding.  Maybe you tried a plain text password?  If so, the standard requires that you put it in double quotes."}
	errMalformedOnionID  = &Error{CodeSyntaxArgs, "Malformed Onion Service id"}
	errUnknownOnionID    = &Error{CodeUnrecognizedEntity, "Unknown Onion Service id"}
	errClientReplaced    = &Error{CodeUnnecessary, "Client for onion existed and replaced"}
	errClientDecrypted   = &Error{252, "Registered client and decrypted desc"}
)

// handle runs one command and reports whether to keep the connection.
func (c *conn) handle(cmd *Command) bool {
	if !c.authed {
		return c.handlePreAuth(cmd)
	}
	var e *Error
	switch cmd.Keyword {
	case "QUIT":
		c.reply(writeQuit)
		return false
	case "PROTOCOLINFO":
		e = c.protocolInfo(cmd)
	case "AUTHENTICATE":
		// C tor re-runs authentication and closes on failure.
		return c.replyUnless(c.authenticate(cmd))
	case "AUTHCHALLENGE":
		e = errChallengeAfter
	default:
		if run := command(cmd.Keyword); run != nil {
			e = run(c, cmd)
		} else {
			e = ErrorWith(CodeUnrecognizedCommand, "Unrecognized command", cmd.Keyword)
		}
	}
	c.replyUnless(e)
	return true
}

// replyUnless sends e if it is not nil, and reports whether it was nil.
func (c *conn) replyUnless(e *Error) bool {
	if e != nil {
		c.replyErr(e)
	}
	return e == nil
}

// handlePreAuth allows PROTOCOLINFO (once), AUTHCHALLENGE (once, and then
// only AUTHENTICATE), AUTHENTICATE and QUIT; anything else gets 514 and the
// connection is closed, as in C tor. A failed command closes it too.
func (c *conn) handlePreAuth(cmd *Command) bool {
	e := errAuthRequired
	switch {
	case c.safeCookie != nil && cmd.Keyword != "AUTHENTICATE":
	case cmd.Keyword == "QUIT":
		c.reply(writeQuit)
		return false
	case cmd.Keyword == "PROTOCOLINFO" && !c.sawProtoInfo:
		c.sawProtoInfo = true
		e = c.protocolInfo(cmd)
	case cmd.Keyword == "AUTHCHALLENGE" && !c.sawChallenge:
		c.sawChallenge = true
		e = c.authChallenge(cmd)
	case cmd.Keyword == "AUTHENTICATE":
		e = c.authenticate(cmd)
	}
	return c.replyUnless(e)
}

func (c *conn) protocolInfo(cmd *Command) *Error {
	as, e := c.args(cmd, 0)
	if e != nil {
		return e
	}
	for _, a := range as {
		if _, err := strconv.Atoi(a.Value); err != nil || a.HasKey {
			return ErrorWith(CodeUnrecognizedArg, "No such version", a.Value)
		}
	}
	version, err := c.s.cfg.Backend.GetInfo("version")
	if err != nil {
		return asError(err, "Unable to read version")
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
	return nil
}

// secretArg decodes the single AUTHENTICATE/AUTHCHALLENGE argument: a
// QuotedString or hex.
func secretArg(a Arg) (secret []byte, err error) {
	if a.Quoted {
		return []byte(a.Value), nil
	}
	return hex.DecodeString(a.Value)
}

func (c *conn) authChallenge(cmd *Command) *Error {
	as, e := c.args(cmd, 1)
	switch {
	case e != nil:
		return e
	case as[0].HasKey || !strings.EqualFold(as[0].Value, "SAFECOOKIE"):
		return errChallengeMethod
	case c.s.cfg.Auth.Cookie == nil:
		return errCookieDisabled
	case len(as) != 2:
		return errChallengeArgCount
	case as[1].HasKey:
		return errChallengeKeyword
	}
	nonce, err := secretArg(as[1])
	if err != nil {
		return errClientNonce
	}
	serverNonce := make([]byte, 32)
	if _, err := rand.Read(serverNonce); err != nil {
		return errNoNonce
	}
	sh, ch := SafeCookieHashes(c.s.cfg.Auth.Cookie, nonce, serverNonce)
	c.safeCookie = ch
	h := strings.ToUpper(hex.EncodeToString(append(sh, serverNonce...))) // both 32 bytes
	c.reply(func(w *ReplyWriter) { w.End(CodeOK, "AUTHCHALLENGE SERVERHASH="+h[:64]+" SERVERNONCE="+h[64:]) })
	return nil
}

func (c *conn) authenticate(cmd *Command) *Error {
	as, e := c.args(cmd, 0)
	if e != nil {
		return e
	}
	var secret []byte
	quoted := false
	switch {
	case len(as) == 0:
	case len(as) > 1:
		return errAuthArgCount
	case as[0].HasKey:
		return errAuthKeyword
	default:
		var err error
		if secret, err = secretArg(as[0]); err != nil {
			return errAuthHex
		}
		quoted = as[0].Quoted
	}
	why := ""
	if expect := c.safeCookie; expect != nil {
		c.safeCookie = nil
		if len(secret) != len(expect) {
			why = "Wrong length for safe cookie response."
		} else if !hmacEqual(secret, expect) {
			why = "Safe cookie response did not match expected value."
		}
	} else if ok, w := c.s.cfg.Auth.check(secret, quoted); !ok {
		why = w
	}
	if why != "" {
		c.s.log.Warnf("Bad password or authentication cookie on controller from %s.", c.nc.RemoteAddr())
		return &Error{CodeBadAuth, "Authentication failed: " + why}
	}
	c.authed = true
	c.s.log.Infof("Authenticated control connection from %s", c.nc.RemoteAddr())
	c.ok()
	return nil
}

func hmacEqual(a, b []byte) bool {
	var v byte
	for i := range a {
		v |= a[i] ^ b[i]
	}
	return v == 0 && len(a) == len(b)
}

// commands are the commands of an authenticated connection, besides
// QUIT, PROTOCOLINFO, AUTHENTICATE and AUTHCHALLENGE. A handler returns
// the error reply to send, or nil once it has replied.
var commands = [...]struct {
	keyword string
	run     func(*conn, *Command) *Error
}{
	{"GETINFO", (*conn).getInfo},
	{"GETCONF", (*conn).getConf},
	{"SETCONF", (*conn).setConf},
	{"RESETCONF", (*conn).setConf},
	{"SAVECONF", (*conn).saveConf},
	{"SIGNAL", (*conn).signal},
	{"SETEVENTS", (*conn).setEventsCmd},
	{"CLOSECIRCUIT", (*conn).closeCircuit},
	{"CLOSESTREAM", (*conn).closeStream},
	{"ADD_ONION", (*conn).addOnion},
	{"DEL_ONION", (*conn).delOnion},
	{"ONION_CLIENT_AUTH_ADD", (*conn).clientAuthAdd},
	{"ONION_CLIENT_AUTH_REMOVE", (*conn).clientAuthRemove},
	{"ONION_CLIENT_AUTH_VIEW", (*conn).clientAuthView},
	{"HSFETCH", (*conn).hsFetch},
	{"MAPADDRESS", (*conn).mapAddress},
	{"TAKEOWNERSHIP", (*conn).takeOwnership},
	{"USEFEATURE", (*conn).useFeature},
}

// command returns the handler of keyword, or nil.
func command(keyword string) func(*conn, *Command) *Error {
	for _, h := range commands {
		if h.keyword == keyword {
			return h.run
		}
	}
	return nil
}

// args parses cmd's arguments, or returns the 512 reply for a syntax
// error or fewer than min arguments.
func (c *conn) args(cmd *Command, min int) ([]Arg, *Error) {
	as, err := ParseArgs(cmd.Args)
	if err != nil {
		return nil, argsError(cmd.Keyword, err.Error())
	}
	if len(as) < min {
		return nil, argsError(cmd.Keyword, "Need at least "+strconv.Itoa(min)+" argument(s)")
	}
	return as, nil
}

// keyValue is how C tor names an argument it refuses: Key=Value, or
// =Value when positional.
func keyValue(a Arg) string { return a.Key + "=" + a.Value }

// okOr replies OK when err is nil, or returns the reply for err, with
// notFound the text for ErrNotFound.
func (c *conn) okOr(err error, notFound string) *Error {
	if err != nil {
		return asError(err, notFound)
	}
	c.ok()
	return nil
}

func (c *conn) getInfo(cmd *Command) *Error {
	as, e := c.args(cmd, 0)
	if e != nil {
		return e
	}
	vals := make([]string, len(as))
	for i, a := range as {
		key := a.Value
		if a.HasKey || a.Quoted {
			return ErrorWith(CodeUnrecognizedEntity, "Unrecognized key", keyValue(a))
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
			return asError(err, "Unrecognized key "+QuoteString(key))
		}
		vals[i] = v
	}
	c.reply(func(w *ReplyWriter) {
		for i, v := range vals {
			if k := as[i].Value + "="; strings.ContainsAny(v, "\r\n") {
				w.Data(CodeOK, k, v)
			} else {
				w.Mid(CodeOK, k+v)
			}
		}
		w.End(CodeOK, "OK")
	})
	return nil
}

func (c *conn) getConf(cmd *Command) *Error {
	as, e := c.args(cmd, 0)
	if e != nil {
		return e
	}
	keys := make([]string, 0, len(as))
	for _, a := range as {
		if a.HasKey || a.Quoted {
			return ErrorWith(CodeUnrecognizedEntity, "Unrecognized configuration key", keyValue(a))
		}
		keys = append(keys, a.Value)
	}
	var entries []ConfEntry
	if len(keys) > 0 {
		var err error
		if entries, err = c.s.cfg.Backend.GetConf(keys); err != nil {
			return asError(err, "Unrecognized configuration key")
		}
	}
	if len(entries) == 0 {
		c.ok()
		return nil
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
	return nil
}

// setConf answers SETCONF and RESETCONF.
func (c *conn) setConf(cmd *Command) *Error {
	as, e := c.args(cmd, 0)
	if e != nil {
		return e
	}
	entries := make([]ConfEntry, 0, len(as))
	for _, a := range as {
		if !a.HasKey && a.Quoted {
			return argsError(cmd.Keyword, "quoted string without a key")
		}
		if a.HasKey {
			entries = append(entries, ConfEntry{Key: a.Key, Value: a.Value, HasValue: true})
		} else {
			entries = append(entries, ConfEntry{Key: a.Value})
		}
	}
	var err error
	switch {
	case len(entries) == 0:
	case cmd.Keyword == "RESETCONF":
		err = c.s.cfg.Backend.ResetConf(entries)
	default:
		err = c.s.cfg.Backend.SetConf(entries)
	}
	return c.okOr(err, "Unrecognized option")
}

func (c *conn) saveConf(cmd *Command) *Error {
	as, e := c.args(cmd, 0)
	if e != nil {
		return e
	}
	force := false
	for _, a := range as {
		if !a.HasKey && strings.EqualFold(a.Value, "FORCE") {
			force = true
		}
	}
	return c.okOr(c.s.cfg.Backend.SaveConf(force), "Unable to write configuration to disk.")
}

// signalNames are the accepted SIGNAL names: pairs of the canonical name
// and its Unix signal alias ("" for none).
var signalNames = [...]string{
	"RELOAD", "HUP",
	"SHUTDOWN", "INT",
	"DUMP", "USR1",
	"DEBUG", "USR2",
	"HALT", "TERM",
	"NEWNYM", "",
	"CLEARDNSCACHE", "",
	"HEARTBEAT", "",
	"DORMANT", "",
	"ACTIVE", "",
}

// signalName returns the canonical name of a SIGNAL argument, or "".
func signalName(s string) string {
	s = strings.ToUpper(s)
	for i, n := range signalNames {
		if n == s && n != "" {
			return signalNames[i&^1]
		}
	}
	return ""
}

func (c *conn) signal(cmd *Command) *Error {
	as, e := c.args(cmd, 1)
	if e != nil {
		return e
	}
	name := signalName(as[0].Value)
	if name == "" || as[0].HasKey || len(as) > 1 {
		return ErrorWith(CodeUnrecognizedEntity, "Unrecognized signal code", as[0].Value)
	}
	if name == "SHUTDOWN" || name == "HALT" {
		// Reply first: acting on it ends the process.
		c.ok()
		if err := c.s.cfg.Backend.Signal(name); err != nil {
			c.s.log.Warnf("Controller signal %s failed: %v", name, err)
		}
		return nil
	}
	return c.okOr(c.s.cfg.Backend.Signal(name), "Unrecognized signal code "+QuoteString(name))
}

func (c *conn) setEventsCmd(cmd *Command) *Error {
	as, e := c.args(cmd, 0)
	if e != nil {
		return e
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
			return ErrorWith(CodeUnrecognizedEntity, "Unrecognized event", a.Value)
		}
		mask |= 1 << uint(i)
	}
	// Under the write lock, so no newly subscribed event precedes the OK.
	c.reply(func(w *ReplyWriter) {
		c.setEvents(mask)
		w.End(CodeOK, "OK")
	})
	return nil
}

func (c *conn) closeCircuit(cmd *Command) *Error {
	as, e := c.args(cmd, 1)
	if e != nil {
		return e
	}
	ifUnused := false
	for _, a := range as[1:] {
		if !a.HasKey && strings.EqualFold(a.Value, "IfUnused") {
			ifUnused = true
		}
	}
	return c.okOr(c.s.cfg.Backend.CloseCircuit(as[0].Value, ifUnused), "Unknown circuit "+QuoteString(as[0].Value))
}

func (c *conn) closeStream(cmd *Command) *Error {
	as, e := c.args(cmd, 2)
	if e != nil {
		return e
	}
	reason, err := strconv.Atoi(as[1].Value)
	if err != nil || reason < 0 || reason > 255 {
		return ErrorWith(CodeUnrecognizedEntity, "Unrecognized reason", as[1].Value)
	}
	return c.okOr(c.s.cfg.Backend.CloseStream(as[0].Value, reason), "Unknown stream "+QuoteString(as[0].Value))
}

func (c *conn) addOnion(cmd *Command) *Error {
	req, err := ParseAddOnion(cmd.Args)
	if err != nil {
		return asError(err, "")
	}
	res, err := c.s.cfg.Backend.AddOnion(req)
	if err != nil {
		return asError(err, "Unable to add onion service")
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
			w.Mid(CodeOK, "PrivateKey=ED25519-V3:"+base64.StdEncoding.EncodeToString(res.PrivateKey))
		}
		w.End(CodeOK, "OK")
	})
	return nil
}

func (c *conn) delOnion(cmd *Command) *Error {
	as, e := c.args(cmd, 1)
	if e != nil {
		return e
	}
	id := as[0].Value
	if len(as) != 1 || as[0].HasKey || !ValidOnionV3(id) {
		return errMalformedOnionID
	}
	own := slices.Index(c.onions, id)
	c.s.mu.Lock()
	detached := c.s.detach[id]
	c.s.mu.Unlock()
	if own < 0 && !detached {
		return errUnknownOnionID
	}
	if err := c.s.cfg.Backend.DelOnion(id); err != nil {
		return asError(err, "Unknown Onion Service id")
	}
	if own >= 0 {
		c.onions = slices.Delete(c.onions, own, own+1)
	} else {
		c.s.mu.Lock()
		delete(c.s.detach, id)
		c.s.mu.Unlock()
	}
	c.ok()
	return nil
}

func (c *conn) clientAuthAdd(cmd *Command) *Error {
	cred, err := ParseOnionClientAuthAdd(cmd.Args)
	if err != nil {
		return asError(err, "")
	}
	res, err := c.s.cfg.Backend.OnionClientAuthAdd(cred)
	switch {
	case err != nil:
		return asError(err, "Unable to add client authorization")
	case res == ClientAuthReplaced:
		return errClientReplaced
	case res == ClientAuthDecrypted:
		return errClientDecrypted
	}
	c.ok()
	return nil
}

// onionArg returns the v3 address of a (lower case, without ".onion"), or
// the reply for a bad one: code and msg, then a.
func onionArg(a Arg, code int, msg string) (string, *Error) {
	addr := strings.ToLower(strings.TrimSuffix(a.Value, ".onion"))
	if a.HasKey || !ValidOnionV3(addr) {
		return "", ErrorWith(code, msg, a.Value)
	}
	return addr, nil
}

func (c *conn) clientAuthRemove(cmd *Command) *Error {
	as, e := c.args(cmd, 1)
	if e != nil {
		return e
	}
	addr, e := onionArg(as[0], CodeSyntaxArgs, "Invalid v3 address")
	if e != nil {
		return e
	}
	existed, err := c.s.cfg.Backend.OnionClientAuthRemove(addr)
	if err == nil && !existed {
		return ErrorWith(CodeUnnecessary, "No credentials for", addr)
	}
	return c.okOr(err, "Unable to remove client authorization")
}

func (c *conn) clientAuthView(cmd *Command) *Error {
	as, e := c.args(cmd, 0)
	if e != nil {
		return e
	}
	addr := ""
	if len(as) > 0 {
		addr, e = onionArg(as[0], CodeSyntaxArgs, "Invalid v3 address")
		if e == nil && len(as) > 1 {
			e = ErrorWith(CodeSyntaxArgs, "Invalid v3 address", as[0].Value)
		}
		if e != nil {
			return e
		}
	}
	creds, err := c.s.cfg.Backend.OnionClientAuthView(addr)
	if err != nil {
		return asError(err, "Unable to list client authorization")
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
	return nil
}

func (c *conn) hsFetch(cmd *Command) *Error {
	as, e := c.args(cmd, 1)
	if e != nil {
		return e
	}
	addr, e := onionArg(as[0], CodeUnrecognizedArg, "Invalid argument")
	if e != nil {
		return e
	}
	var servers []string
	for _, a := range as[1:] {
		if !a.HasKey || !strings.EqualFold(a.Key, "SERVER") {
			return ErrorWith(CodeUnrecognizedArg, "Invalid argument", keyValue(a))
		}
		servers = append(servers, a.Value)
	}
	return c.okOr(c.s.cfg.Backend.HSFetch(addr, servers), "Unable to fetch descriptor")
}

// useFeature accepts the features that are always on since Tor 0.2.2.1.
func (c *conn) useFeature(cmd *Command) *Error {
	as, e := c.args(cmd, 0)
	if e != nil {
		return e
	}
	for _, a := range as {
		if f := strings.ToUpper(a.Value); a.HasKey || a.Quoted || f != "VERBOSE_NAMES" && f != "EXTENDED_EVENTS" {
			return ErrorWith(CodeUnrecognizedEntity, "Unrecognized feature", a.Value)
		}
	}
	c.ok()
	return nil
}

func (c *conn) takeOwnership(*Command) *Error {
	if c.releaseOwner == nil {
		release, err := c.s.cfg.Backend.TakeOwnership()
		if err != nil {
			return asError(err, "Unable to take ownership")
		}
		c.releaseOwner = release
	}
	c.ok()
	return nil
}
