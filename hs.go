package main

import (
	"context"
	"fmt"
	"sync"

	"tinytor/onion/service"
	"tinytor/tor"
	"tinytor/tor/config"
	"tinytor/tor/event"
	"tinytor/tor/torlog"
)

// startOnionServices starts the onion services of the torrc
// (HiddenServiceDir sections). The returned function stops them and waits
// until they have closed their circuits and key stores. Their descriptor
// upload events (HS_DESC) go to events.
func startOnionServices(ctx context.Context, cfg *config.Config, client *tor.Client, log *torlog.Logger, events *event.Bus) (stop func(), err error) {
	var svcs []*service.Service
	for _, hc := range cfg.HiddenServices {
		s, err := service.New(client, service.Options{Config: hc, Testing: cfg.TestingTorNetwork, Log: log, Events: events})
		if err != nil {
			for _, s := range svcs {
				s.Close()
			}
			return nil, fmt.Errorf("Onion service: %w", err)
		}
		log.Noticef("Onion service %s configured in %s.", s.Address(), hc.Dir)
		svcs = append(svcs, s)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil {
				log.Warnf("Onion service %s stopped: %v", s.Address(), err)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }, nil
}
