package ctlbackend

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
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
)

// hsFetchTimeout bounds one HSFETCH.
const hsFetchTimeout = 2 * time.Minute

// ephemeral is an onion service added with ADD_ONION.
type ephemeral struct {
	svc      *service.Service
	detached bool
	cancel   context.CancelFunc
	done     chan struct{} // closed when the service's Run returned
}

// onions holds the backend's ephemeral services and background work.
type onions struct {
	mu     sync.Mutex
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	svcs   map[string]*ephemeral // by service ID
	unsub  func()
}

// initOnions prepares the onion state and subscribes to the onion
// client's descriptor events.
func (b *Backend) initOnions() {
	b.on.ctx, b.on.cancel = context.WithCancel(context.Background())
	b.on.svcs = map[string]*ephemeral{}
	if b.cfg.Onion != nil {
		b.on.unsub = b.cfg.Onion.OnDescEvent(func(e onionclient.DescEvent) {
			auth := "NO_AUTH"
			if e.ClientAuth {
				auth = "CLIENT_AUTH"
			}
			b.emitEvent(control.HSDescEvent{
				Action:       e.Action,
				Address:      e.Address,
				AuthType:     auth,
				HSDir:        longNameOrEmpty(e.HSDir),
				DescriptorID: e.DescriptorID,
				Reason:       e.Reason,
			}.Event())
		})
	}
}

// closeOnions stops every ephemeral service and HSFETCH and waits for
// them.
func (b *Backend) closeOnions() {
	b.on.mu.Lock()
	if b.on.unsub != nil {
		b.on.unsub()
		b.on.unsub = nil
	}
	b.on.mu.Unlock()
	b.on.cancel()
	b.on.wg.Wait()
}

// AddOnion implements control.Backend: it starts an ephemeral v3 onion
// service whose key lives in memory only.
func (b *Backend) AddOnion(req *control.AddOnionRequest) (*control.AddOnionResult, error) {
	if req.NonAnonymous {
		return nil, control.Errorf(551, "Non-anonymous onion services are not supported by tinytor")
	}
	var key *keys.SigningKey
	var err error
	if req.NewKey {
		key, err = keys.GenerateKey()
	} else {
		key, err = keys.FromExpanded(req.PrivateKey)
	}
	if err != nil {
		return nil, control.Errorf(551, "Failed to generate or decode the onion service key: %v", err)
	}
	a, err := addr.FromKey(key.Public())
	if err != nil {
		return nil, control.Errorf(551, "Invalid onion service key: %v", err)
	}
	hc := config.HiddenService{
		Version:                3,
		MaxStreams:             req.MaxStreams,
		MaxStreamsCloseCircuit: req.MaxStreamsCloseCircuit,
	}
	for _, p := range req.Ports {
		hp, err := onionPort(p)
		if err != nil {
			return nil, err
		}
		hc.Ports = append(hc.Ports, hp)
	}
	id := a.Host()
	b.on.mu.Lock()
	defer b.on.mu.Unlock()
	if b.on.ctx.Err() != nil {
		return nil, control.Errorf(551, "the control backend is closed")
	}
	if _, ok := b.on.svcs[id]; ok {
		return nil, control.Errorf(550, "Onion address collision")
	}
	if b.cfg.OnionCollides != nil && b.cfg.OnionCollides(id) {
		return nil, control.Errorf(550, "Onion address collision")
	}
	svc, err := service.New(b.cfg.Client, service.Options{
		Config:     hc,
		Testing:    b.cfg.Client.Config().TestingTorNetwork,
		Log:        b.log,
		Key:        key,
		ClientKeys: req.ClientAuthV3,
		Events:     b.ServiceDescEvent,
	})
	if err != nil {
		return nil, control.Errorf(551, "Failed to add onion service: %v", err)
	}
	ctx, cancel := context.WithCancel(b.on.ctx)
	e := &ephemeral{svc: svc, detached: req.Detach, cancel: cancel, done: make(chan struct{})}
	b.on.svcs[id] = e
	b.on.wg.Add(1)
	go func() {
		defer b.on.wg.Done()
		defer close(e.done)
		if err := svc.Run(ctx); err != nil {
			b.log.Warnf("Onion service %s stopped: %v", svc.Address(), err)
		}
	}()
	b.log.Noticef("Controller added an ephemeral onion service with %d port(s) and %d authorized client(s).", len(hc.Ports), len(req.ClientAuthV3))
	res := &control.AddOnionResult{ServiceID: id}
	if req.NewKey && !req.DiscardPK {
		res.PrivateKey = key.Expanded()
	}
	return res, nil
}

// ServiceDescEvent sends an onion service's descriptor upload event to
// the controllers as HS_DESC (UPLOAD, UPLOADED, FAILED); services of the
// torrc report through it too.
func (b *Backend) ServiceDescEvent(e service.DescEvent) {
	b.emitEvent(control.HSDescEvent{
		Action:       e.Action,
		Address:      e.Address,
		AuthType:     "UNKNOWN",
		HSDir:        longNameOrEmpty(e.HSDir),
		DescriptorID: descID(e.BlindedKey),
		Reason:       e.Reason,
	}.Event())
}

// onionPort converts an ADD_ONION Port= target as C tor reads it: none
// (127.0.0.1 at the virtual port), a port, an address:port or
// unix:path.
func onionPort(p control.OnionPort) (config.HiddenServicePort, error) {
	hp := config.HiddenServicePort{VirtualPort: p.Virt}
	t := p.Target
	bad := control.Errorf(512, "Invalid VIRTPORT/TARGET: %s", control.QuoteString(strconv.Itoa(int(p.Virt))+","+t))
	switch {
	case p.Virt == 0:
		return hp, bad
	case t == "":
		hp.Target = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), p.Virt)
	case strings.HasPrefix(t, "unix:"):
		hp.Unix = strings.TrimPrefix(t, "unix:")
		if hp.Unix == "" {
			return hp, bad
		}
	default:
		if n, err := strconv.ParseUint(t, 10, 16); err == nil {
			if n == 0 {
				return hp, bad
			}
			hp.Target = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(n))
			break
		}
		ap, err := netip.ParseAddrPort(t)
		if err != nil || ap.Port() == 0 {
			return hp, bad
		}
		hp.Target = ap
	}
	return hp, nil
}

// DelOnion implements control.Backend: it stops an ephemeral service and
// waits until its circuits are closed.
func (b *Backend) DelOnion(id string) error {
	b.on.mu.Lock()
	e, ok := b.on.svcs[id]
	delete(b.on.svcs, id)
	b.on.mu.Unlock()
	if !ok {
		return control.Errorf(552, "Unknown Onion Service id")
	}
	e.cancel()
	<-e.done
	b.log.Noticef("Controller removed an ephemeral onion service.")
	return nil
}

// onionIDs lists the ephemeral services' IDs, detached or not.
//
// The control server tracks which connection owns a service; the backend
// sees all of them, so onions/current lists every non-detached service.
func (b *Backend) onionIDs(detached bool) string {
	b.on.mu.Lock()
	defer b.on.mu.Unlock()
	var ids []string
	for id, e := range b.on.svcs {
		if e.detached == detached {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return strings.Join(ids, "\n")
}

// errNoOnionClient answers client-side onion commands without an onion
// client.
var errNoOnionClient = control.Errorf(551, "the onion service client is not running")

// OnionClientAuthAdd implements control.Backend.
func (b *Backend) OnionClientAuthAdd(cred *control.OnionClientCredential) (control.ClientAuthAddResult, error) {
	if b.cfg.Onion == nil {
		return 0, errNoOnionClient
	}
	a, err := addr.Parse(cred.Address)
	if err != nil {
		return 0, control.Errorf(512, "Invalid v3 address %s", control.QuoteString(cred.Address))
	}
	k, err := ecdh.X25519().NewPrivateKey(cred.PrivateKey[:])
	if err != nil {
		return 0, control.Errorf(552, "Failed to decode x25519 private key")
	}
	replaced, err := b.cfg.Onion.AddCredential(onionclient.Credential{Address: a, Key: k, ClientName: cred.ClientName, Permanent: cred.Permanent})
	if err != nil {
		if errors.Is(err, onionclient.ErrNoAuthDir) {
			return 0, control.Errorf(553, "Unable to store creds for %s: ClientOnionAuthDir is not set", control.QuoteString(cred.Address))
		}
		return 0, control.Errorf(551, "%v", err)
	}
	if replaced {
		return control.ClientAuthReplaced, nil
	}
	return control.ClientAuthAdded, nil
}

// OnionClientAuthRemove implements control.Backend.
func (b *Backend) OnionClientAuthRemove(address string) (bool, error) {
	if b.cfg.Onion == nil {
		return false, errNoOnionClient
	}
	a, err := addr.Parse(address)
	if err != nil {
		return false, control.Errorf(512, "Invalid v3 address %s", control.QuoteString(address))
	}
	existed, err := b.cfg.Onion.RemoveCredential(a)
	if err != nil {
		return existed, control.Errorf(551, "%v", err)
	}
	return existed, nil
}

// OnionClientAuthView implements control.Backend.
func (b *Backend) OnionClientAuthView(address string) ([]control.OnionClientCredential, error) {
	if b.cfg.Onion == nil {
		return nil, errNoOnionClient
	}
	var which *addr.Address
	if address != "" {
		a, err := addr.Parse(address)
		if err != nil {
			return nil, control.Errorf(512, "Invalid v3 address %s", control.QuoteString(address))
		}
		which = &a
	}
	var out []control.OnionClientCredential
	for _, cr := range b.cfg.Onion.Credentials(which) {
		out = append(out, control.OnionClientCredential{
			Address:    cr.Address.Host(),
			PrivateKey: [32]byte(cr.Key.Bytes()),
			ClientName: cr.ClientName,
			Permanent:  cr.Permanent,
		})
	}
	return out, nil
}

// HSFetch implements control.Backend: it fetches the descriptor in the
// background; HS_DESC events report the outcome.
func (b *Backend) HSFetch(address string, servers []string) error {
	if b.cfg.Onion == nil {
		return errNoOnionClient
	}
	if len(servers) > 0 {
		return control.Errorf(551, "HSFETCH with SERVER= is not supported by tinytor: it asks the responsible HSDirs")
	}
	if _, err := addr.Parse(address); err != nil {
		return control.Errorf(513, "Invalid argument %s", control.QuoteString(address))
	}
	b.on.mu.Lock()
	defer b.on.mu.Unlock()
	if b.on.ctx.Err() != nil {
		return control.Errorf(551, "the control backend is closed")
	}
	b.on.wg.Add(1)
	go func() {
		defer b.on.wg.Done()
		ctx, cancel := context.WithTimeout(b.on.ctx, hsFetchTimeout)
		defer cancel()
		if err := b.cfg.Onion.Fetch(ctx, address); err != nil {
			b.log.Infof("HSFETCH: %v", err)
		}
	}()
	return nil
}

// longNameOrEmpty is a relay's LongName, or "" (UNKNOWN in events) for
// no relay.
func longNameOrEmpty(r tor.RelayRef) string {
	if r.ID == ([20]byte{}) {
		return ""
	}
	return r.LongName()
}

// descID formats a blinded key as HS_DESC's descriptor ID: base64
// without padding.
func descID(blinded []byte) string {
	if len(blinded) == 0 {
		return ""
	}
	return base64.RawStdEncoding.EncodeToString(blinded)
}
