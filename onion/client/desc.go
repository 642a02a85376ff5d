package client

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tinytor/onion/addr"
	"tinytor/onion/desc"
	"tinytor/onion/hsdir"
	"tinytor/onion/keys"
	"tinytor/onion/ring"
	"tinytor/tor"
	"tinytor/tor/dir"
	"tinytor/tor/errfmt"
	"tinytor/tor/event"
	"tinytor/tor/path"
)

// cacheEntry is a decoded descriptor kept until it expires.
type cacheEntry struct {
	d       *desc.Descriptor
	expires time.Time
	addr    addr.Address // the service, when known
}

// hsdirPlan is where the descriptor of a service lives for the current
// time period.
type hsdirPlan struct {
	blinded ed25519.PublicKey
	period  uint64
	hsdirs  []*path.Node
}

// plan computes the blinded key of a for the period the consensus in use
// falls in, and the HSDirs responsible for it (rend-spec-v3 2.2).
func (c *Client) plan(a addr.Address) (*hsdirPlan, error) {
	view := c.cfg.Net.NetworkView()
	if view == nil {
		return nil, errfmt.Errorf("onion service: %w", tor.ErrNotBootstrapped)
	}
	cons := view.Consensus
	p, srvs, err := hsdir.TimeParams(cons, c.cfg.Testing)
	if err != nil {
		return nil, errfmt.Errorf("onion service: %w", err)
	}
	u := ring.Fetch(p, cons.ValidAfter, srvs)
	blinded, err := keys.BlindPublic(a.PublicKey(), u.Period, p.LengthMinutes)
	if err != nil {
		return nil, &Error{Kind: BadAddress, Addr: a.String(), Err: err}
	}
	params := ring.ParamsFrom(cons.Param)
	pl := &hsdirPlan{blinded: blinded, period: u.Period}
	for _, r := range ring.Responsible(hsdir.Ring(view), blinded, u, p.LengthMinutes, params.Replicas, params.SpreadFetch) {
		if n := view.ByID(r.RSAID); n != nil {
			pl.hsdirs = append(pl.hsdirs, n)
		}
	}
	return pl, nil
}

// descEvents publishes the HS_DESC events of one descriptor fetch.
type descEvents struct {
	c          *Client
	host, id   string
	clientAuth bool
}

// publish publishes an HS_DESC event of action about the HSDir n (nil for
// none) with reason (FAILED only).
func (e *descEvents) publish(action string, n *path.Node, reason string) {
	ev := &event.HSDesc{Action: action, Address: e.host, DescriptorID: e.id, Reason: reason, ClientAuth: e.clientAuth}
	if n != nil {
		ev.HSDir = event.RelayRef{ID: n.Identity, Nickname: n.Nickname}
	}
	e.c.cfg.Events.Publish(ev)
}

// content publishes the HS_DESC_CONTENT event of a fetch answered by n:
// the descriptor's text, or nothing for a 404 (as C tor).
func (e *descEvents) content(n *path.Node, doc []byte) {
	e.c.cfg.Events.Publish(&event.HSDescContent{Address: e.host, DescriptorID: e.id,
		HSDir: event.RelayRef{ID: n.Identity, Nickname: n.Nickname}, Content: string(doc)})
}

// descriptor returns the service's descriptor for the current period:
// from the cache, or fetched from the responsible HSDirs in random order,
// each tried once, leaving out those that failed to give it within the
// last 15 minutes (5 seconds on a testing network), as C tor. A fetched
// descriptor makes every HSDir askable again.
func (c *Client) descriptor(ctx context.Context, a addr.Address) (*desc.Descriptor, error) {
	pl, err := c.plan(a)
	if err != nil {
		return nil, err
	}
	bk := [32]byte(pl.blinded)
	now := c.cfg.Now()
	c.mu.Lock()
	if e := c.descs[bk]; e != nil {
		powExpired := e.d.Inner.PoW != nil && e.d.Inner.PoW.Expired(now)
		if now.Before(e.expires) && !powExpired {
			c.mu.Unlock()
			return e.d, nil
		}
		if powExpired {
			c.log.Infof("Descriptor PoW parameters have expired.")
		}
		delete(c.descs, bk)
	}
	c.mu.Unlock()

	name := a.String()
	host := name[:len(name)-len(addr.Suffix)]
	ev := &descEvents{c: c, host: host, id: descID(pl.blinded)}
	if len(pl.hsdirs) == 0 {
		ev.publish("FAILED", nil, "QUERY_NO_HSDIR")
		return nil, errorf(DescNotFound, name, "no HSDir in the consensus")
	}
	clientKey, err := c.authKey(a)
	if err != nil {
		c.log.Warnf("Client authorization for %s: %v", host[:8], err)
	}
	order := c.fails.askable(pl.blinded, pl.hsdirs)
	if len(order) == 0 {
		ev.publish("FAILED", nil, "QUERY_RATE_LIMITED")
		return nil, errorf(DescNotFound, name, "every responsible HSDir (%d) failed to give the descriptor within the last %s",
			len(pl.hsdirs), c.fails.requery)
	}
	ev.clientAuth = clientKey != nil
	c.withRand(func(r *randT) { r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] }) })
	var invalid error
	var errs []error
	for _, n := range order {
		if err := ctx.Err(); err != nil {
			return nil, errfmt.Errorf("onion service: fetching the descriptor: %w", err)
		}
		ev.publish("REQUESTED", n, "")
		doc, err := c.fetch(ctx, n, pl.blinded)
		if err != nil {
			reason := fetchReason(err)
			ev.publish("FAILED", n, reason)
			if reason == "NOT_FOUND" {
				ev.content(n, nil)
			}
			if ctx.Err() == nil {
				c.fails.noteHSDirFailed(pl.blinded, n.Identity)
			}
			c.log.Infof("Fetching the descriptor of %s from HSDir %s: %v", host[:8], n.Nickname, err)
			errs = append(errs, errfmt.Errorf("HSDir %s: %w", n.Nickname, err))
			continue
		}
		ev.content(n, doc)
		d, err := desc.Decode(doc, a.PublicKey(), pl.blinded, clientKey, c.cfg.Now())
		if err != nil {
			ev.publish("FAILED", n, "BAD_DESC")
			kind := MissingClientAuth
			switch {
			case errors.Is(err, desc.ErrBadClientAuth):
				kind = BadClientAuth
			case !errors.Is(err, desc.ErrNeedClientAuth):
				c.fails.noteHSDirFailed(pl.blinded, n.Identity)
				c.log.Infof("Descriptor of %s from HSDir %s is invalid: %v", host[:8], n.Nickname, err)
				invalid = errfmt.Errorf("from HSDir %s: %w", n.Nickname, err)
				continue
			}
			return nil, &Error{Kind: kind, Addr: name, Err: err}
		}
		c.log.Infof("Fetched the descriptor of %s (revision %d, %d introduction points) from HSDir %s.",
			host[:8], d.Outer.RevisionCounter, len(d.Inner.IntroPoints), n.Nickname)
		ev.publish("RECEIVED", n, "")
		c.fails.hsdirsSucceeded(pl.blinded)
		return c.store(bk, a, d, now), nil
	}
	if invalid != nil {
		return nil, &Error{Kind: DescInvalid, Addr: name, Err: invalid}
	}
	return nil, &Error{Kind: DescNotFound, Addr: name, Err: errfmt.Errorf("tried %d HSDirs: %w", len(order), errors.Join(errs...))}
}

// store caches d, the descriptor of a, unless the cache holds a live
// descriptor with a higher revision counter (rend-spec-v3 2.4: a client
// keeps the newest), and returns the descriptor to use.
func (c *Client) store(bk [32]byte, a addr.Address, d *desc.Descriptor, now time.Time) *desc.Descriptor {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.descs[bk]
	if old != nil && now.Before(old.expires) && old.d.Outer.RevisionCounter > d.Outer.RevisionCounter {
		old.addr = a
		return old.d
	}
	c.descs[bk] = &cacheEntry{d: d, expires: now.Add(d.Outer.Lifetime), addr: a}
	return d
}

// forget drops a cached descriptor whose introduction points all failed,
// so that the next attempt fetches a fresh one.
func (c *Client) forget(d *desc.Descriptor) {
	var bk [32]byte
	copy(bk[:], d.Outer.BlindedKey)
	c.mu.Lock()
	if e := c.descs[bk]; e != nil && e.d == d {
		delete(c.descs, bk)
	}
	c.mu.Unlock()
}

// fetch downloads a descriptor from one HSDir: GET /tor/hs/3/<blinded>
// over BEGIN_DIR on a circuit ending at the HSDir.
func (c *Client) fetch(ctx context.Context, n *path.Node, blinded ed25519.PublicKey) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, hsdirTimeout)
	defer cancel()
	return hsdir.Request(ctx, c.cfg.Net, n, "HS_CLIENT_HSDIR", "/tor/hs/3/"+base64.StdEncoding.EncodeToString(blinded), nil, desc.MaxLen)
}

// fetchReason names a failed fetch for HS_DESC FAILED: NOT_FOUND when the
// HSDir answered 404, else UNEXPECTED.
func fetchReason(err error) string {
	var se *dir.StatusError
	if errors.As(err, &se) && se.Code == 404 {
		return "NOT_FOUND"
	}
	return "UNEXPECTED"
}

// authKey finds the client authorization key for a: one added by a
// controller (AddCredential), else one in the ClientOnionAuthDir: the *.auth_private files ("<addr>:descriptor:x25519:
// <base32 key>", as C tor reads them). It returns nil if there is none.
func (c *Client) authKey(a addr.Address) (*ecdh.PrivateKey, error) {
	c.mu.Lock()
	d := c.authDir
	cr, ok := c.creds[a]
	c.mu.Unlock()
	if ok {
		return cr.Key, nil
	}
	if d == "" {
		return nil, nil
	}
	return findAuthKey(d, a)
}

// findAuthKey reads dirPath's *.auth_private files and returns the key
// for a. Unreadable or malformed files are reported after the search,
// unless a key was found.
func findAuthKey(dirPath string, a addr.Address) (*ecdh.PrivateKey, error) {
	files, err := readAuthDir(dirPath)
	if err != nil {
		return nil, errfmt.Errorf("reading ClientOnionAuthDir: %w", err)
	}
	var errs []error
	for i := range files {
		f := &files[i]
		if f.err != nil {
			errs = append(errs, f.err)
		} else if f.addr == a {
			return f.key, nil
		}
	}
	return nil, errors.Join(errs...)
}

// authFile is a *.auth_private file of ClientOnionAuthDir.
type authFile struct {
	path string
	addr addr.Address
	key  *ecdh.PrivateKey
	err  error // why the file could not be read or parsed
}

// readAuthDir reads and parses the *.auth_private files of dir ("<addr>:
// descriptor:x25519:<base32 key>", as C tor reads them).
func readAuthDir(dir string) ([]authFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []authFile
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".auth_private") {
			continue
		}
		f := authFile{path: filepath.Join(dir, e.Name())}
		if b, err := os.ReadFile(f.path); err != nil {
			f.err = errfmt.Errorf("reading %s: %w", f.path, err)
		} else if f.addr, f.key, err = keys.ParseClientAuthPrivate(b); err != nil {
			f.err = errfmt.Errorf("%s: %w", f.path, err)
		}
		out = append(out, f)
	}
	return out, nil
}
