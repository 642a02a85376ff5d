package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"time"

	"tinytor/onion/desc"
	"tinytor/onion/hsdir"
	"tinytor/onion/keys"
	"tinytor/onion/ring"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/path"
)

// Publication schedule (C tor hs_service.c).
const (
	republishMin = 60 * time.Minute
	republishMax = 120 * time.Minute
	// allIntrosWait is how long to wait for every introduction point
	// before publishing with the ones established.
	allIntrosWait  = 30 * time.Second
	uploadTimeout  = 2 * time.Minute
	maxUploadReply = 16 << 10
	uploadRetry    = 20 * time.Second
)

// publishState is what was uploaded, for deciding when to upload again.
type publishState struct {
	started   time.Time // first time intro points were wanted
	next      time.Time // scheduled republication
	version   int       // intro set version of the last upload
	uses      [2]ring.Use
	done      map[uploadKey]bool // HSDirs that have the current descriptors
	lastRev   map[[32]byte]uint64
	periods   []uint64        // periods descriptors were published for, newest last
	pow       *desc.PoWParams // the pow-params of the last upload
	hasValue  bool
	announced bool // the first successful upload was logged
}

type uploadKey struct {
	period uint64
	hsdir  [20]byte
}

// timeParams returns the consensus's time periods and shared random
// values.
func (s *Service) timeParams(view *path.Dir) (keys.Periods, ring.SRVs, error) {
	return hsdir.TimeParams(view.Consensus, s.opts.Testing)
}

// maybePublish uploads the descriptors when the intro points, the time
// period or the HSDir ring changed, or on schedule.
func (s *Service) maybePublish(ctx context.Context) {
	view := s.net.NetworkView()
	if view == nil || ctx.Err() != nil {
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := &s.pub
	if ps.started.IsZero() {
		ps.started = now
	}
	var established []*introPoint
	for _, ip := range s.intros {
		if ip.isEstablished() {
			established = append(established, ip)
		}
	}
	if len(established) == 0 {
		return
	}
	if len(established) < s.opts.Config.NumIntroductionPoints && now.Sub(ps.started) < allIntrosWait && !ps.hasValue {
		return
	}
	p, srvs, err := s.timeParams(view)
	if err != nil {
		s.log.Warnf("Onion service %s: %v", s.short, err)
		return
	}
	var uses [2]ring.Use
	uses[0], uses[1] = ring.Store(p, view.Consensus.ValidAfter, srvs)
	full := !ps.hasValue || ps.version != s.version || ps.uses != uses || !now.Before(ps.next) || ps.pow != s.powParams
	if full {
		ps.pow = s.powParams
		ps.done = map[uploadKey]bool{}
		ps.version = s.version
		ps.uses = uses
		ps.next = now.Add(republishMin + time.Duration(s.rng.Int64N(int64(republishMax-republishMin))))
		ps.hasValue = true
		if ps.lastRev == nil {
			ps.lastRev = map[[32]byte]uint64{}
		}
	}
	nodes := hsdir.Ring(view)
	params := ring.ParamsFrom(view.Consensus.Param)
	runStart := p.SRVRunStart(view.Consensus.ValidAfter)
	for i := range uses {
		u := &uses[i]
		bk := s.id.Blind(u.Period, p.LengthMinutes)
		resp := ring.Responsible(nodes, bk.Public(), *u, p.LengthMinutes, params.Replicas, params.SpreadStore)
		var todo []ring.Node
		for _, n := range resp {
			if !ps.done[uploadKey{u.Period, n.RSAID}] {
				todo = append(todo, n)
			}
		}
		if len(todo) == 0 {
			continue
		}
		start := runStart
		if i == 0 {
			start = runStart.Add(-p.SRVRunLength())
		}
		rev, err := bk.RevisionCounter(now.Sub(start))
		if err != nil {
			s.log.Warnf("Onion service %s: revision counter: %v", s.short, err)
			continue
		}
		if last, ok := ps.lastRev[bk.PublicBytes()]; ok && rev <= last {
			if !full {
				// Uploading the same descriptor to new HSDirs: reuse is
				// not possible (a fresh signing key each time), so wait
				// for the counter to move on.
				continue
			}
			rev = last + 1
		}
		doc, err := s.buildDescriptor(bk, rev, now, established)
		if err != nil {
			s.log.Warnf("Onion service %s: building the descriptor: %v", s.short, err)
			continue
		}
		ps.lastRev[bk.PublicBytes()] = rev
		s.notePeriod(u.Period)
		for _, n := range todo {
			ps.done[uploadKey{u.Period, n.RSAID}] = true
			node := view.ByID(n.RSAID)
			if node == nil {
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.upload(ctx, node, doc, u.Period, bk.Public())
			}()
		}
		s.log.Infof("Onion service %s: uploading descriptor for period %d (revision %d, %d introduction points) to %d HSDirs.",
			s.short, u.Period, rev, len(established), len(todo))
	}
}

// notePeriod remembers a period descriptors were made for (its
// subcredential is accepted in INTRODUCE2). s.mu must be held.
func (s *Service) notePeriod(period uint64) {
	for _, p := range s.pub.periods {
		if p == period {
			return
		}
	}
	s.pub.periods = append(s.pub.periods, period)
	if len(s.pub.periods) > 4 {
		s.pub.periods = s.pub.periods[len(s.pub.periods)-4:]
	}
}

// buildDescriptor makes a descriptor for one blinded key.
func (s *Service) buildDescriptor(bk *keys.SigningKey, rev uint64, now time.Time, ips []*introPoint) ([]byte, error) {
	_, signing, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, errfmt.Errorf("descriptor signing key: %w", err)
	}
	entries := make([]desc.NewIntroPoint, 0, len(ips))
	for _, ip := range ips {
		entries = append(entries, ip.descriptorEntry())
	}
	return desc.Build(desc.Params{
		Identity:          s.id.Public(),
		Blinded:           bk,
		SigningKey:        signing,
		RevisionCounter:   rev,
		Now:               now,
		IntroPoints:       entries,
		PoW:               s.powParams,
		AuthorizedClients: s.clients,
		Rand:              rand.Reader,
	})
}

// upload posts a descriptor to one HSDir over a BEGIN_DIR stream at the
// end of a 3-hop circuit. A failed upload is retried at the next
// publication.
func (s *Service) upload(ctx context.Context, n *path.Node, doc []byte, period uint64, blinded []byte) {
	ev := event.HSDesc{Action: "UPLOAD", Address: s.address.Host(), HSDir: event.RelayRef{ID: n.Identity, Nickname: n.Nickname},
		DescriptorID: strings.TrimRight(base64.StdEncoding.EncodeToString(blinded), "="), Service: true}
	s.event(ev)
	uctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	_, err := hsdir.Request(uctx, s.net, n, "HS_SERVICE_HSDIR", "/tor/hs/3/publish", doc, maxUploadReply)
	if err != nil {
		ev.Action, ev.Reason = "FAILED", "UPLOAD_REJECTED"
		s.event(ev)
		if ctx.Err() == nil {
			s.log.Infof("Onion service %s: uploading the descriptor for period %d to %s failed: %v", s.short, period, n.Nickname, err)
			// Retry after a pause (the next tick would hammer the HSDir).
			select {
			case <-ctx.Done():
				return
			case <-time.After(uploadRetry):
			}
			s.mu.Lock()
			for k := range s.pub.done {
				if k.hsdir == n.Identity && k.period == period {
					delete(s.pub.done, k)
				}
			}
			s.mu.Unlock()
		}
		return
	}
	s.log.Infof("Onion service %s: descriptor for period %d uploaded to %s.", s.short, period, n.Nickname)
	ev.Action = "UPLOADED"
	s.event(ev)
	s.mu.Lock()
	first := !s.pub.announced
	s.pub.announced = true
	s.mu.Unlock()
	if first {
		s.log.Noticef("Onion service %s is published: its descriptor reached an HSDir.", s.address)
	}
}

// event publishes a descriptor upload event on Options.Events.
func (s *Service) event(e event.HSDesc) { s.opts.Events.Publish(&e) }
