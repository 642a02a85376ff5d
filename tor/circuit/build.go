package circuit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"tinytor/tor/cell"
	"tinytor/tor/circuit/handshake"
	"tinytor/tor/errfmt"
)

// HopInfo describes a relay to use as a hop.
type HopInfo struct {
	// RSAID is the SHA-1 fingerprint of the relay's RSA identity key.
	RSAID [20]byte
	// Ed25519ID is the relay's Ed25519 identity; all zero if unknown.
	Ed25519ID [32]byte
	// NtorKey is the relay's ntor onion key (curve25519).
	NtorKey [32]byte
	// Addrs are the relay's ORPort addresses (one IPv4 and/or one IPv6),
	// used as EXTEND2 link specifiers.
	Addrs []netip.AddrPort
	// NtorV3 makes the handshake ntor v3 (proposal 332, CREATE2/EXTEND2
	// type 3) with an empty extension list; it needs Ed25519ID.
	NtorV3 bool
	// CongestionControl makes the handshake ntor v3 with a congestion
	// control request (proposal 324 10.3): for the hop that will carry
	// streams (an exit) when it advertises FlowCtrl=2 and Relay=4 and the
	// consensus cc_alg is not 0 (see CCParams.Enabled). If the relay
	// accepts, the hop uses congestion control and its streams XON/XOFF
	// flow control; if not, fixed windows. It needs Ed25519ID: without
	// one the handshake is plain ntor and the windows fixed.
	CongestionControl bool
}

// name is the relay's fingerprint in C tor's log style.
func (h *HopInfo) name() string { return fmt.Sprintf("$%X", h.RSAID) }

// hopHandshake starts the handshake h asks for: ntor v3 (with the
// congestion control request if wanted) or ntor. It returns the pending
// hop and the handshake type and data for CREATE2/EXTEND2.
func (c *Circuit) hopHandshake(h *HopInfo) (*pendingHop, uint16, []byte, error) {
	p := &pendingHop{name: h.name(), result: make(chan error, 1)}
	if (h.NtorV3 || h.CongestionControl) && h.Ed25519ID != ([32]byte{}) {
		req := handshake.NtorV3Request{CongestionControl: h.CongestionControl}
		msg, err := req.Marshal()
		if err != nil {
			return nil, 0, nil, errfmt.Errorf("circuit: %w", err)
		}
		hs, skin, err := handshake.NewNtorV3(c.cfg.Rand, h.Ed25519ID, h.NtorKey, msg)
		if err != nil {
			return nil, 0, nil, errfmt.Errorf("circuit: %w", err)
		}
		p.v3 = &ntorV3Finisher{hs: hs, req: req}
		p.hs = p.v3
		return p, cell.HandshakeNtor3, skin, nil
	}
	if h.NtorV3 || h.CongestionControl {
		c.log.Infof("Circuit %d: no Ed25519 identity for %s: ntor instead of ntor v3, fixed windows", c.id, p.name)
	}
	hs, skin, err := handshake.NewNtor(c.cfg.Rand, h.RSAID, h.NtorKey)
	if err != nil {
		return nil, 0, nil, errfmt.Errorf("circuit: %w", err)
	}
	p.hs = hs
	return p, cell.HandshakeNtor, skin[:], nil
}

// CreateFast builds a one-hop circuit to the relay at the other end of ch
// with CREATE_FAST (tor-spec 5.1.5), for directory fetches when no ntor
// key is known yet.
func CreateFast(ctx context.Context, ch Channel, cfg Config) (*Circuit, error) {
	c, err := newCircuit(ch, cfg)
	if err != nil {
		return nil, err
	}
	hs, x, err := handshake.NewFast(c.cfg.Rand)
	if err != nil {
		return nil, errfmt.Errorf("circuit: %w", err)
	}
	cl := c.pool.Get()
	cl.Command = cell.CreateFast
	(&cell.CreateFastMsg{X: x}).MarshalTo(&cl.Payload)
	if err := c.create(ctx, hs, cl); err != nil {
		return nil, errfmt.Errorf("circuit: CREATE_FAST: %w", err)
	}
	c.log.Debugf("Circuit %d: CREATE_FAST done", c.id)
	return c, nil
}

// Create builds a one-hop circuit to the relay at the other end of ch with
// a CREATE2 handshake (tor-spec 5.1, 5.1.4): ntor, or ntor v3 if h asks for
// it.
func Create(ctx context.Context, ch Channel, h HopInfo, cfg Config) (*Circuit, error) {
	c, err := newCircuit(ch, cfg)
	if err != nil {
		return nil, err
	}
	p, htype, skin, err := c.hopHandshake(&h)
	if err != nil {
		return nil, err
	}
	cl := c.pool.Get()
	cl.Command = cell.Create2
	if err := (&cell.Create2Msg{HandshakeType: htype, HandshakeData: skin}).MarshalTo(&cl.Payload); err != nil {
		c.pool.Put(cl)
		return nil, errfmt.Errorf("circuit: CREATE2: %w", err)
	}
	if err := c.createPending(ctx, p, cl); err != nil {
		return nil, errfmt.Errorf("circuit: CREATE2 to %X: %w", h.RSAID, err)
	}
	c.log.Debugf("Circuit %d: CREATE2 (type %d) done", c.id, htype)
	return c, nil
}

// create sends the CREATE* cell cl and waits for the first hop.
func (c *Circuit) create(ctx context.Context, hs finisher, cl *cell.Cell) error {
	return c.createPending(ctx, &pendingHop{hs: hs, result: make(chan error, 1)}, cl)
}

// createPending is create for a prepared pending hop.
func (c *Circuit) createPending(ctx context.Context, p *pendingHop, cl *cell.Cell) error {
	c.pending = p
	if err := c.open(); err != nil {
		c.pool.Put(cl)
		return err
	}
	cl.CircID = c.id
	if err := c.ch.Send(cl); err != nil {
		c.shutdown(errfmt.Errorf("sending: %w", err), false, true)
		return errfmt.Errorf("sending: %w", err)
	}
	if err := c.waitPending(ctx, p); err != nil {
		c.fail(err)
		if cerr := c.Err(); cerr != nil && !errors.Is(cerr, err) {
			return errfmt.Errorf("%w (%v)", err, cerr)
		}
		return err
	}
	return nil
}

// Extend adds a hop with an EXTEND2 cell (in a RELAY_EARLY cell) carrying
// an ntor handshake (ntor v3 if h asks for it), sent to the current last hop (tor-spec 5.1.2). If the
// EXTEND2 was sent and the extension then fails (or ctx ends), the circuit
// is closed.
func (c *Circuit) Extend(ctx context.Context, h HopInfo) error {
	c.extending.Lock()
	defer c.extending.Unlock()
	p, htype, skin, err := c.hopHandshake(&h)
	if err != nil {
		return err
	}
	msg := cell.Extend2Msg{Create2Msg: cell.Create2Msg{HandshakeType: htype, HandshakeData: skin}}
	// Link specifier order recommended by tor-spec 5.1.2: IPv4, legacy
	// identity, Ed25519 identity, IPv6.
	var v6 []cell.LinkSpec
	for _, a := range h.Addrs {
		if a.Addr().Unmap().Is4() {
			msg.Specs = append(msg.Specs, cell.LinkSpecAddr(a))
		} else {
			v6 = append(v6, cell.LinkSpecAddr(a))
		}
	}
	if len(msg.Specs) == 0 && len(v6) == 0 {
		return errors.New("circuit: EXTEND2 needs an address of the next relay")
	}
	msg.Specs = append(msg.Specs, cell.LinkSpecRSAID(h.RSAID))
	if h.Ed25519ID != ([32]byte{}) {
		msg.Specs = append(msg.Specs, cell.LinkSpecEdID(h.Ed25519ID))
	}
	msg.Specs = append(msg.Specs, v6...)
	body, err := msg.AppendTo(nil)
	if err != nil {
		return errfmt.Errorf("circuit: %w", err)
	}

	c.mu.Lock()
	switch {
	case c.err != nil:
		err = c.err
	case len(c.hops) == 0:
		err = errors.New("circuit: cannot extend a circuit with no hops")
	case len(c.hops) >= MaxHops:
		err = errfmt.Errorf("circuit: already %d hops", len(c.hops))
	case c.early >= MaxRelayEarly:
		err = errfmt.Errorf("circuit: all %d RELAY_EARLY cells used", MaxRelayEarly)
	default:
		c.pending = p
		err = c.sendLocked(len(c.hops)-1, cell.RelayExtend2, 0, body, true)
		if err != nil {
			c.pending = nil
		}
	}
	n := len(c.hops)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.waitPending(ctx, p); err != nil {
		c.fail(errfmt.Errorf("extending to hop %d: %w", n+1, err))
		return errfmt.Errorf("circuit: extending to %X: %w", h.RSAID, err)
	}
	c.log.Debugf("Circuit %d: extended to hop %d", c.id, n+1)
	return nil
}
