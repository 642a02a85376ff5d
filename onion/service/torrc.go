package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"tinytor/tor/config"
)

// StartAll starts the onion services that cfgs (the torrc's
// HiddenServiceDir sections) describe, each with opts and its own Config,
// and runs them until ctx ends or stop is called. stop waits until they
// have closed their circuits and key stores. If one cannot start, none
// is left running.
func StartAll(ctx context.Context, n Network, cfgs []config.HiddenService, opts Options) (stop func(), err error) {
	log := opts.Log
	var svcs []*Service
	for _, hc := range cfgs {
		o := opts
		o.Config = hc
		s, err := New(n, o)
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

// TorrcIDs are the service IDs (the address without ".onion") of the
// services cfgs describe, read from the hostname files their directories
// hold; a service whose file cannot be read is left out.
func TorrcIDs(cfgs []config.HiddenService) map[string]bool {
	ids := map[string]bool{}
	for _, hc := range cfgs {
		b, err := os.ReadFile(filepath.Join(hc.Dir, HostnameFile))
		if err != nil {
			continue
		}
		ids[strings.TrimSuffix(strings.TrimSpace(string(b)), ".onion")] = true
	}
	return ids
}
