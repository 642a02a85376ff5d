package ctlbackend

import (
	"encoding/base64"
	"fmt"
	"strings"

	"tinytor/tor/dir"
	"tinytor/tor/dirmgr"
	"tinytor/tor/event"
)

// Directory documents and status in the control protocol's text forms.

// bootstrapPhase formats s as GETINFO status/bootstrap-phase and the
// STATUS_CLIENT BOOTSTRAP event do.
func bootstrapPhase(s event.Bootstrap) string {
	sev := "NOTICE"
	extra := ""
	if s.Problem != "" {
		sev = "WARN"
		extra = fmt.Sprintf(" WARNING=%q", s.Problem)
	}
	return fmt.Sprintf("%s BOOTSTRAP PROGRESS=%d TAG=%s SUMMARY=%q%s", sev, s.Phase.Percent, s.Phase.Tag, s.Phase.Summary, extra)
}

// relayStatus returns what GETINFO ns/id/<fp> and md/id/<fp> report for
// the relay with identity id: its consensus entry formatted as a router
// status entry (as C tor's control port formats it from a microdesc
// consensus: the descriptor digest is all zeros and "published" is the
// consensus's valid-after time) and the text of its microdescriptor ("" if
// the microdescriptor is not in the cache file). ok is false if the relay
// is not in the consensus in use.
func (b *Backend) relayStatus(id [20]byte) (nsText, mdText string, ok bool) {
	d := b.cfg.Client.Directory()
	if d == nil || d.Consensus == nil {
		return "", "", false
	}
	r := d.Consensus.RelayByID(id)
	if r == nil {
		return "", "", false
	}
	return formatStatus(d, r), b.cfg.Client.MicrodescText(r.Microdesc), true
}

// networkStatusAll returns GETINFO ns/all: every relay of the consensus in
// use, formatted as relayStatus formats one ("" without a consensus).
func networkStatusAll(b *Backend, _ string) (string, error) {
	d := b.cfg.Client.Directory()
	if d == nil || d.Consensus == nil {
		return "", nil
	}
	var sb strings.Builder
	for i := range d.Consensus.Relays {
		sb.WriteString(formatStatus(d, &d.Consensus.Relays[i]))
	}
	return sb.String(), nil
}

// formatStatus formats r as a router status entry.
func formatStatus(d *dirmgr.NetDir, r *dir.Relay) string {
	b64 := base64.RawStdEncoding
	var sb strings.Builder
	fmt.Fprintf(&sb, "r %s %s %s %s %d.%d.%d.%d %d %d\n", r.Nickname, b64.EncodeToString(r.Identity[:]),
		b64.EncodeToString(make([]byte, 20)), d.Consensus.ValidAfter.UTC().Format("2006-01-02 15:04:05"),
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
	if md := d.Microdescs[r.Microdesc]; md != nil && md.Policy != nil {
		fmt.Fprintf(&sb, "p %s\n", md.Policy)
	}
	return sb.String()
}
