package client

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"tinytor/onion/addr"
	"tinytor/onion/desc"
	"tinytor/onion/hscell"
	"tinytor/onion/hsntor"
	"tinytor/tor"
	"tinytor/tor/cell"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/path"
	"tinytor/tor/torlog"
)

// connect returns a rendezvous circuit joined to the service a, whose
// last (virtual) hop is the service. The rendezvous point is established
// while the descriptor is fetched (it does not depend on it). When every
// introduction point fails, the descriptor is dropped and fetched again
// once, as C tor does.
func (c *Client) connect(ctx context.Context, a addr.Address) (*circuit.Circuit, error) {
	name := a.String()
	start := time.Now()
	m := c.newRendezvous(ctx, a)
	var joined *circuit.Circuit
	defer func() { m.close(joined) }()
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		d, err := c.descriptor(ctx, a)
		if err != nil {
			return nil, err
		}
		fetched := time.Since(start)
		circ, err := c.rendezvous(ctx, a, d, m, attempt > 0)
		if err == nil {
			c.log.Infof("Joined onion service %s at rendezvous point %s after %d ms (descriptor after %d ms).",
				name[:8], m.rp.node.Nickname, time.Since(start).Milliseconds(), fetched.Milliseconds())
			joined = circ
			return circ, nil
		}
		lastErr = err
		var oe *Error
		if ctx.Err() != nil || !errors.As(err, &oe) || (oe.Kind != IntroFailed && oe.Kind != IntroTimeout) {
			return nil, err
		}
		c.log.Infof("Every introduction point of %s failed; fetching its descriptor again.", name[:8])
		c.forget(d)
	}
	return nil, lastErr
}

// rendPoint is our end of a rendezvous circuit.
type rendPoint struct {
	node        *path.Node
	cookie      [hscell.CookieLen]byte
	established chan struct{} // closed on RENDEZVOUS_ESTABLISHED
	joined      chan error    // RENDEZVOUS2 outcome; buffered
	estOnce     sync.Once

	mu   lock.Mutex
	circ *circuit.Circuit
	hs   *hsntor.Client // the handshake RENDEZVOUS2 completes
}

// control receives the rendezvous circuit's onion service cells, on the
// circuit goroutine: adding the virtual hop there means no later cell
// can be decrypted without it.
func (r *rendPoint) control(hop int, cmd cell.RelayCommand, _ uint16, data []byte) {
	switch cmd {
	case cell.RelayRendezvousEstablished:
		r.estOnce.Do(func() { close(r.established) })
	case cell.RelayRendezvous2:
		r.mu.Lock()
		hs, circ := r.hs, r.circ
		r.hs = nil
		r.mu.Unlock()
		var err error
		if hs == nil || circ == nil || hop != circ.Len()-1 {
			err = errfmt.Errorf("unexpected RENDEZVOUS2 from hop %d", hop+1)
		} else {
			err = join(circ, hs, data)
		}
		select {
		case r.joined <- err:
		default:
		}
	}
}

// join completes the hs-ntor handshake from a RENDEZVOUS2 body and adds
// the virtual hop (SHA3-256 digests, AES-256-CTR; rend-spec-v3 4.2.1).
func join(circ *circuit.Circuit, hs *hsntor.Client, body []byte) error {
	info, err := hscell.ParseRendezvous2(body)
	if err != nil {
		return err
	}
	k, _, err := hs.Complete(info)
	if err != nil {
		return err
	}
	l, err := k.Layer(false)
	if err != nil {
		return err
	}
	return circ.AddHop(l)
}

// buildRend builds a circuit to a random rendezvous point and
// establishes the rendezvous there (rend-spec-v3 3.4).
func (c *Client) buildRend(ctx context.Context) (*rendPoint, error) {
	view := c.cfg.Net.NetworkView()
	if view == nil {
		return nil, tor.ErrNotBootstrapped
	}
	cands := view.Candidates(path.Middle, &path.Options{}, nil)
	kept := cands[:0:0]
	for _, n := range cands {
		if n.Protocols != nil && n.Protocols.Supports(dir.ProtoHSRend, 2) {
			kept = append(kept, n)
		}
	}
	var node *path.Node
	var err error
	c.withRand(func(r *randT) { node, err = path.Pick(r, view.Consensus, kept, path.Middle) })
	if err != nil {
		return nil, errfmt.Errorf("choosing a rendezvous point: %w", err)
	}
	r := &rendPoint{node: node, established: make(chan struct{}), joined: make(chan error, 1)}
	if _, err := io.ReadFull(c.cfg.Rand, r.cookie[:]); err != nil {
		return nil, errfmt.Errorf("rendezvous cookie: %w", err)
	}
	circ, err := c.cfg.Net.BuildCircuitTo(ctx, circmgr.TargetNode(node), circmgr.Options{Purpose: "HS_CLIENT_REND", Control: r.control})
	if err != nil {
		return nil, errfmt.Errorf("building a circuit to rendezvous point %s: %w", node.Nickname, err)
	}
	r.mu.Lock()
	r.circ = circ
	r.mu.Unlock()
	if err := circ.SendRelay(-1, cell.RelayEstablishRendezvous, 0, hscell.BuildEstablishRendezvous(r.cookie)); err != nil {
		circ.Close()
		return nil, errfmt.Errorf("sending ESTABLISH_RENDEZVOUS to %s: %w", node.Nickname, err)
	}
	select {
	case <-r.established:
		return r, nil
	case <-circ.Done():
		return nil, errfmt.Errorf("rendezvous circuit to %s: %w", node.Nickname, circ.Err())
	case <-ctx.Done():
		circ.Close()
		return nil, ctx.Err()
	}
}

// rendResult is the outcome of buildRend.
type rendResult struct {
	r   *rendPoint
	err error
}

// rendezvous keeps one established rendezvous point for a connection
// attempt, building it in the background and again (up to
// maxRendAttempts) when it fails.
type rendezvous struct {
	c        *Client
	addr     string
	ctx      context.Context
	cancel   context.CancelFunc
	pending  chan rendResult
	inFlight bool
	attempts int
	rp       *rendPoint
}

// newRendezvous starts building a rendezvous point.
func (c *Client) newRendezvous(ctx context.Context, a addr.Address) *rendezvous {
	m := &rendezvous{c: c, addr: a.String(), pending: make(chan rendResult, 1)}
	m.ctx, m.cancel = context.WithCancel(ctx)
	m.launch()
	return m
}

func (m *rendezvous) launch() {
	m.inFlight = true
	m.attempts++
	go func() {
		r, err := m.c.buildRend(m.ctx)
		m.pending <- rendResult{r, err}
	}()
}

// get returns an established rendezvous point, building a new one if the
// last failed.
func (m *rendezvous) get() (*rendPoint, error) {
	for {
		if m.rp != nil && m.rp.circ.Err() == nil {
			return m.rp, nil
		}
		m.rp = nil
		if !m.inFlight {
			if m.attempts >= maxRendAttempts {
				return nil, errorf(RendFailed, m.addr, "%d rendezvous circuits failed", m.attempts)
			}
			m.launch()
		}
		var res rendResult
		select {
		case res = <-m.pending:
			m.inFlight = false
		case <-m.ctx.Done():
			return nil, m.ctx.Err()
		}
		if res.err != nil {
			m.c.log.Infof("Rendezvous for %s failed: %v", m.addr[:8], res.err)
			if err := m.ctx.Err(); err != nil {
				return nil, err
			}
			continue
		}
		m.rp = res.r
	}
}

// close stops building and closes every rendezvous circuit but keep (the
// one joined to the service, if any).
func (m *rendezvous) close(keep *circuit.Circuit) {
	m.cancel()
	if m.inFlight {
		if res := <-m.pending; res.r != nil && res.r.circ != keep {
			res.r.circ.Close()
		}
		m.inFlight = false
	}
	if m.rp != nil && m.rp.circ != keep {
		m.rp.circ.Close()
	}
}

// rendezvous meets the service: with the rendezvous point of m (built in
// parallel with the introduction circuits), it sends INTRODUCE1 through
// the introduction points in random order until one accepts, and waits
// for the service's RENDEZVOUS2. Introduction points that failed lately
// are left out (C tor's intro_point_is_usable); when all did, it fails
// so that the caller fetches the descriptor again, unless fresh (the
// descriptor was just fetched again): then their failures are forgotten
// and all are tried.
func (c *Client) rendezvous(ctx context.Context, a addr.Address, d *desc.Descriptor, m *rendezvous, fresh bool) (*circuit.Circuit, error) {
	name := a.String()
	all := d.Inner.IntroPoints
	if len(all) == 0 {
		return nil, errorf(IntroFailed, name, "the descriptor lists no usable introduction point")
	}
	if c.log.Enabled(torlog.Info) {
		names := make([]string, 0, len(all))
		for i := range all {
			if t, err := introTarget(&all[i]); err == nil {
				names = append(names, t.Nickname)
			}
		}
		c.log.Infof("Introduction points of %s: %s.", name[:8], strings.Join(names, " "))
	}
	ips := c.fails.usableIntros(a.Key, all)
	switch {
	case len(ips) == 0 && !fresh:
		return nil, errorf(IntroFailed, name, "all %d introduction points failed lately", len(all))
	case len(ips) == 0:
		c.log.Infof("Every introduction point of %s in its new descriptor failed lately; trying them again.", name[:8])
		c.fails.forgetIntros(a.Key)
		ips = append(ips, all...)
	case len(ips) < len(all):
		c.log.Infof("Leaving out %d of the %d introduction points of %s, which failed lately.", len(all)-len(ips), len(all), name[:8])
	}
	c.withRand(func(r *randT) { r.Shuffle(len(ips), func(i, j int) { ips[i], ips[j] = ips[j], ips[i] }) })
	c.fails.orderIntros(a.Key, ips)

	var timedOut bool
	var errs []error
	for i := range ips {
		ip := &ips[i]
		t, err := introTarget(ip)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for try := 0; try < maxIntroCircuitRetries; try++ {
			c.log.Infof("Introducing to %s through %s.", name[:8], t.Nickname)
			circ, final, err := c.introduce(ctx, a, d, ip, t, m.get)
			if circ != nil {
				return circ, nil
			}
			if err := ctx.Err(); err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					// Out of time during the introduction, as C tor
					// answers when its SocksTimeout ends there.
					return nil, &Error{Kind: IntroTimeout, Addr: name, Err: err}
				}
				return nil, errfmt.Errorf("onion service: %w", err)
			}
			var oe *Error
			if errors.As(err, &oe) && oe.Kind == RendFailed {
				return nil, err
			}
			c.noteIntroFailure(a.Key, ip, err, final)
			if errors.As(err, &oe) && oe.Kind == IntroTimeout {
				timedOut = true
			}
			c.log.Infof("Introduction to %s through %s failed: %v", name[:8], t.Nickname, err)
			errs = append(errs, err)
			if final || !c.fails.introUsable(a.Key, ip.AuthKey) {
				break
			}
		}
	}
	kind := IntroFailed
	if timedOut {
		kind = IntroTimeout
	}
	return nil, &Error{Kind: kind, Addr: name, Err: errfmt.Errorf("all %d introduction points failed: %w", len(ips), errors.Join(errs...))}
}

// introduce makes one introduction attempt through ip. final reports
// that retrying this introduction point is useless (it answered, rather
// than being unreachable).
func (c *Client) introduce(ctx context.Context, a addr.Address, d *desc.Descriptor, ip *desc.IntroPoint, t circmgr.Target,
	getRend func() (*rendPoint, error)) (joined *circuit.Circuit, final bool, err error) {
	name := a.String()
	// Solve the service's puzzle, if it asks for one, while the
	// introduction circuit is built (C tor solves once it is built).
	var powExt chan powResult
	if in, ok := c.powInput(a.Key, d, ip); ok {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		powExt = make(chan powResult, 1)
		go func() {
			ext, err := c.solvePoW(pctx, name[:8], in)
			powExt <- powResult{ext, err}
		}()
	}
	ack := make(chan []byte, 1)
	ic, err := c.cfg.Net.BuildCircuitTo(ctx, t, circmgr.Options{Purpose: "HS_CLIENT_INTRO", Control: func(_ int, cmd cell.RelayCommand, _ uint16, data []byte) {
		if cmd == cell.RelayIntroduceAck {
			select {
			case ack <- append([]byte(nil), data...):
			default:
			}
		}
	}})
	if err != nil {
		return nil, false, errorf(IntroFailed, name, "building a circuit to the introduction point: %w", err)
	}
	defer ic.Close()
	rp, err := getRend()
	if err != nil {
		return nil, true, err
	}
	hs, err := hsntor.NewClient(c.cfg.Rand, ip.AuthKey, ip.EncKey, d.Subcredential)
	if err != nil {
		return nil, true, errorf(IntroFailed, name, "hs-ntor: %w", err)
	}
	var exts []hscell.Extension
	if powExt != nil {
		var res powResult
		select {
		case res = <-powExt:
		case <-ic.Done():
			return nil, false, errorf(IntroFailed, name, "introduction circuit closed while solving the proof of work: %w", ic.Err())
		}
		if res.err != nil {
			if err := ctx.Err(); err != nil {
				return nil, true, err
			}
			return nil, true, errorf(IntroFailed, name, "proof of work: %w", res.err)
		}
		exts = append(exts, res.ext)
	}
	rpHop := circmgr.HopInfo(rp.node)
	body, err := hscell.BuildIntroduce1(hs, ip.AuthKey, &hscell.IntroducePlaintext{
		Extensions:   exts,
		Cookie:       rp.cookie,
		OnionKeyType: hscell.OnionKeyTypeNtor,
		OnionKey:     rp.node.MD.NtorOnionKey,
		LinkSpecs:    hscell.HopLinkSpecs(&rpHop),
	})
	if err != nil {
		return nil, true, errorf(IntroFailed, name, "building INTRODUCE1: %w", err)
	}
	rp.mu.Lock()
	rp.hs = hs
	rp.mu.Unlock()
	if err := ic.SendRelay(-1, cell.RelayIntroduce1, 0, body); err != nil {
		return nil, false, errorf(IntroFailed, name, "sending INTRODUCE1: %w", err)
	}
	ackWait, rendWait := c.introWaits()
	timer := time.NewTimer(ackWait)
	defer timer.Stop()
	select {
	case b := <-ack:
		status, _, err := hscell.ParseIntroduceAck(b)
		if err != nil {
			return nil, true, errorf(IntroFailed, name, "INTRODUCE_ACK: %w", err)
		}
		if status != hscell.AckSuccess {
			return nil, true, errorf(IntroFailed, name, "INTRODUCE_ACK status %d", status)
		}
	case <-ic.Done():
		return nil, false, errorf(IntroFailed, name, "introduction circuit closed: %w", ic.Err())
	case <-timer.C:
		return nil, true, errorf(IntroTimeout, name, "no INTRODUCE_ACK within %s", ackWait)
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
	ic.Close()
	timer.Reset(rendWait)
	select {
	case err := <-rp.joined:
		if err != nil {
			return nil, true, errorf(RendFailed, name, "RENDEZVOUS2: %w", err)
		}
		return rp.circ, true, nil
	case <-rp.circ.Done():
		return nil, true, errorf(RendFailed, name, "rendezvous circuit closed: %w", rp.circ.Err())
	case <-timer.C:
		// The service could not reach this rendezvous point (C tor expires
		// a rendezvous circuit waiting for RENDEZVOUS2 the same way): the
		// next introduction gets a new one.
		rp.circ.Close()
		return nil, true, errorf(IntroTimeout, name, "no RENDEZVOUS2 within %s of the introduction", rendWait)
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
}

// introTarget turns an introduction point's link specifiers and onion key
// into a circuit target. It needs the RSA identity and an address; an
// ed25519 identity is used when present.
func introTarget(ip *desc.IntroPoint) (circmgr.Target, error) {
	return targetFromLinkSpecs(ip.LinkSpecs, ip.OnionKey)
}

func targetFromLinkSpecs(specs []cell.LinkSpec, onionKey [32]byte) (circmgr.Target, error) {
	h, err := hscell.HopFromLinkSpecs(specs, onionKey)
	if err != nil {
		return circmgr.Target{}, errfmt.Errorf("introduction point: %w", err)
	}
	return circmgr.Target{Hop: h, Nickname: "$" + strings.ToUpper(hex.EncodeToString(h.RSAID[:4]))}, nil
}
