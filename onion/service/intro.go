package service

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"time"

	"tinytor/onion/desc"
	"tinytor/onion/hscell"
	"tinytor/tor/cell"
	"tinytor/tor/circmgr"
	"tinytor/tor/circuit"
	"tinytor/tor/dir"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/path"
	"tinytor/tor/rng"
)

// Introduction point limits, as C tor's hs_service.c uses them.
const (
	introMinLifetime   = 18 * time.Hour
	introMaxLifetime   = 24 * time.Hour
	introMinIntroduce2 = 16384
	introMaxIntroduce2 = 32768
	introEstablishWait = 30 * time.Second
	introRetryBackoff  = 5 * time.Second
	replayCacheMax     = 32768
)

// introPoint is one introduction point: a relay, a circuit to it and the
// per-point keys.
type introPoint struct {
	node    *path.Node
	hop     circuit.HopInfo
	authKey ed25519.PrivateKey
	encKey  *ecdh.PrivateKey
	replay  *hscell.ReplayCache

	expires  time.Time
	maxIntro int

	mu          lock.Mutex
	circ        *circuit.Circuit
	established bool
	dead        bool
	introduced  int
	estab       chan struct{} // closed on INTRO_ESTABLISHED
	estabOnce   sync.Once
}

func (ip *introPoint) isEstablished() bool {
	ip.mu.Lock()
	ok := ip.established && !ip.dead
	ip.mu.Unlock()
	return ok
}

// descriptorEntry describes the point for the descriptor.
func (ip *introPoint) descriptorEntry() desc.NewIntroPoint {
	return desc.NewIntroPoint{
		LinkSpecs: hscell.HopLinkSpecs(&ip.hop),
		OnionKey:  ip.hop.NtorKey,
		AuthKey:   ip.authKey.Public().(ed25519.PublicKey),
		EncKey:    ecdhPublic(ip.encKey),
	}
}

// maintainIntros drops dead or worn-out introduction points and starts
// establishing new ones up to the configured number.
func (s *Service) maintainIntros(ctx context.Context) {
	view := s.net.NetworkView()
	now := s.now()
	s.mu.Lock()
	kept := s.intros[:0]
	removed := false
	for _, ip := range s.intros {
		ip.mu.Lock()
		worn := ip.introduced >= ip.maxIntro || now.After(ip.expires)
		dead := ip.dead
		wasEstablished := ip.established
		circ := ip.circ
		ip.mu.Unlock()
		if dead || (worn && wasEstablished) {
			if circ != nil {
				circ.Close()
			}
			if wasEstablished {
				removed = true
			}
			why := "its circuit closed"
			if !dead {
				why = "it served its share"
			}
			s.log.Infof("Onion service %s: introduction point %s is retired (%s); replacing it.", s.short, ip.node.Nickname, why)
			continue
		}
		kept = append(kept, ip)
	}
	s.intros = kept
	if removed {
		s.version++
	}
	need := s.opts.Config.NumIntroductionPoints - len(s.intros)
	var used []*path.Node
	for _, ip := range s.intros {
		used = append(used, ip.node)
	}
	s.mu.Unlock()
	if view == nil || ctx.Err() != nil {
		return
	}
	for ; need > 0; need-- {
		n := pickIntroNode(view, used, s.rng)
		if n == nil {
			if !s.noRelayWarned {
				s.noRelayWarned = true
				s.log.Warnf("Onion service %s: no relay left to use as an introduction point (%d wanted, %d in use).",
					s.short, s.opts.Config.NumIntroductionPoints, len(used))
			}
			return
		}
		s.noRelayWarned = false
		used = append(used, n)
		ip, err := newIntroPoint(n, now, s.rng)
		if err != nil {
			s.log.Warnf("Onion service %s: %v", s.short, err)
			return
		}
		s.mu.Lock()
		s.intros = append(s.intros, ip)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.establish(ctx, ip)
		}()
	}
}

func newIntroPoint(n *path.Node, now time.Time, r *rng.Source) (*introPoint, error) {
	_, auth, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, errfmt.Errorf("introduction point auth key: %w", err)
	}
	enc, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, errfmt.Errorf("introduction point encryption key: %w", err)
	}
	life := introMinLifetime + time.Duration(r.Int64N(int64(introMaxLifetime-introMinLifetime)))
	return &introPoint{
		node:     n,
		hop:      circmgr.TargetNode(n).Hop,
		authKey:  auth,
		encKey:   enc,
		replay:   hscell.NewReplayCache(replayCacheMax, introMaxLifetime),
		expires:  now.Add(life),
		maxIntro: introMinIntroduce2 + r.IntN(introMaxIntroduce2-introMinIntroduce2),
		estab:    make(chan struct{}),
	}, nil
}

// pickIntroNode chooses a relay that can be an introduction point
// (Running, Valid, HSIntro=4 for ed25519 auth keys, preferably Stable),
// not already used.
func pickIntroNode(view *path.Dir, used []*path.Node, r *rng.Source) *path.Node {
	var cands []*path.Node
	for _, n := range view.Nodes {
		if !n.Flags.Has(dir.FlagRunning) || !n.Flags.Has(dir.FlagValid) || n.Flags.Has(dir.FlagBadExit) {
			continue
		}
		if n.Protocols != nil && !n.Protocols.Supports(dir.ProtoHSIntro, 4) {
			continue
		}
		skip := false
		for _, u := range used {
			if u.Identity == n.Identity {
				skip = true
				break
			}
		}
		if !skip {
			cands = append(cands, n)
		}
	}
	// Like C tor (CRN_NEED_UPTIME), prefer Stable relays; a young test
	// network may have none.
	var stable []*path.Node
	for _, n := range cands {
		if n.Flags.Has(dir.FlagStable) {
			stable = append(stable, n)
		}
	}
	if len(stable) > 0 {
		cands = stable
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[r.IntN(len(cands))]
}

// establish builds the introduction circuit and sends ESTABLISH_INTRO; on
// failure it marks the point dead so that maintainIntros replaces it.
func (s *Service) establish(ctx context.Context, ip *introPoint) {
	err := s.establishOnce(ctx, ip)
	if err == nil {
		return
	}
	if ctx.Err() == nil {
		s.log.Infof("Onion service %s: introduction point %s failed: %v", s.short, ip.node.Nickname, err)
		// Counted as pending during the pause, so no replacement is
		// built at once.
		select {
		case <-ctx.Done():
		case <-time.After(introRetryBackoff):
		}
	}
	ip.mu.Lock()
	ip.dead = true
	ip.mu.Unlock()
	s.signal()
}

func (s *Service) establishOnce(ctx context.Context, ip *introPoint) error {
	bctx, cancel := context.WithTimeout(ctx, 2*introEstablishWait)
	defer cancel()
	circ, err := s.net.BuildCircuitTo(bctx, circmgr.TargetNode(ip.node), circmgr.Options{
		Purpose: "HS_SERVICE_INTRO",
		Control: func(hop int, cmd cell.RelayCommand, sid uint16, data []byte) {
			s.introControl(ctx, ip, hop, cmd, data)
		},
	})
	if err != nil {
		return errfmt.Errorf("building the circuit: %w", err)
	}
	ip.mu.Lock()
	ip.circ = circ
	ip.mu.Unlock()
	kh, err := circ.KH(-1)
	if err != nil {
		circ.Close()
		return err
	}
	body, err := hscell.BuildEstablishIntro(ip.authKey, nil, kh[:])
	if err != nil {
		circ.Close()
		return err
	}
	if err := circ.SendRelay(-1, cell.RelayEstablishIntro, 0, body); err != nil {
		circ.Close()
		return errfmt.Errorf("sending ESTABLISH_INTRO: %w", err)
	}
	t := time.NewTimer(introEstablishWait)
	defer t.Stop()
	select {
	case <-ip.estab:
	case <-circ.Done():
		return errfmt.Errorf("circuit closed before INTRO_ESTABLISHED: %w", circ.Err())
	case <-t.C:
		circ.Close()
		return errfmt.Errorf("no INTRO_ESTABLISHED within %v", introEstablishWait)
	case <-ctx.Done():
		circ.Close()
		return ctx.Err()
	}
	ip.mu.Lock()
	ip.established = true
	ip.mu.Unlock()
	s.mu.Lock()
	s.version++
	s.mu.Unlock()
	s.log.Infof("Onion service %s: introduction point %s established.", s.short, ip.node.Nickname)
	s.signal()
	// Watch the circuit: when it dies the point is replaced.
	select {
	case <-circ.Done():
		ip.mu.Lock()
		ip.dead = true
		ip.mu.Unlock()
		s.signal()
	case <-ctx.Done():
	}
	return nil
}

// introControl receives the relay cells of an introduction circuit on
// its goroutine.
func (s *Service) introControl(ctx context.Context, ip *introPoint, hop int, cmd cell.RelayCommand, data []byte) {
	switch cmd {
	case cell.RelayIntroEstablished:
		if _, err := hscell.ParseIntroEstablished(data); err != nil {
			s.log.Infof("Onion service %s: bad INTRO_ESTABLISHED: %v", s.short, err)
		}
		ip.estabOnce.Do(func() { close(ip.estab) })
	case cell.RelayIntroduce2:
		body := append([]byte(nil), data...)
		ip.mu.Lock()
		ip.introduced++
		ip.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleIntroduce2(ctx, ip, body)
		}()
	default:
		s.log.Debugf("Onion service %s: ignoring %s on an introduction circuit.", s.short, cmd)
	}
}

// closeIntros closes every introduction circuit.
func (s *Service) closeIntros() {
	s.mu.Lock()
	for _, ip := range s.intros {
		ip.mu.Lock()
		if ip.circ != nil {
			ip.circ.Close()
		}
		ip.dead = true
		ip.mu.Unlock()
	}
	s.intros = nil
	s.mu.Unlock()
}
