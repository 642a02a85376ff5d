package client

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"tinytor/onion/addr"
	"tinytor/onion/keys"
	"tinytor/tor/errfmt"
)

// Credential is a client authorization key for one service, added by a
// controller (ONION_CLIENT_AUTH_ADD) or read from ClientOnionAuthDir.
type Credential struct {
	Address addr.Address
	Key     *ecdh.PrivateKey
	// ClientName is the controller's optional nickname for the key.
	ClientName string
	// Permanent: the key is also stored in ClientOnionAuthDir, as
	// <address>.auth_private.
	Permanent bool
}

// ErrNoAuthDir is returned when a permanent credential is added but no
// ClientOnionAuthDir is configured.
var ErrNoAuthDir = errors.New("no ClientOnionAuthDir is configured")

// credFile is the file name a permanent credential is stored under.
func credFile(a addr.Address) string { return a.Host() + ".auth_private" }

// AddCredential adds (or replaces) the client authorization key for
// cr.Address; later descriptor fetches use it before any key of
// ClientOnionAuthDir. A Permanent credential is also written to
// ClientOnionAuthDir. Cached descriptors of the service are dropped so
// that the next connection decrypts with the new key. replaced reports
// that a key for the address was already held in memory.
func (c *Client) AddCredential(cr Credential) (replaced bool, err error) {
	if cr.Key == nil {
		return false, errors.New("onion client: credential without a key")
	}
	c.mu.Lock()
	d := c.authDir
	c.mu.Unlock()
	if cr.Permanent {
		if d == "" {
			return false, errfmt.Errorf("onion client: storing the credential for %s: %w", cr.Address.Host()[:8], ErrNoAuthDir)
		}
		if err := writeFileAtomic(filepath.Join(d, credFile(cr.Address)), keys.ClientAuthPrivateFile(cr.Address, cr.Key)); err != nil {
			return false, errfmt.Errorf("onion client: storing the credential: %w", err)
		}
	}
	c.mu.Lock()
	_, replaced = c.creds[cr.Address]
	c.creds[cr.Address] = cr
	c.dropDescsLocked(cr.Address)
	c.mu.Unlock()
	return replaced, nil
}

// RemoveCredential forgets the key for a. A controller-added key that
// is not Permanent is only forgotten (a key for a in ClientOnionAuthDir
// applies again); otherwise, as C tor does for permanent credentials,
// every file of ClientOnionAuthDir holding a key for a is deleted. It
// reports whether a key existed.
func (c *Client) RemoveCredential(a addr.Address) (bool, error) {
	c.mu.Lock()
	cr, existed := c.creds[a]
	delete(c.creds, a)
	d := c.authDir
	c.dropDescsLocked(a)
	c.mu.Unlock()
	if d == "" || (existed && !cr.Permanent) {
		return existed, nil
	}
	files, err := readAuthDir(d)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return existed, nil
		}
		return existed, errfmt.Errorf("onion client: reading ClientOnionAuthDir: %w", err)
	}
	var errs []error
	for i := range files {
		f := &files[i]
		if f.err != nil || f.addr != a {
			continue
		}
		existed = true
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, errfmt.Errorf("removing %s: %w", f.path, err))
		}
	}
	if len(errs) > 0 {
		return existed, errfmt.Errorf("onion client: %w", errors.Join(errs...))
	}
	return existed, nil
}

// Credentials lists the client authorization keys, for address a only
// unless a is nil, ordered by address: the controller-added ones, then
// those of ClientOnionAuthDir that no controller key shadows (marked
// Permanent, as C tor lists the keys it loaded from there). Unreadable
// files of the directory are skipped.
func (c *Client) Credentials(a *addr.Address) []Credential {
	c.mu.Lock()
	d := c.authDir
	var out []Credential
	have := map[addr.Address]bool{}
	for k, cr := range c.creds {
		have[k] = true
		if a == nil || *a == k {
			out = append(out, cr)
		}
	}
	c.mu.Unlock()
	if d != "" {
		files, _ := readAuthDir(d)
		for i := range files {
			f := &files[i]
			if f.err != nil || have[f.addr] || (a != nil && *a != f.addr) {
				continue
			}
			have[f.addr] = true
			out = append(out, Credential{Address: f.addr, Key: f.key, Permanent: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Host() < out[j].Address.Host() })
	return out
}

// dropDescsLocked forgets cached descriptors of a. c.mu must be held.
func (c *Client) dropDescsLocked(a addr.Address) {
	for bk, e := range c.descs {
		if e.addr == a {
			delete(c.descs, bk)
		}
	}
}

// writeFileAtomic writes b to path through a temporary file, readable by
// the owner only.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// descID formats a blinded key as HS_DESC's descriptor ID.
func descID(blinded []byte) string {
	return strings.TrimRight(base64.StdEncoding.EncodeToString(blinded), "=")
}

// Fetch fetches the descriptor of the service at host again, ignoring
// (and replacing) any cached copy, as HSFETCH does. Its progress is
// reported on Config.Events.
func (c *Client) Fetch(ctx context.Context, host string) error {
	a, err := addr.Parse(host)
	if err != nil {
		return &Error{Kind: BadAddress, Addr: host, Err: err}
	}
	c.mu.Lock()
	c.dropDescsLocked(a)
	c.mu.Unlock()
	_, err = c.descriptor(ctx, a)
	return err
}
