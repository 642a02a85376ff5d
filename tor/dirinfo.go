package tor

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"tinytor/tor/config"
	"tinytor/tor/dir"
	"tinytor/tor/guard"
)

// Read-only accessors and small actions for the control port.

// ErrUnknownCircuit is returned by CloseCircuit for an ID that names no
// open circuit of the pool.
var ErrUnknownCircuit = errors.New("unknown circuit")

// ErrUnknownStream is returned by CloseStream for an ID that names no
// open stream.
var ErrUnknownStream = errors.New("unknown stream")

// ErrCircuitInUse is returned by CloseCircuit with ifUnused for a
// circuit that still carries streams.
var ErrCircuitInUse = errors.New("circuit is in use")

// Config returns the configuration in force (the one given to New or the
// latest Reconfigure).
func (c *Client) Config() *config.Config { return c.conf() }

// Guards returns the sampled entry guards, as GETINFO entry-guards and
// the metrics page show them.
func (c *Client) Guards() []guard.Info { return c.guards.Guards() }

// RelayStatus returns what GETINFO ns/id/<fp> and md/id/<fp> report for
// the relay with identity id: its consensus entry formatted as a router
// status entry (as C tor's control port formats it from a microdesc
// consensus: the descriptor digest is all zeros and "published" is the
// consensus's valid-after time) and the text of its microdescriptor ("" if
// the microdescriptor is not in the cache file). ok is false if the relay
// is not in the consensus in use.
func (c *Client) RelayStatus(id [20]byte) (nsText, mdText string, ok bool) {
	d := c.currentDir()
	if d == nil || d.consensus == nil {
		return "", "", false
	}
	r := d.consensus.RelayByID(id)
	if r == nil {
		return "", "", false
	}
	return formatStatus(d, r), c.microdescText(r.Microdesc), true
}

// NetworkStatusAll returns GETINFO ns/all: every relay of the consensus in
// use, formatted as RelayStatus formats one ("" without a consensus).
func (c *Client) NetworkStatusAll() string {
	d := c.currentDir()
	if d == nil || d.consensus == nil {
		return ""
	}
	var sb strings.Builder
	for i := range d.consensus.Relays {
		sb.WriteString(formatStatus(d, &d.consensus.Relays[i]))
	}
	return sb.String()
}

// formatStatus formats r as a router status entry.
func formatStatus(d *netDir, r *dir.Relay) string {
	b64 := base64.RawStdEncoding
	var sb strings.Builder
	fmt.Fprintf(&sb, "r %s %s %s %s %d.%d.%d.%d %d %d\n", r.Nickname, b64.EncodeToString(r.Identity[:]),
		b64.EncodeToString(make([]byte, 20)), d.consensus.ValidAfter.UTC().Format("2006-01-02 15:04:05"),
		r.Addr[0], r.Addr[1], r.Addr[2], r.Addr[3], r.ORPort, r.DirPort)
	if ap, ok := r.IPv6AddrPort(); ok {
		fmt.Fprintf(&sb, "a %s\n", ap)
	}
	fmt.Fprintf(&sb, "s %s\n", r.Flags)
	if r.Unmeasured {
		fmt.Fprintf(&sb, "w Bandwidth=%d Unmeasured=1\n", r.Bandwidth)
	} else {
		fmt.Fprintf(&sb, "w Bandwidth=%d\n", r.Bandwidth)
	}
	if md := d.mds[r.Microdesc]; md != nil && md.Policy != nil {
		fmt.Fprintf(&sb, "p %s\n", md.Policy)
	}
	return sb.String()
}

// microdescText finds the microdescriptor with the given digest in the
// cache file, which holds exactly the microdescriptors in use.
func (c *Client) microdescText(digest [32]byte) string {
	doc, err := c.cache.Store.ReadFile(dir.MicrodescsFile)
	if err != nil {
		return ""
	}
	return string(findMicrodesc(doc, digest))
}

// findMicrodesc returns the microdescriptor of doc (a concatenation of
// microdescriptors, each starting with an "onion-key" line) whose SHA-256
// is digest, or nil.
func findMicrodesc(doc []byte, digest [32]byte) []byte {
	const start = "onion-key"
	var starts []int
	for off := 0; off < len(doc); {
		if bytes.HasPrefix(doc[off:], []byte(start)) {
			starts = append(starts, off)
		}
		nl := bytes.IndexByte(doc[off:], '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	for i, s := range starts {
		end := len(doc)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		if sha256.Sum256(doc[s:end]) == digest {
			return doc[s:end]
		}
	}
	return nil
}

// CloseCircuit closes the pool circuit the control port calls id. With
// ifUnused it refuses (ErrCircuitInUse) a circuit that carries streams.
func (c *Client) CloseCircuit(id uint64, ifUnused bool) error {
	p := &c.circs
	p.mu.Lock()
	var found *exitCirc
	for _, e := range p.circs {
		if e.id == id && e.alive() {
			found = e
			break
		}
	}
	if found == nil {
		p.mu.Unlock()
		return fmt.Errorf("circuit %d: %w", id, ErrUnknownCircuit)
	}
	if ifUnused && found.streams > 0 {
		p.mu.Unlock()
		return fmt.Errorf("circuit %d: %w", id, ErrCircuitInUse)
	}
	found.retired = true
	p.mu.Unlock()
	return found.circ.Close()
}

// CloseStream closes the stream the control port calls id.
func (c *Client) CloseStream(id uint64) error {
	c.events.mu.Lock()
	_, ok := c.events.streams[id]
	closer := c.events.closers[id]
	c.events.mu.Unlock()
	if !ok || closer == nil {
		return fmt.Errorf("stream %d: %w", id, ErrUnknownStream)
	}
	return closer.Close()
}
