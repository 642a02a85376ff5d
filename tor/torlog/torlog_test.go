package torlog

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestFormatAndRange(t *testing.T) {
	var notice, warn bytes.Buffer
	l := New(Sink{Min: Notice, Max: Err, W: &notice}, Sink{Min: Warn, Max: Warn, W: &warn})
	l.now = func() time.Time { return time.Date(2026, 11, 27, 2, 48, 56, 123e6, time.UTC) }
	l.Infof("hidden %d", 1)
	l.Noticef("Bootstrapped %d%% (%s): %s", 100, "done", "Done")
	l.Warnf("careful")
	want := "Nov 27 02:48:56.123 [notice] Bootstrapped 100% (done): Done\nNov 27 02:48:56.123 [warn] careful\n"
	if notice.String() != want {
		t.Fatalf("notice sink got %q, want %q", notice.String(), want)
	}
	if strings.Count(warn.String(), "\n") != 1 || !strings.Contains(warn.String(), "[warn] careful") {
		t.Fatalf("warn sink got %q", warn.String())
	}
}

func TestParseSeverity(t *testing.T) {
	for name, want := range map[string]Severity{"debug": Debug, "INFO": Info, "notice": Notice, "warn": Warn, "err": Err, "error": Err} {
		got, err := ParseSeverity(name)
		if err != nil || got != want {
			t.Errorf("ParseSeverity(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := ParseSeverity("loud"); err == nil {
		t.Error("ParseSeverity(loud) succeeded")
	}
}

func TestHooks(t *testing.T) {
	l := New()
	var got []string
	l.OnMessage(func(s Severity, m string) { got = append(got, s.String()+":"+m) })
	l.Infof("no")
	l.Warnf("yes %d", 2)
	if len(got) != 1 || got[0] != "warn:yes 2" {
		t.Fatalf("hooks got %v", got)
	}
}
