// Package ctl answers the control port's onion-service commands for
// package tor/ctlbackend, which reaches them through its Onion interface:
// ADD_ONION and DEL_ONION (ephemeral services, package onion/service),
// ONION_CLIENT_AUTH_ADD, _REMOVE and _VIEW and HSFETCH (package
// onion/client), and GETINFO onions/current and onions/detached.
package ctl

import (
	"context"
	"crypto/ecdh"
	"errors"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"tinytor/onion/addr"
	onionclient "tinytor/onion/client"
	"tinytor/onion/keys"
	"tinytor/onion/service"
	"tinytor/tor"
	"tinytor/tor/config"
	"tinytor/tor/control"
	"tinytor/tor/event"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Config is what Commands work with.
type Config struct {
	// Client builds the services' circuits.
	Client *tor.Client
	// Onion is the onion service client (ONION_CLIENT_AUTH_*, HSFETCH);
	// nil refuses those commands.
	Onion *onionclient.Client
	// Events receives the ephemeral services' HS_DESC upload events.
	Events *event.Bus
	// Log receives the commands' messages; nil discards them.
	Log *torlog.Logger
	// Collides reports whether a service ID is already hosted from the
	// torrc, so that ADD_ONION refuses it; nil means never.
	Collides func(serviceID string) bool
}

// Commands implements the onion part of the control port. Create it with
// New; Close stops the ephemeral services.
type Commands struct {
	cfg Config
	log *torlog.Logger

	mu     lock.Mutex
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	svcs   map[string]*ephemeral // by service ID
}

// New returns Commands for cfg.
func New(cfg Config) *Commands {
	c := &Commands{cfg: cfg, log: cfg.Log, svcs: map[string]*ephemeral{}}
	if c.log == nil {
		c.log = torlog.Discard()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Close stops every ephemeral service and HSFETCH and waits for them.
func (c *Commands) Close() {
	c.cancel()
	c.wg.Wait()
}

// hsFetchTimeout bounds one HSFETCH.
const hsFetchTimeout = 2 * time.Minute

// ephemeral is an onion service added with ADD_ONION.
type ephemeral struct {
	svc      *service.Service
	detached bool
	cancel   context.CancelFunc
	done     chan struct{} // closed when the service's Run returned
}

// AddOnion answers ADD_ONION: it starts an ephemeral v3 onion
// service whose key lives in memory only.
func (c *Commands) AddOnion(req *control.AddOnionRequest) (*control.AddOnionResult, error) {
	if req.NonAnonymous {
		return nil, errNonAnonymous
	}
	var key *keys.SigningKey
	var err error
	if req.NewKey {
		key, err = keys.GenerateKey()
	} else {
		key, err = keys.FromExpanded(req.PrivateKey)
	}
	if err != nil {
		return nil, control.WrapError(control.CodeInternal, "Failed to generate or decode the onion service key: ", err)
	}
	a, err := addr.FromKey(key.Public())
	if err != nil {
		return nil, control.WrapError(control.CodeInternal, "Invalid onion service key: ", err)
	}
	hc := config.HiddenService{
		Version:                3,
		MaxStreams:             req.MaxStreams,
		MaxStreamsCloseCircuit: req.MaxStreamsCloseCircuit,
	}
	for _, p := range req.Ports {
		hp, ok := onionPort(p)
		if !ok {
			return nil, control.ErrorWith(control.CodeSyntaxArgs, "Invalid VIRTPORT/TARGET:", strconv.Itoa(int(p.Virt))+","+p.Target)
		}
		hc.Ports = append(hc.Ports, hp)
	}
	id := a.Host()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return nil, errClosed
	}
	if c.svcs[id] != nil || c.cfg.Collides != nil && c.cfg.Collides(id) {
		return nil, errCollision
	}
	svc, err := service.New(c.cfg.Client, service.Options{
		Config:     hc,
		Testing:    c.cfg.Client.Config().TestingTorNetwork,
		Log:        c.log,
		Key:        key,
		ClientKeys: req.ClientAuthV3,
		Events:     c.cfg.Events,
		Rand:       c.cfg.Client.Rand(),
	})
	if err != nil {
		return nil, control.WrapError(control.CodeInternal, "Failed to add onion service: ", err)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	e := &ephemeral{svc: svc, detached: req.Detach, cancel: cancel, done: make(chan struct{})}
	c.svcs[id] = e
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(e.done)
		if err := svc.Run(ctx); err != nil {
			c.log.Warnf("Onion service %s stopped: %v", svc.Address(), err)
		}
	}()
	c.log.Noticef("Controller added an ephemeral onion service with %d port(s) and %d authorized client(s).", len(hc.Ports), len(req.ClientAuthV3))
	res := &control.AddOnionResult{ServiceID: id}
	if req.NewKey && !req.DiscardPK {
		res.PrivateKey = key.Expanded()
	}
	return res, nil
}

// onionPort converts an ADD_ONION Port= target as C tor reads it: none
// (127.0.0.1 at the virtual port), a port, an address:port or
// unix:path. ok is false for a bad one.
func onionPort(p control.OnionPort) (hp config.HiddenServicePort, ok bool) {
	hp = config.HiddenServicePort{VirtualPort: p.Virt}
	t := p.Target
	if t == "" {
		t = strconv.Itoa(int(p.Virt))
	}
	if path, unix := strings.CutPrefix(t, "unix:"); unix {
		hp.Unix = path
		return hp, p.Virt != 0 && path != ""
	}
	if n, err := strconv.ParseUint(t, 10, 16); err == nil {
		hp.Target = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(n))
	} else if hp.Target, err = netip.ParseAddrPort(t); err != nil {
		return hp, false
	}
	return hp, p.Virt != 0 && hp.Target.Port() != 0
}

// DelOnion answers DEL_ONION: it stops an ephemeral service and
// waits until its circuits are closed.
func (c *Commands) DelOnion(id string) error {
	c.mu.Lock()
	e, ok := c.svcs[id]
	delete(c.svcs, id)
	c.mu.Unlock()
	if !ok {
		return errUnknownID
	}
	e.cancel()
	<-e.done
	c.log.Noticef("Controller removed an ephemeral onion service.")
	return nil
}

// OnionIDs lists the ephemeral services' IDs, detached or not.
//
// The control server tracks which connection owns a service; the backend
// sees all of them, so onions/current lists every non-detached service.
func (c *Commands) OnionIDs(detached bool) string {
	var ids []string
	c.mu.Lock()
	for id, e := range c.svcs {
		if e.detached == detached {
			ids = append(ids, id)
		}
	}
	c.mu.Unlock()
	sort.Strings(ids)
	return strings.Join(ids, "\n")
}

// errNoOnionClient answers client-side onion commands without an onion
// client.
var errNoOnionClient = &control.Error{Code: control.CodeInternal, Msg: "the onion service client is not running"}

// Fixed replies.
var (
	errNonAnonymous = &control.Error{Code: control.CodeInternal, Msg: "Non-anonymous onion services are not supported by tinytor"}
	errClosed       = &control.Error{Code: control.CodeInternal, Msg: "the onion commands are closed"}
	errCollision    = &control.Error{Code: control.CodeUnspecified, Msg: "Onion address collision"}
	errUnknownID    = &control.Error{Code: control.CodeUnrecognizedEntity, Msg: "Unknown Onion Service id"}
	errX25519Key    = &control.Error{Code: control.CodeUnrecognizedEntity, Msg: "Failed to decode x25519 private key"}
	errServerArg    = &control.Error{Code: control.CodeInternal, Msg: "HSFETCH with SERVER= is not supported by tinytor: it asks the responsible HSDirs"}
)

// badAddress is the 512 reply to an address that is not a v3 onion
// address.
func badAddress(address string) error {
	return control.ErrorWith(control.CodeSyntaxArgs, "Invalid v3 address", address)
}

// OnionClientAuthAdd answers ONION_CLIENT_AUTH_ADD.
func (c *Commands) OnionClientAuthAdd(cred *control.OnionClientCredential) (control.ClientAuthAddResult, error) {
	if c.cfg.Onion == nil {
		return 0, errNoOnionClient
	}
	a, err := addr.Parse(cred.Address)
	if err != nil {
		return 0, badAddress(cred.Address)
	}
	k, err := ecdh.X25519().NewPrivateKey(cred.PrivateKey[:])
	if err != nil {
		return 0, errX25519Key
	}
	replaced, err := c.cfg.Onion.AddCredential(onionclient.Credential{Address: a, Key: k, ClientName: cred.ClientName, Permanent: cred.Permanent})
	if err != nil {
		if errors.Is(err, onionclient.ErrNoAuthDir) {
			return 0, &control.Error{Code: control.CodeInvalidConfig, Msg: "Unable to store creds for " + control.QuoteString(cred.Address) + ": ClientOnionAuthDir is not set"}
		}
		return 0, err
	}
	if replaced {
		return control.ClientAuthReplaced, nil
	}
	return control.ClientAuthAdded, nil
}

// OnionClientAuthRemove answers ONION_CLIENT_AUTH_REMOVE.
func (c *Commands) OnionClientAuthRemove(address string) (bool, error) {
	if c.cfg.Onion == nil {
		return false, errNoOnionClient
	}
	a, err := addr.Parse(address)
	if err != nil {
		return false, badAddress(address)
	}
	return c.cfg.Onion.RemoveCredential(a)
}

// OnionClientAuthView answers ONION_CLIENT_AUTH_VIEW.
func (c *Commands) OnionClientAuthView(address string) ([]control.OnionClientCredential, error) {
	if c.cfg.Onion == nil {
		return nil, errNoOnionClient
	}
	var which *addr.Address
	if address != "" {
		a, err := addr.Parse(address)
		if err != nil {
			return nil, badAddress(address)
		}
		which = &a
	}
	var out []control.OnionClientCredential
	for _, cr := range c.cfg.Onion.Credentials(which) {
		out = append(out, control.OnionClientCredential{
			Address:    cr.Address.Host(),
			PrivateKey: [32]byte(cr.Key.Bytes()),
			ClientName: cr.ClientName,
			Permanent:  cr.Permanent,
		})
	}
	return out, nil
}

// HSFetch answers HSFETCH: it fetches the descriptor in the
// background; HS_DESC events report the outcome.
func (c *Commands) HSFetch(address string, servers []string) error {
	if c.cfg.Onion == nil {
		return errNoOnionClient
	}
	if len(servers) > 0 {
		return errServerArg
	}
	if _, err := addr.Parse(address); err != nil {
		return control.ErrorWith(control.CodeUnrecognizedArg, "Invalid argument", address)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return errClosed
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, hsFetchTimeout)
		defer cancel()
		if err := c.cfg.Onion.Fetch(ctx, address); err != nil {
			c.log.Infof("HSFETCH: %v", err)
		}
	}()
	return nil
}
