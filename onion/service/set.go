package service

import (
	"context"
	"errors"
	"reflect"
	"slices"

	"tinytor/tor/config"
	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
)

// Set runs the onion services of a torrc (its HiddenServiceDir sections)
// and follows the torrc across reloads: Apply starts the services that a
// new configuration adds, stops those it removes, and restarts one whose
// section changed, leaving the others untouched (C tor on SIGHUP).
type Set struct {
	ctx  context.Context
	net  Network
	opts Options

	mu      lock.Mutex
	running map[string]*running // by HiddenServiceDir
}

// running is one started service.
type running struct {
	cfg    config.HiddenService // the section as configured
	svc    *Service
	cancel context.CancelFunc
	done   chan struct{}
}

// NewSet returns an empty Set whose services run until ctx ends; opts are
// the settings every service shares (Options.Config is set per service).
func NewSet(ctx context.Context, n Network, opts Options) *Set {
	return &Set{ctx: ctx, net: n, opts: opts, running: map[string]*running{}}
}

// Apply makes the running services those of cfgs: a section whose
// HiddenServiceDir is new is started, one that is gone is stopped, one
// that changed is stopped and started again with its new settings, and
// the others keep running untouched. New services are opened (keys
// loaded or created) before anything is stopped: if one cannot be, Apply
// returns its error and the running set is unchanged.
func (s *Set) Apply(cfgs []config.HiddenService) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]config.HiddenService{}
	for _, hc := range cfgs {
		want[hc.Dir] = hc
	}
	added := map[string]*Service{}
	for dir, hc := range want {
		if s.running[dir] != nil {
			continue
		}
		svc, err := s.open(hc)
		if err != nil {
			for _, svc := range added {
				svc.Close()
			}
			return err
		}
		added[dir] = svc
	}
	var errs []error
	for dir, r := range s.running {
		hc, keep := want[dir]
		switch {
		case !keep:
			s.opts.Log.Noticef("Onion service %s in %s is no longer configured; stopping it.", r.svc.Address(), dir)
			r.stop()
			delete(s.running, dir)
		case !sameSection(r.cfg, hc):
			s.opts.Log.Noticef("Onion service %s in %s has new settings; restarting it.", r.svc.Address(), dir)
			r.stop()
			delete(s.running, dir)
			svc, err := s.open(hc)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s.running[dir] = s.start(hc, svc)
		}
	}
	for dir, svc := range added {
		s.running[dir] = s.start(want[dir], svc)
	}
	return errors.Join(errs...)
}

// open opens the service of one section.
func (s *Set) open(hc config.HiddenService) (*Service, error) {
	o := s.opts
	o.Config = hc
	svc, err := New(s.net, o)
	if err != nil {
		return nil, errfmt.Errorf("Onion service: %w", err)
	}
	s.opts.Log.Noticef("Onion service %s configured in %s.", svc.Address(), hc.Dir)
	return svc, nil
}

// sameSection reports whether two HiddenServiceDir sections are equal.
func sameSection(a, b config.HiddenService) bool {
	pa, pb := a.Ports, b.Ports
	a.Ports, b.Ports = nil, nil
	return slices.Equal(pa, pb) && reflect.DeepEqual(a, b)
}

// start runs svc, opened from section hc, until the Set's context ends or it is stopped.
func (s *Set) start(hc config.HiddenService, svc *Service) *running {
	ctx, cancel := context.WithCancel(s.ctx)
	r := &running{cfg: hc, svc: svc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := svc.Run(ctx); err != nil {
			s.opts.Log.Warnf("Onion service %s stopped: %v", svc.Address(), err)
		}
	}()
	return r
}

// stop ends the service and waits until its circuits and key store are
// closed.
func (r *running) stop() {
	r.cancel()
	<-r.done
}

// Stop stops every service and waits for them.
func (s *Set) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for dir, r := range s.running {
		r.stop()
		delete(s.running, dir)
	}
}

// Services returns the running services.
func (s *Set) Services() []*Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Service, 0, len(s.running))
	for _, r := range s.running {
		out = append(out, r.svc)
	}
	return out
}
