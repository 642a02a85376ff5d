package integration

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// procLog is the output of a C tor process (its log on stdout), line by
// line, so that a test can wait for a log line as it arrives instead of
// polling a log file.
type procLog struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced when a line arrives
	eof     chan struct{} // closed when the output ends (the process exited)
}

// startLogged starts cmd with its stdout and stderr going to a procLog.
func startLogged(cmd *exec.Cmd) (*procLog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	l := &procLog{changed: make(chan struct{}), eof: make(chan struct{})}
	go func() {
		defer close(l.eof)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	return l, nil
}

// wait waits until a line contains s. It fails the test if the process
// exits first, or after timeout.
func (l *procLog) wait(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		l.mu.Lock()
		for _, line := range l.lines[seen:] {
			if strings.Contains(line, s) {
				l.mu.Unlock()
				return
			}
		}
		seen = len(l.lines)
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-l.eof:
			// The last lines may have come with the end.
			if l.contains(s) {
				return
			}
			t.Fatalf("C tor exited before logging %q", s)
		case <-deadline.C:
			t.Fatalf("C tor did not log %q within %s", s, timeout)
		}
	}
}

// contains reports whether a line contains s.
func (l *procLog) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// snapshot returns a copy of the lines so far.
func (l *procLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}
