package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tinytor/tor/torlog"
)

func TestOpenLogs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notices.log")
	var targets []LogTarget
	for _, v := range []string{"notice stdout", "warn-err stderr", "info file " + path} {
		lt, err := parseLog(v)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, lt)
	}
	var stdout, stderr strings.Builder
	log, closeLogs, err := OpenLogs(targets, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	log.Infof("an info line")
	log.Warnf("a warning")
	closeLogs()
	if s := stdout.String(); !strings.Contains(s, "[warn] a warning") || strings.Contains(s, "info line") {
		t.Errorf("stdout: %q", s)
	}
	if s := stderr.String(); !strings.Contains(s, "[warn] a warning") || strings.Contains(s, "info line") {
		t.Errorf("stderr: %q", s)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "[info] an info line") || !strings.Contains(string(b), "[warn] a warning") {
		t.Errorf("log file (%v): %q", err, b)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode: %v %v", fi.Mode(), err)
	}

	bad := []LogTarget{{Min: torlog.Notice, Max: torlog.Err, Dest: LogFile, Path: filepath.Join(path, "under-a-file")}}
	if _, _, err := OpenLogs(bad, &stdout, &stderr); err == nil || !strings.HasPrefix(err.Error(), "opening log file: ") {
		t.Errorf("unopenable log file: %v", err)
	}
}
