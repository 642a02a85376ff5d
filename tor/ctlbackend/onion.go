package ctlbackend

import (
	"tinytor/tor/control"
	"tinytor/tor/event"
)

// Onion answers the control port's onion-service commands. The onion side
// implements it (package onion/ctl), so that this package does not depend
// on onion/.
type Onion interface {
	AddOnion(req *control.AddOnionRequest) (*control.AddOnionResult, error)
	DelOnion(id string) error
	// OnionIDs lists the ephemeral services' IDs, detached or not, one a
	// line, for GETINFO onions/current and onions/detached.
	OnionIDs(detached bool) string
	OnionClientAuthAdd(cred *control.OnionClientCredential) (control.ClientAuthAddResult, error)
	OnionClientAuthRemove(address string) (bool, error)
	OnionClientAuthView(address string) ([]control.OnionClientCredential, error)
	HSFetch(address string, servers []string) error
}

// errNoOnion answers onion commands without Config.Onion.
var errNoOnion = &control.Error{Code: control.CodeInternal, Msg: "the onion service client is not running"}

// AddOnion implements control.Backend.
func (b *Backend) AddOnion(req *control.AddOnionRequest) (*control.AddOnionResult, error) {
	if b.cfg.Onion == nil {
		return nil, errNoOnion
	}
	return b.cfg.Onion.AddOnion(req)
}

// DelOnion implements control.Backend.
func (b *Backend) DelOnion(id string) error {
	if b.cfg.Onion == nil {
		return errNoOnion
	}
	return b.cfg.Onion.DelOnion(id)
}

// onionIDs answers GETINFO onions/current and onions/detached.
func (b *Backend) onionIDs(detached bool) string {
	if b.cfg.Onion == nil {
		return ""
	}
	return b.cfg.Onion.OnionIDs(detached)
}

// OnionClientAuthAdd implements control.Backend.
func (b *Backend) OnionClientAuthAdd(cred *control.OnionClientCredential) (control.ClientAuthAddResult, error) {
	if b.cfg.Onion == nil {
		return 0, errNoOnion
	}
	return b.cfg.Onion.OnionClientAuthAdd(cred)
}

// OnionClientAuthRemove implements control.Backend.
func (b *Backend) OnionClientAuthRemove(address string) (bool, error) {
	if b.cfg.Onion == nil {
		return false, errNoOnion
	}
	return b.cfg.Onion.OnionClientAuthRemove(address)
}

// OnionClientAuthView implements control.Backend.
func (b *Backend) OnionClientAuthView(address string) ([]control.OnionClientCredential, error) {
	if b.cfg.Onion == nil {
		return nil, errNoOnion
	}
	return b.cfg.Onion.OnionClientAuthView(address)
}

// HSFetch implements control.Backend.
func (b *Backend) HSFetch(address string, servers []string) error {
	if b.cfg.Onion == nil {
		return errNoOnion
	}
	return b.cfg.Onion.HSFetch(address, servers)
}

// longNameOrEmpty is a relay's LongName, or "" (UNKNOWN in events) for
// no relay.
func longNameOrEmpty(r event.RelayRef) string {
	if r.ID == ([20]byte{}) {
		return ""
	}
	return r.LongName()
}
