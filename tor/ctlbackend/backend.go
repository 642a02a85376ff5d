// Package ctlbackend answers the control port (package control) with the
// Tor client (package tor) and the torrc (package config): GETINFO keys,
// GETCONF/SETCONF/RESETCONF/SAVECONF over the option table, SIGNALs, and
// the translation of the event bus into control-port events (HS_DESC and
// log events included). The onion-service commands are reached through the
// Onion interface, which the onion side implements (package onion/ctl).
package ctlbackend

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"tinytor/tor"
	"tinytor/tor/addrmap"
	"tinytor/tor/bridge"
	"tinytor/tor/circmgr"
	"tinytor/tor/config"
	"tinytor/tor/control"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Backend answers the control port.
var _ control.Backend = (*Backend)(nil)

// NewNymInterval is how often NEWNYM takes effect at most (C tor's
// MAX_SIGNEWNYM_RATE); requests in between are deferred.
const NewNymInterval = 10 * time.Second

// Config is what a Backend works with.
type Config struct {
	// Client is the Tor client. It need not be running.
	Client *tor.Client
	// Log receives the backend's messages; nil discards them.
	Log *torlog.Logger
	// Version is what GETINFO version and PROTOCOLINFO report.
	Version string
	// Sources says where the configuration was read from: GETCONF reads
	// the layers again after a reload, SETCONF builds on them, SAVECONF
	// writes Sources.TorrcPath().
	Sources config.Sources
	// Apply makes a configuration built by SETCONF or RESETCONF live (logs,
	// listeners, client). An error leaves the old configuration in force.
	// Nil refuses SETCONF.
	Apply func(*config.Config) error
	// Reload rereads the torrc as SIGHUP does (SIGNAL RELOAD).
	Reload func()
	// Shutdown stops the process (SIGNAL SHUTDOWN and HALT, and the end of
	// an owning controller's connection).
	Shutdown func()
	// Listeners returns the addresses GETINFO net/listeners/<kind>
	// reports, for kind "socks", "control" or "metrics"; nil reports none.
	Listeners func(kind string) []string
	// Write stores the torrc for SAVECONF; nil means
	// control.WriteFileAtomic.
	Write control.WriteFunc
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AddrMap is the client's address map, for MAPADDRESS and GETINFO
	// address-mappings/*; nil refuses them.
	AddrMap *addrmap.Map
	// Onion answers the onion-service commands (ADD_ONION, DEL_ONION,
	// ONION_CLIENT_AUTH_*, HSFETCH, GETINFO onions/*); nil refuses them.
	Onion Onion
}

// Backend implements control.Backend. Create it with New.
type Backend struct {
	cfg   Config
	log   *torlog.Logger
	start time.Time

	confMu lock.Mutex
	built  *config.Config // the configuration layers/ctl describe
	layers [][]config.Line
	ctl    []config.Line // SETCONF/RESETCONF lines, above the other layers

	nymMu      lock.Mutex
	lastNym    time.Time
	nymPending *time.Timer
	closed     bool

	dormant bool
	emitMu  lock.Mutex
	emit    Emitter
}

// New returns a Backend for cfg. The torrc layers are read from
// cfg.Sources now.
func New(cfg Config) (*Backend, error) {
	if cfg.Client == nil {
		return nil, errors.New("ctlbackend: no client")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Write == nil {
		cfg.Write = control.WriteFileAtomic
	}
	l := cfg.Log
	if l == nil {
		l = torlog.Discard()
	}
	b := &Backend{cfg: cfg, log: l, start: cfg.Now()}
	layers, err := config.ReadLayers(cfg.Sources)
	if err != nil {
		return nil, errfmt.Errorf("ctlbackend: reading the configuration: %w", err)
	}
	b.layers, b.built = layers, cfg.Client.Config()
	return b, nil
}

// Close cancels a deferred NEWNYM.
func (b *Backend) Close() {
	b.nymMu.Lock()
	b.closed = true
	if b.nymPending != nil {
		b.nymPending.Stop()
		b.nymPending = nil
	}
	b.nymMu.Unlock()
}

func boolString(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// relay answers ns/id and md/id for a fingerprint written as C tor
// accepts it ("$HEX", "HEX", or with "~nickname").
func (b *Backend) relay(fp string) (ns, md string, err error) {
	id, ok := parseFingerprint(fp)
	if ok {
		ns, md, ok = b.relayStatus(id)
	}
	if !ok {
		return "", "", control.ErrorWith(control.CodeUnrecognizedEntity, "Unrecognized key", fp)
	}
	return ns, md, nil
}

func parseFingerprint(s string) (id [20]byte, ok bool) {
	s = strings.TrimPrefix(s, "$")
	if i := strings.IndexAny(s, "~="); i >= 0 {
		s = s[:i]
	}
	if len(s) != 40 {
		return id, false
	}
	for i := range 20 {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return id, false
		}
		id[i] = byte(v)
	}
	return id, true
}

// Replies for features the process was started without.
var (
	errNoReload   = &control.Error{Code: control.CodeInternal, Msg: "reloading is not available"}
	errNoShutdown = &control.Error{Code: control.CodeInternal, Msg: "shutting down is not available"}
)

// Signal implements control.Backend.
func (b *Backend) Signal(name string) error {
	switch name {
	case "RELOAD":
		if b.cfg.Reload == nil {
			return errNoReload
		}
		b.cfg.Reload()
	case "SHUTDOWN", "HALT":
		if b.cfg.Shutdown == nil {
			return errNoShutdown
		}
		b.log.Noticef("Controller requested %s. Exiting.", strings.ToLower(name))
		b.cfg.Shutdown()
	case "NEWNYM":
		b.newNym()
	case "CLEARDNSCACHE":
		// tinytor resolves every name at the exit and keeps no cache.
		b.log.Infof("CLEARDNSCACHE: tinytor keeps no DNS cache; nothing to clear.")
	case "HEARTBEAT", "DUMP":
		b.heartbeat()
	case "DORMANT", "ACTIVE":
		b.nymMu.Lock()
		b.dormant = name == "DORMANT"
		b.nymMu.Unlock()
		b.log.Noticef("Controller sent %s; tinytor has no dormant mode yet and keeps running normally.", name)
	default:
		return &control.Error{Code: control.CodeUnrecognizedEntity, Msg: "Unrecognized signal code " + control.QuoteString(name) + ": not supported by tinytor"}
	}
	b.emitEvent(control.Event{Type: "SIGNAL", Body: name})
	return nil
}

// newNym applies NEWNYM now, or, within NewNymInterval of the last one,
// schedules it for the end of that interval, as C tor does.
func (b *Backend) newNym() {
	b.nymMu.Lock()
	defer b.nymMu.Unlock()
	now := b.cfg.Now()
	if b.lastNym.IsZero() || now.Sub(b.lastNym) >= NewNymInterval {
		b.lastNym = now
		b.cfg.Client.NewNym()
		return
	}
	delay := b.lastNym.Add(NewNymInterval).Sub(now)
	if b.nymPending == nil && !b.closed {
		b.nymPending = time.AfterFunc(delay, func() {
			b.nymMu.Lock()
			if !b.closed {
				b.nymPending = nil
				b.lastNym = b.cfg.Now()
				b.cfg.Client.NewNym()
			}
			b.nymMu.Unlock()
		})
	}
	secs := int((delay + time.Second - 1) / time.Second)
	b.log.Noticef("Rate limiting NEWNYM request: delaying by %d second(s)", secs)
}

// heartbeat logs a line like C tor's heartbeat.
func (b *Backend) heartbeat() {
	c := b.cfg.Client
	up := b.cfg.Now().Sub(b.start).Truncate(time.Second)
	r, w := c.Traffic()
	b.log.Noticef("Heartbeat: Tor's uptime is %s, with %d circuits open. I've sent %d kB and received %d kB.",
		up, len(c.Circuits()), w/1024, r/1024)
}

// CloseCircuit implements control.Backend.
func (b *Backend) CloseCircuit(id string, ifUnused bool) error {
	n, err := strconv.ParseUint(id, 10, 64)
	if err == nil {
		err = b.cfg.Client.CloseCircuit(n, ifUnused)
		if errors.Is(err, circmgr.ErrCircuitInUse) {
			return nil // C tor leaves a used circuit alone and says OK
		}
		if !errors.Is(err, circmgr.ErrUnknownCircuit) {
			return err
		}
	}
	return control.ErrorWith(control.CodeUnrecognizedEntity, "Unknown circuit", id)
}

// CloseStream implements control.Backend.
func (b *Backend) CloseStream(id string, reason int) error {
	n, err := strconv.ParseUint(id, 10, 64)
	if err == nil {
		err = b.cfg.Client.CloseStream(n)
		if !errors.Is(err, tor.ErrUnknownStream) {
			return err // nil, or a 551 reply
		}
	}
	return control.ErrorWith(control.CodeUnrecognizedEntity, "Unknown stream", id)
}

// TakeOwnership implements control.Backend: the process exits when the
// owning connection closes.
func (b *Backend) TakeOwnership() (func(), error) {
	if b.cfg.Shutdown == nil {
		return nil, errNoShutdown
	}
	return func() {
		b.log.Noticef("Owning controller connection has closed -- exiting now.")
		b.cfg.Shutdown()
	}, nil
}

// bridgeDownload formats the SerializedDownloadStatus of the bridge
// descriptor for identity digest fp (control-spec GETINFO
// downloads/bridge/<Digest>), with C tor's values for bridge descriptors:
// any cache will do, the delay grows on each attempt, at random.
func bridgeDownload(bs []bridge.Status, fp string) (string, error) {
	if bs == nil {
		return "", errNoBridges
	}
	for _, br := range bs {
		if !strings.EqualFold(hex.EncodeToString(br.Identity[:]), fp) {
			continue
		}
		attempts := strconv.Itoa(br.Attempts)
		return "next-attempt-at " + br.NextAttempt.UTC().Format(time.DateTime) +
			"\nn-download-failures " + strconv.Itoa(br.Failures) +
			"\nn-download-attempts " + attempts +
			"\nschedule DL_SCHED_BRIDGE\nwant-authority DL_WANT_ANY_DIRSERVER\nincrement-on DL_SCHED_INCREMENT_ATTEMPT\nbackoff DL_SCHED_RANDOM_EXPONENTIAL" +
			"\nlast-backoff-position " + attempts + "\nlast-delay-used 0", nil
	}
	return "", &control.Error{Code: control.CodeUnrecognizedEntity, Msg: "Unknown bridge " + fp}
}
