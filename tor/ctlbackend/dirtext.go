package ctlbackend

import (
	"encoding/base64"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"tinytor/tor/dir"
	"tinytor/tor/dirmgr"
	"tinytor/tor/event"
)

// Directory documents and status in the control protocol's text forms.

// bootstrapPhase formats s as GETINFO status/bootstrap-phase and the
// STATUS_CLIENT BOOTSTRAP event do.
func bootstrapPhase(s event.Bootstrap) string {
	line := " BOOTSTRAP PROGRESS=" + strconv.Itoa(s.Phase.Percent) + " TAG=" + s.Phase.Tag + " SUMMARY=" + strconv.Quote(s.Phase.Summary)
	if s.Problem != "" {
		return "WARN" + line + " WARNING=" + strconv.Quote(s.Problem)
	}
	return "NOTICE" + line
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

// zeroDigest is the descriptor digest of a status entry from a microdesc
// consensus: 20 zero bytes in unpadded base64.
const zeroDigest = "AAAAAAAAAAAAAAAAAAAAAAAAAAA"

// formatStatus formats r as a router status entry.
func formatStatus(d *dirmgr.NetDir, r *dir.Relay) string {
	s := "r " + r.Nickname + " " + base64.RawStdEncoding.EncodeToString(r.Identity[:]) +
		" " + zeroDigest + " " + d.Consensus.ValidAfter.UTC().Format(time.DateTime) + " " +
		netip.AddrFrom4(r.Addr).String() + " " + strconv.Itoa(int(r.ORPort)) + " " + strconv.Itoa(int(r.DirPort)) + "\n"
	if ap, ok := r.IPv6AddrPort(); ok {
		s += "a " + ap.String() + "\n"
	}
	s += "s " + r.Flags.String() + "\nw Bandwidth=" + strconv.FormatUint(uint64(r.Bandwidth), 10)
	if r.Unmeasured {
		s += " Unmeasured=1"
	}
	s += "\n"
	if md := d.Microdescs[r.Microdesc]; md != nil && md.Policy != nil {
		s += "p " + md.Policy.String() + "\n"
	}
	return s
}
