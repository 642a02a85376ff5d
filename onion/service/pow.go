package service

import (
	"context"
	"time"

	"tinytor/onion/desc"
	"tinytor/onion/keys"
	"tinytor/onion/pow"
	"tinytor/tor/circuit/handshake"
)

// Proof-of-work defenses (proposal 327), with HiddenServicePoWDefensesEnabled:
// every INTRODUCE2 is decrypted and its PoW extension verified at once
// (the "top half"), then queued by effort; a dequeuer builds the
// rendezvous circuits in effort order at the configured queue rate (the
// "bottom half"). The descriptor carries the seed and the suggested
// effort, republished when they change as C tor does.

// startPoW sets up the defenses of a service whose section enables them.
func (s *Service) startPoW() error {
	hc := s.opts.Config
	d, err := pow.NewDefense(pow.DefenseConfig{QueueRate: hc.PoWQueueRate, QueueBurst: hc.PoWQueueBurst, Now: s.now})
	if err != nil {
		return err
	}
	s.pow, s.powWake = d, make(chan struct{}, 1)
	return nil
}

// powTick rotates the seed and updates the suggested effort when due,
// and makes the next publication carry changed pow-params (Run calls it
// every second).
func (s *Service) powTick() {
	if err := s.pow.Housekeeping(); err != nil {
		s.log.Warnf("Onion service %s: proof-of-work seed: %v", s.short, err)
		return
	}
	st := s.pow.Stats()
	if f := s.opts.PoWStats; f != nil {
		f(s.address.Host(), st)
	}
	p, changed := s.pow.DescriptorParams()
	if !changed {
		return
	}
	s.mu.Lock()
	old := s.powParams
	s.powParams = &desc.PoWParams{Seed: p.Seed, SuggestedEffort: p.SuggestedEffort, Expires: p.Expires}
	s.mu.Unlock()
	switch {
	case old == nil:
		s.log.Infof("Onion service %s: proof-of-work defenses enabled (queue rate %d, burst %d).",
			s.short, s.opts.Config.PoWQueueRate, s.opts.Config.PoWQueueBurst)
	case old.Seed != p.Seed:
		s.log.Infof("Onion service %s: new proof-of-work seed; updating descriptors.", s.short)
	default:
		s.log.Infof("Suggested effort changed significantly, updating descriptors... (onion service %s: %d -> %d)",
			s.short, old.SuggestedEffort, p.SuggestedEffort)
	}
	s.signal()
}

// queueIntroduction is the top half: decrypt and check the INTRODUCE2,
// verify its proof of work, and queue the rendezvous by effort (an
// introduction without one has effort 0). An invalid solution drops the
// introduction, as in C tor.
func (s *Service) queueIntroduction(ctx context.Context, ip *introPoint, body []byte) error {
	svc, intro, pt, err := s.open(ip, body)
	if err != nil {
		return err
	}
	var effort uint32
	if ext, ok := handshake.FindExt(pt.Extensions, pow.ExtensionType); ok {
		sol, err := pow.ParseExtension(ext)
		if err == nil {
			err = s.verifyPoW(&sol)
		}
		if err != nil {
			s.log.Infof("PoW INTRODUCE2 request failed to verify. (onion service %s: %v)", s.short, err)
			return nil
		}
		s.log.Infof("PoW INTRODUCE2 request successfully verified. (onion service %s, effort %d)", s.short, sol.Effort)
		effort = sol.Effort
	}
	s.pow.Enqueue(effort, func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.rendezvous(ctx, svc, intro, pt); err != nil && ctx.Err() == nil {
				s.log.Infof("Onion service %s: rendezvous: %v", s.short, err)
			}
		}()
	})
	s.log.Infof("Enqueued rendezvous request with effort: %d. Queued requests: %d", effort, s.pow.Stats().Queued)
	select {
	case s.powWake <- struct{}{}:
	default:
	}
	return nil
}

// verifyPoW checks a solution against the blinded keys of the periods
// the service published descriptors for (its introduction points serve
// them all).
func (s *Service) verifyPoW(sol *pow.Solution) error {
	blinded, err := s.blindedKeys()
	if err != nil {
		return err
	}
	return s.pow.Verify(sol, blinded...)
}

// blindedKeys returns the blinded public keys of the periods descriptors
// were published for, newest first.
func (s *Service) blindedKeys() ([][pow.IDLen]byte, error) {
	p, periods, err := s.periods()
	if err != nil {
		return nil, err
	}
	out := make([][pow.IDLen]byte, 0, len(periods))
	for i := len(periods) - 1; i >= 0; i-- {
		bp, err := keys.BlindPublic(s.id.Public(), periods[i], p.LengthMinutes)
		if err != nil {
			return nil, err
		}
		out = append(out, [pow.IDLen]byte(bp))
	}
	return out, nil
}

// runPoWQueue is the bottom half: it launches the queued rendezvous in
// the order and at the pace the defense allows, until ctx ends.
func (s *Service) runPoWQueue(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		launch, wait := s.pow.Next(int(s.rendBuilding.Load()))
		if launch != nil {
			launch()
			continue
		}
		var retry <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			retry = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.powWake:
		case <-retry:
		}
	}
}
