package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"tinytor/onion/hscell"
	"tinytor/onion/hsntor"
	"tinytor/onion/keys"
	"tinytor/tor/cell"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/config"
	"tinytor/tor/errfmt"
)

const (
	// maxRendPending bounds the INTRODUCE2 cells being answered at once
	// (each builds a circuit); more are dropped, as C tor's DoS defenses
	// drop a flood.
	maxRendPending = 16
	rendBuildTries = 3
	rendTimeout    = time.Minute
	connectTimeout = 30 * time.Second
)

// ErrReplay is returned for an INTRODUCE2 cell seen before.
var ErrReplay = errors.New("INTRODUCE2 replayed")

// periods returns the time-period parameters and the periods descriptors
// were published for, newest last (the current ones before the first
// publication).
func (s *Service) periods() (keys.Periods, []uint64, error) {
	view := s.net.NetworkView()
	if view == nil {
		return keys.Periods{}, nil, errors.New("no network view")
	}
	p, _, err := s.timeParams(view)
	if err != nil {
		return keys.Periods{}, nil, err
	}
	s.mu.Lock()
	periods := append([]uint64(nil), s.pub.periods...)
	s.mu.Unlock()
	if len(periods) == 0 {
		tp := p.Num(view.Consensus.ValidAfter)
		periods = []uint64{tp - 1, tp, tp + 1}
	}
	return p, periods, nil
}

// subcredentials returns the subcredentials of the periods descriptors
// were published for, newest first.
func (s *Service) subcredentials() ([][32]byte, error) {
	p, periods, err := s.periods()
	if err != nil {
		return nil, err
	}
	out := make([][32]byte, 0, len(periods))
	for i := len(periods) - 1; i >= 0; i-- {
		bp, err := keys.BlindPublic(s.id.Public(), periods[i], p.LengthMinutes)
		if err != nil {
			return nil, err
		}
		out = append(out, keys.Subcredential(s.id.Public(), bp))
	}
	return out, nil
}

// handleIntroduce2 answers one INTRODUCE2: decrypt, replay check,
// rendezvous circuit, RENDEZVOUS1.
func (s *Service) handleIntroduce2(ctx context.Context, ip *introPoint, body []byte) {
	select {
	case s.rendSlots <- struct{}{}:
		defer func() { <-s.rendSlots }()
	default:
		s.log.Infof("Onion service %s: %d introductions pending; dropping an INTRODUCE2.", s.short, maxRendPending)
		return
	}
	introduce := s.introduce
	if s.pow != nil {
		introduce = s.queueIntroduction
	}
	if err := introduce(ctx, ip, body); err != nil && ctx.Err() == nil {
		s.log.Infof("Onion service %s: INTRODUCE2 via %s: %v", s.short, ip.node.Nickname, err)
	}
}

// openIntroduction decrypts an INTRODUCE2 body received on the
// introduction point with these keys and checks it against the point's
// replay cache (ErrReplay).
func openIntroduction(ip *introPoint, body []byte, subcreds [][32]byte, now time.Time) (*hsntor.Service, *hsntor.Introduction, *hscell.IntroducePlaintext, error) {
	svc := &hsntor.Service{AuthKey: ip.authKey.Public().(ed25519.PublicKey), EncKey: ip.encKey}
	in, intro, pt, err := hscell.OpenIntroduce2(body, svc, subcreds)
	if err != nil {
		return nil, nil, nil, err
	}
	if ip.replay.Seen(in.Encrypted, now) {
		return nil, nil, nil, ErrReplay
	}
	return svc, intro, pt, nil
}

// open decrypts and checks an INTRODUCE2 received on ip.
func (s *Service) open(ip *introPoint, body []byte) (*hsntor.Service, *hsntor.Introduction, *hscell.IntroducePlaintext, error) {
	subcreds, err := s.subcredentials()
	if err != nil {
		return nil, nil, nil, err
	}
	return openIntroduction(ip, body, subcreds, s.now())
}

// introduce answers an INTRODUCE2 at once (no proof-of-work defenses).
func (s *Service) introduce(ctx context.Context, ip *introPoint, body []byte) error {
	svc, intro, pt, err := s.open(ip, body)
	if err != nil {
		return err
	}
	return s.rendezvous(ctx, svc, intro, pt)
}

// rendezvous builds the circuit to the client's rendezvous point and
// sends RENDEZVOUS1 on it.
func (s *Service) rendezvous(ctx context.Context, svc *hsntor.Service, intro *hsntor.Introduction, pt *hscell.IntroducePlaintext) error {
	s.rendBuilding.Add(1)
	building := true
	defer func() {
		if building {
			s.rendBuilding.Add(-1)
		}
	}()
	hop, err := hscell.HopFromLinkSpecs(pt.LinkSpecs, pt.OnionKey)
	if err != nil {
		return errfmt.Errorf("rendezvous point: %w", err)
	}
	info, hk, _, err := svc.Respond(rand.Reader, intro)
	if err != nil {
		return errfmt.Errorf("hs-ntor: %w", err)
	}
	var circ *circuit.Circuit
	for try := 1; ; try++ {
		rctx, cancel := context.WithTimeout(ctx, rendTimeout)
		circ, err = s.net.BuildCircuitTo(rctx, circmgr.Target{Hop: hop}, circmgr.Options{Purpose: "HS_SERVICE_REND"})
		cancel()
		if err == nil {
			break
		}
		if try == rendBuildTries || ctx.Err() != nil {
			return errfmt.Errorf("rendezvous circuit: %w", err)
		}
	}
	s.rendBuilding.Add(-1)
	building = false
	layer, err := hk.Layer(true)
	if err != nil {
		circ.Close()
		return err
	}
	rc := &rendCircuit{s: s, circ: circ}
	circ.AcceptStreams(rc.accept)
	rp := circ.Len() - 1
	if err := circ.AddHop(layer); err != nil {
		circ.Close()
		return err
	}
	if err := circ.SendRelay(rp, cell.RelayRendezvous1, 0, hscell.BuildRendezvous1(pt.Cookie, info)); err != nil {
		circ.Close()
		return errfmt.Errorf("sending RENDEZVOUS1: %w", err)
	}
	s.log.Infof("Onion service %s: rendezvous circuit %d open.", s.short, circ.ID())
	// The circuit lives until the client or the network closes it, or
	// the service stops.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-circ.Done():
		case <-ctx.Done():
			circ.Close()
		}
	}()
	return nil
}

// rendCircuit is a rendezvous circuit that carries client streams.
type rendCircuit struct {
	s       *Service
	circ    *circuit.Circuit
	streams atomic.Int32
}

// accept runs on the circuit goroutine for each BEGIN from the client.
func (rc *rendCircuit) accept(st *circuit.Stream, req circuit.BeginRequest) {
	s := rc.s
	var target *config.HiddenServicePort
	for i := range s.opts.Config.Ports {
		if s.opts.Config.Ports[i].VirtualPort == req.Port {
			target = &s.opts.Config.Ports[i]
			break
		}
	}
	if target == nil {
		// As C tor: END DONE and close the circuit, so that scanning
		// ports costs a circuit per port.
		s.log.Infof("Onion service %s: refusing a stream to unknown port %d.", s.short, req.Port)
		go func() {
			st.Reject(cell.EndDone)
			rc.circ.Close()
		}()
		return
	}
	if max := s.opts.Config.MaxStreams; max > 0 && int(rc.streams.Load()) >= max {
		s.log.Infof("Onion service %s: HiddenServiceMaxStreams (%d) reached on circuit %d.", s.short, max, rc.circ.ID())
		go func() {
			st.Reject(cell.EndResourceLimit)
			if s.opts.Config.MaxStreamsCloseCircuit {
				rc.circ.Close()
			}
		}()
		return
	}
	rc.streams.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer rc.streams.Add(-1)
		rc.serve(st, *target)
	}()
}

// serve connects a stream to its target and copies both ways.
func (rc *rendCircuit) serve(st *circuit.Stream, t config.HiddenServicePort) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	var d net.Dialer // typed dials: no resolver in the binary (see tor/netlisten)
	var conn net.Conn
	var err error
	address := t.Unix
	if t.Unix != "" {
		conn, err = d.DialUnix(ctx, "unix", nil, &net.UnixAddr{Name: t.Unix, Net: "unix"})
	} else {
		target := t.Target
		if !target.IsValid() {
			target = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), t.VirtualPort)
		}
		address = target.String()
		conn, err = d.DialTCP(ctx, "tcp", netip.AddrPort{}, target)
	}
	if err != nil {
		rc.s.log.Infof("Onion service %s: connecting port %d to %s: %v", rc.s.short, t.VirtualPort, address, err)
		st.Reject(cell.EndConnectRefused)
		return
	}
	defer conn.Close()
	if err := st.Accept(); err != nil {
		st.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		// The target may keep an idle connection open: close it when the
		// circuit goes.
		select {
		case <-rc.circ.Done():
			conn.Close()
		case <-done:
		}
	}()
	go func() {
		defer close(done)
		io.Copy(conn, st)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			conn.Close()
		}
	}()
	io.Copy(st, conn)
	st.Close()
	conn.Close()
	<-done
}
