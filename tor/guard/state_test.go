package guard

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"tinytor/tor/torlog"
)

var stateNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// A line as C tor 0.4.8 writes it, with path-bias counters.
const ctorLine = "Guard in=default rsa_id=3E53D3979DB07EFD736661C934A1DED14127B684 nickname=Unnamed " +
	"sampled_on=2026-10-25T08:43:53 sampled_idx=0 sampled_by=0.4.8.10 listed=1 " +
	"confirmed_on=2026-10-31T11:37:02 confirmed_idx=0 pb_use_attempts=3.000000 pb_use_successes=3.000000 " +
	"pb_circ_attempts=10.000000 pb_circ_successes=9.000000 pb_successful_circuits_closed=8.000000"

func TestParseCTorLine(t *testing.T) {
	d, probs := parseState([]byte(ctorLine+"\n"), stateNow, DefaultSelection)
	if len(probs) != 0 {
		t.Fatalf("problems: %v", probs)
	}
	if len(d.sampled) != 1 {
		t.Fatalf("%d guards", len(d.sampled))
	}
	e := d.sampled[0]
	if e.id[0] != 0x3E || e.id[19] != 0x84 || e.nickname != "Unnamed" || !e.listed || e.confirmedIdx != 0 ||
		e.sampledBy != "0.4.8.10" || e.sampledOn != time.Date(2026, 10, 25, 8, 43, 53, 0, time.UTC) ||
		e.confirmedOn != time.Date(2026, 10, 31, 11, 37, 2, 0, time.UTC) {
		t.Fatalf("parsed %+v", e)
	}
	if len(e.extra) != 5 || e.extra[0] != "pb_use_attempts=3.000000" {
		t.Fatalf("path-bias items not kept: %q", e.extra)
	}
	// Re-encoding gives C tor's line back (same item order).
	if got := encodeEntry(e, DefaultSelection); got != ctorLine {
		t.Fatalf("re-encoded:\n%s\nwant\n%s", got, ctorLine)
	}
}

func TestParseGarbage(t *testing.T) {
	state := strings.Join([]string{
		"# comment",
		"",
		"Guard in=default rsa_id=0102030405060708090A0B0C0D0E0F1011121314 sampled_on=2026-11-01T00:00:00 sampled_idx=1 listed=1",
		"garbage line here",
		"Guard in=default rsa_id=nothex sampled_on=2026-11-01T00:00:00 listed=1",
		"Guard rsa_id=0102030405060708090A0B0C0D0E0F1011121315 listed=1",
		"Guard in=default rsa_id=0102030405060708090A0B0C0D0E0F1011121316 sampled_on=yesterday sampled_idx=0 listed=0 confirmed_idx=x",
		"Guard in=default rsa_id=0102030405060708090A0B0C0D0E0F1011121314 sampled_on=2026-11-01T00:00:00 listed=1",
		"Guard in=bridges rsa_id=0102030405060708090A0B0C0D0E0F1011121317 bridge_addr=1.2.3.4:443 listed=1",
		"Guard in=default rsa_id=0102030405060708090A0B0C0D0E0F1011121318 nickname=way_too_long!! noequals listed=1 sampled_on=2026-11-01T00:00:00 confirmed_idx=5",
		"Guard",
	}, "\n")
	d, probs := parseState([]byte(state), stateNow, DefaultSelection)
	if len(d.sampled) != 3 {
		for _, e := range d.sampled {
			t.Logf("%s", encodeEntry(e, DefaultSelection))
		}
		t.Fatalf("%d guards kept, want 3", len(d.sampled))
	}
	// Order: sampled_idx 0 (…16), 1 (…14), then the one without an index.
	if d.sampled[0].id[19] != 0x16 || d.sampled[1].id[19] != 0x14 || d.sampled[2].id[19] != 0x18 {
		t.Fatalf("sample order %x %x %x", d.sampled[0].id[19], d.sampled[1].id[19], d.sampled[2].id[19])
	}
	e16 := d.sampled[0]
	if !e16.sampledOn.Equal(stateNow) || e16.listed || e16.unlistedSince.IsZero() || e16.confirmedIdx != -1 {
		t.Fatalf("corrected entry: %+v", e16)
	}
	e18 := d.sampled[2]
	if e18.nickname != "" || e18.confirmedIdx != 0 || !e18.confirmedOn.Equal(stateNow) {
		t.Fatalf("entry with bad nickname and lone confirmed_idx: %+v", e18)
	}
	if len(d.foreign) != 1 || !strings.Contains(d.foreign[0], "in=bridges") {
		t.Fatalf("foreign lines %q", d.foreign)
	}
	var le *LineError
	lines := map[int]bool{}
	for _, p := range probs {
		if !errors.As(p, &le) {
			t.Fatalf("problem %v is not a *LineError", p)
		}
		lines[le.Line] = true
	}
	for _, want := range []int{4, 5, 6, 7, 8, 10, 11} {
		if !lines[want] {
			t.Errorf("no problem reported for line %d; got %v", want, probs)
		}
	}
	if lines[3] || lines[9] {
		t.Errorf("problems reported for good lines: %v", probs)
	}
	// Foreign lines survive a round trip.
	out := encodeState(d.sampled, d.foreign, DefaultSelection)
	if !bytes.Contains(out, []byte("in=bridges rsa_id=0102030405060708090A0B0C0D0E0F1011121317 bridge_addr=1.2.3.4:443")) {
		t.Fatalf("bridge line lost:\n%s", out)
	}
}

func TestLoadLogsProblems(t *testing.T) {
	store := newMapStore()
	store.files[DefaultStateName] = []byte("junk\n" + ctorLine + "\n")
	var warnings []string
	l := torlog.New()
	l.OnMessage(func(s torlog.Severity, msg string) {
		if s == torlog.Warn {
			warnings = append(warnings, msg)
		}
	})
	m := New(Options{Now: func() time.Time { return stateNow }, Rand: seeded(1), Store: store, Log: l})
	if len(m.Guards()) != 1 {
		t.Fatalf("%d guards loaded", len(m.Guards()))
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "line 1") {
		t.Fatalf("warnings %q", warnings)
	}
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(ctorLine + "\n"))
	f.Add([]byte("Guard in=default rsa_id=0102030405060708090A0B0C0D0E0F1011121314 sampled_on=2026-11-01T00:00:00 sampled_idx=1 listed=0 unlisted_since=2026-11-02T00:00:00\n"))
	f.Add([]byte("Guard in=bridges rsa_id=00 bridge_addr=[::1]:443\nGuard\n\n#x\n"))
	f.Add([]byte("Guard in=default rsa_id=0102030405060708090A0B0C0D0E0F1011121314 confirmed_idx=-7 sampled_idx=99999999999999999999"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, _ := parseState(data, stateNow, DefaultSelection)
		// Whatever was kept encodes and parses back to the same thing.
		enc := encodeState(d.sampled, d.foreign, DefaultSelection)
		d2, probs := parseState(enc, stateNow, DefaultSelection)
		if len(d2.sampled) != len(d.sampled) {
			t.Fatalf("round trip kept %d of %d guards; problems %v\n%s", len(d2.sampled), len(d.sampled), probs, enc)
		}
		if enc2 := encodeState(d2.sampled, d2.foreign, DefaultSelection); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// The constant messages quote the limits they enforce.
func TestStateErrorLimits(t *testing.T) {
	for _, c := range []struct {
		err   stateError
		limit int
	}{{errSampledIdx, maxIndex}, {errConfirmIdx, maxIndex}, {errTooManyLines, maxStateLines}} {
		if !strings.Contains(string(c.err), strconv.Itoa(c.limit)) {
			t.Errorf("%q does not say %d", c.err, c.limit)
		}
	}
}
