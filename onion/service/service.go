// Package service hosts v3 onion services (rend-spec-v3): it keeps the
// service's keys in its HiddenServiceDir in C tor's format, keeps
// introduction points established, builds and uploads descriptors to the
// responsible HSDirs, answers INTRODUCE2 cells with rendezvous circuits and
// connects the streams clients open on them to the configured targets.
//
// It works over a Network (a *tor.Client) and the pure building blocks of
// onion/addr, onion/keys, onion/ring, onion/desc, onion/hsntor and
// onion/hscell.
package service

import (
	"context"
	"crypto/ecdh"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tinytor/board/state"
	"tinytor/onion/addr"
	"tinytor/onion/desc"
	"tinytor/onion/keys"
	"tinytor/onion/pow"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/config"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/lock"
	"tinytor/tor/path"
	"tinytor/tor/rng"
	"tinytor/tor/torlog"
)

// Names of the files in a HiddenServiceDir, as C tor names them.
const (
	SecretKeyFile        = "hs_ed25519_secret_key"
	PublicKeyFile        = "hs_ed25519_public_key"
	HostnameFile         = "hostname"
	AuthorizedClientsDir = "authorized_clients"
)

// DefaultIntroPoints is HiddenServiceNumIntroductionPoints' default.
const DefaultIntroPoints = 3

// Network is what a service needs from the Tor client (*tor.Client has
// these methods).
type Network interface {
	NetworkView() *path.Dir
	BuildCircuitTo(ctx context.Context, t circmgr.Target, opts circmgr.Options) (*circuit.Circuit, error)
}

// Options are the settings of one service.
type Options struct {
	// Config is the service's torrc section.
	Config config.HiddenService
	// Testing is TestingTorNetwork: time periods are one SRV protocol run.
	Testing bool
	Log     *torlog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time

	// Key, when set, makes the service ephemeral (ADD_ONION): its identity
	// key lives in memory only, Config.Dir must be empty, nothing is
	// written to disk, and ClientKeys replace the authorized_clients
	// directory.
	Key *keys.SigningKey
	// ClientKeys are the x25519 public keys of the clients an ephemeral
	// service authorizes (ClientAuthV3); none means no client
	// authorization. Only used with Key.
	ClientKeys [][32]byte
	// Events, when set, receives the service's descriptor upload events
	// (*event.HSDesc with Service set: UPLOAD, UPLOADED, FAILED).
	Events *event.Bus
	// PoWStats, when set, receives a service's proof-of-work counters
	// every second (for the MetricsPort); onion is the address without
	// ".onion".
	PoWStats func(onion string, st pow.Stats)
	// Rand picks the introduction points, their lifetimes and the
	// descriptor republish times: the Tor client's generator, so that the
	// process has one; nil gives the service its own, seeded from
	// crypto/rand once.
	Rand *rng.Source
}

// Service is one onion service.
type Service struct {
	net   Network
	opts  Options
	log   *torlog.Logger
	now   func() time.Time
	store *state.Store
	rng   *rng.Source

	id      *keys.SigningKey
	address addr.Address
	// short is the address prefix used in logs (C tor logs the full
	// address only at debug level).
	short   string
	clients [][32]byte // authorized client x25519 keys; none: no client auth

	// wg counts the service's goroutines; Run waits for them.
	wg sync.WaitGroup
	// rendSlots bounds concurrent rendezvous builds.
	rendSlots chan struct{}
	// rendBuilding counts the rendezvous circuits being built.
	rendBuilding atomic.Int32
	// pow is the proof-of-work defense (HiddenServicePoWDefensesEnabled),
	// nil without; powWake tells its dequeuer of a queued introduction.
	pow     *pow.Defense
	powWake chan struct{}
	// noRelayWarned: the lack of intro point relays was logged (only Run's
	// goroutine touches it).
	noRelayWarned bool

	mu      lock.Mutex
	intros  []*introPoint
	version int // bumped whenever the set of established intro points changes
	// changed is signalled when an intro point is established or dies.
	changed chan struct{}
	pub     publishState
	// powParams are the pow-params for the next descriptors (nil without
	// defenses).
	powParams *desc.PoWParams
}

// New opens (creating it if needed) the service's HiddenServiceDir, loads
// or creates its identity key in C tor's format, writes the hostname file
// and reads the authorized clients. It does not touch the network: call
// Run.
func New(n Network, opts Options) (*Service, error) {
	if opts.Log == nil {
		opts.Log = torlog.Discard()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		r, err := rng.New()
		if err != nil {
			return nil, errfmt.Errorf("onion service: %w", err)
		}
		opts.Rand = r
	}
	hc := &opts.Config
	name := hc.Dir
	if opts.Key != nil {
		name = "(ephemeral)"
		if hc.Dir != "" {
			return nil, errfmt.Errorf("onion service %s: an in-memory key and a HiddenServiceDir exclude each other", hc.Dir)
		}
	}
	if hc.Version != 0 && hc.Version != 3 {
		return nil, errfmt.Errorf("onion service %s: HiddenServiceVersion %d is not supported (only 3)", name, hc.Version)
	}
	if len(hc.Ports) == 0 {
		return nil, errfmt.Errorf("onion service %s: no HiddenServicePort", name)
	}
	if hc.NumIntroductionPoints <= 0 {
		hc.NumIntroductionPoints = DefaultIntroPoints
	}
	s := &Service{net: n, opts: opts, log: opts.Log, now: opts.Now, rng: opts.Rand, changed: make(chan struct{}, 1), rendSlots: make(chan struct{}, maxRendPending)}
	if opts.Key != nil {
		a, err := addr.FromKey(opts.Key.Public())
		if err != nil {
			return nil, errfmt.Errorf("onion service %s: %w", name, err)
		}
		s.id, s.address, s.short = opts.Key, a, a.Host()[:10]+"..."
		seen := map[[32]byte]bool{}
		for _, k := range opts.ClientKeys {
			if !seen[k] {
				seen[k] = true
				s.clients = append(s.clients, k)
			}
		}
		return s, nil
	}
	if err := s.loadKeys(); err != nil {
		return nil, err
	}
	clients, err := readAuthorizedClients(filepath.Join(hc.Dir, AuthorizedClientsDir))
	if err != nil {
		s.store.Close()
		return nil, errfmt.Errorf("onion service %s: %w", hc.Dir, err)
	}
	s.clients = clients
	if hc.PoWDefensesEnabled {
		if err := s.startPoW(); err != nil {
			s.store.Close()
			return nil, errfmt.Errorf("onion service %s: %w", hc.Dir, err)
		}
	}
	return s, nil
}

// Close releases a service that will not Run (Run closes it itself).
func (s *Service) Close() error { return s.closeStore() }

// closeStore closes the key store of a service kept on disk.
func (s *Service) closeStore() error {
	if s.store == nil {
		return nil
	}
	return s.store.Close()
}

// Address returns the service's onion address.
func (s *Service) Address() addr.Address { return s.address }

// loadKeys opens the directory's store and loads or creates the keys.
func (s *Service) loadKeys() error {
	dir := s.opts.Config.Dir
	mode := fs.FileMode(0o600)
	if s.opts.Config.DirGroupReadable {
		mode = 0o640
	}
	st, err := state.Open(dir, state.Options{Log: s.log, FileMode: mode})
	if err != nil {
		return errfmt.Errorf("onion service directory %s: %w", dir, err)
	}
	dirMode := fs.FileMode(0o700)
	if s.opts.Config.DirGroupReadable {
		dirMode = 0o750
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		st.Close()
		return errfmt.Errorf("onion service directory %s: %w", dir, err)
	}
	s.store = st
	if err := s.loadKeysFrom(st); err != nil {
		st.Close()
		return errfmt.Errorf("onion service %s: %w", dir, err)
	}
	return nil
}

// loadKeysFrom reads the identity key from st, or generates and writes
// it, and writes the public key and hostname files where they differ.
func (s *Service) loadKeysFrom(st *state.Store) error {
	b, err := st.ReadRaw(SecretKeyFile)
	switch {
	case err == nil:
		if s.id, err = keys.ParseSecretKeyFile(b); err != nil {
			return errfmt.Errorf("%s: %w", SecretKeyFile, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if s.id, err = keys.GenerateKey(); err != nil {
			return errfmt.Errorf("generating a key: %w", err)
		}
		if err := writeKeyFile(st, SecretKeyFile, s.id.SecretKeyFile(), state.Secret); err != nil {
			return err
		}
		s.log.Noticef("Generated a new v3 onion service key in %s", s.opts.Config.Dir)
	default:
		return errfmt.Errorf("reading %s: %w", SecretKeyFile, err)
	}
	if s.address, err = addr.FromKey(s.id.Public()); err != nil {
		return err
	}
	s.short = s.address.Host()[:10] + "..."
	if err := writeKeyFile(st, PublicKeyFile, keys.PublicKeyFile(s.id.Public())); err != nil {
		return err
	}
	return writeKeyFile(st, HostnameFile, []byte(s.address.String()+"\n"))
}

// writeKeyFile writes the raw file name of st unless it holds b already.
func writeKeyFile(st *state.Store, name string, b []byte, flags ...state.Flag) error {
	if old, err := st.ReadRaw(name); err == nil && string(old) == string(b) {
		return nil
	}
	if err := st.WriteNow(name, b, append(flags, state.Raw)...); err != nil {
		return errfmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// readAuthorizedClients reads every "*.auth" file of dir (C tor's
// authorized_clients): "descriptor:x25519:<base32 key>". A missing
// directory means no client authorization.
func readAuthorizedClients(dir string) ([][32]byte, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, errfmt.Errorf("reading %s: %w", dir, err)
	}
	var out [][32]byte
	seen := map[[32]byte]bool{}
	for _, e := range ents { // os.ReadDir sorts by name
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".auth") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, errfmt.Errorf("reading %s: %w", p, err)
		}
		pk, err := keys.ParseAuthorizedClient(b)
		if err != nil {
			return nil, errfmt.Errorf("authorized client file %s: %w", p, err)
		}
		k := [32]byte(pk.Bytes())
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, nil
}

// Run keeps the service published until ctx ends: introduction points,
// descriptor uploads, rendezvous. It closes the service's circuits and
// its key store when it returns.
func (s *Service) Run(ctx context.Context) error {
	defer s.closeStore()
	defer s.wg.Wait()
	defer s.closeIntros()
	s.log.Noticef("Onion service %s starting (%d introduction points, %d authorized clients).",
		s.short, s.opts.Config.NumIntroductionPoints, len(s.clients))
	if s.pow != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runPoWQueue(ctx)
		}()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s.maintainIntros(ctx)
		if s.pow != nil {
			s.powTick()
		}
		s.maybePublish(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.changed:
		}
	}
}

// signal wakes Run.
func (s *Service) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// ecdhPublic returns the bytes of an x25519 public key.
func ecdhPublic(k *ecdh.PrivateKey) [32]byte { return [32]byte(k.PublicKey().Bytes()) }
