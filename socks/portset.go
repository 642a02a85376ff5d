package socks

import (
	"errors"

	"tinytor/tor/errfmt"
	"tinytor/tor/torlog"
)

// ApplyPorts brings a set of open listeners in step with a configuration,
// for the front ends' Listeners types (SOCKS, DNS, ...): the open ones
// that want no longer lists, or lists differently (same reports whether a
// wanted port is served as the open listener serves it), are closed and
// removed; the wanted ones not open are opened and added. A port that
// fails to open does not keep the others from opening; the error names
// every one that failed. kind names the ports in messages ("Socks",
// "DNS"); log receives C tor's closing notice.
func ApplyPorts[P, L any](open map[string]L, want map[string]P, same func(P, L) bool,
	closeL func(L), openP func(P) (L, error), kind string, log *torlog.Logger) error {
	for id, l := range open {
		if p, ok := want[id]; ok && same(p, l) {
			continue
		}
		closeL(l)
		delete(open, id)
		log.Noticef("Closing no-longer-configured %s listener on %s", kind, id)
	}
	var errs []error
	for id, p := range want {
		if _, ok := open[id]; ok {
			continue
		}
		l, err := openP(p)
		if err != nil {
			errs = append(errs, errfmt.Errorf("Failed to open %sPort %s: %w", kind, id, err))
			continue
		}
		open[id] = l
	}
	return errors.Join(errs...)
}
