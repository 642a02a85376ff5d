package state

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tinytor/tor/torlog"
)

// fakeNow is a manually advanced time source.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// flagClock is a Clock whose trust the test sets.
type flagClock struct{ ok atomic.Bool }

func (c *flagClock) Trusted() bool { return c.ok.Load() }

// faultFS wraps OSFS and fails writes with a chosen errno while set.
type faultFS struct {
	OSFS
	fail atomic.Value // syscall.Errno or nil
}

func (f *faultFS) err() error {
	if e, ok := f.fail.Load().(syscall.Errno); ok && e != 0 {
		return e
	}
	return nil
}

func (f *faultFS) CreateTemp(dir, prefix string, perm fs.FileMode) (File, error) {
	if e := f.err(); e == syscall.EROFS || e == syscall.EACCES {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: e}
	}
	file, err := f.OSFS.CreateTemp(dir, prefix, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

type faultFile struct {
	File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if e := f.fs.err(); e == syscall.ENOSPC {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &fs.PathError{Op: "write", Path: f.Name(), Err: e}
	}
	return f.File.Write(p)
}

func newTestStore(t *testing.T, opts Options) (*Store, string, *fakeNow) {
	t.Helper()
	dir := t.TempDir()
	clk := &fakeNow{t: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	s, err := open(dir, opts, false)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir, clk
}

func TestWriteReadAndFormatOnDisk(t *testing.T) {
	s, dir, _ := newTestStore(t, Options{})
	if err := s.Write("state", []byte("a=1\n")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read("state"); err != nil || string(got) != "a=1\n" {
		t.Fatalf("Read of queued data = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file exists before the writer ran: %v", err)
	}
	s.runDue()
	raw, err := os.ReadFile(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("a=1\n\n#tinytor-state v1 len=4 sha256=")) {
		t.Fatalf("on-disk format: %q", raw)
	}
	if got, err := s.Read("state"); err != nil || string(got) != "a=1\n" {
		t.Fatalf("Read from disk = %q, %v", got, err)
	}
	st, err := os.Stat(filepath.Join(dir, "state"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", st.Mode(), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write("state", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestCoalescing(t *testing.T) {
	s, dir, clk := newTestStore(t, Options{MinInterval: 10 * time.Minute})
	s.Write("state", []byte("v0"))
	s.runDue() // first write of a name is not delayed
	for i := 1; i <= 5; i++ {
		s.Write("state", []byte{'v', byte('0' + i)})
		clk.Add(time.Minute)
		next := s.runDue()
		if want := time.Date(2026, 11, 27, 0, 10, 0, 0, time.UTC); !next.Equal(want) {
			t.Fatalf("next wake %v, want %v", next, want)
		}
	}
	st := s.Stats()
	if st.Writes != 1 || st.Coalesced != 4 || st.Pending != 1 {
		t.Fatalf("stats after 6 writes in 5 minutes: %+v, want Writes=1 Coalesced=4 Pending=1", st)
	}
	clk.Add(5 * time.Minute)
	s.runDue()
	st = s.Stats()
	if st.Writes != 2 || st.Pending != 0 || st.BytesWritten == 0 {
		t.Fatalf("stats after interval: %+v", st)
	}
	if b, _ := s.Read("state"); string(b) != "v5" {
		t.Fatalf("latest data %q, want v5", b)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "state"))
	if st.BytesWritten != uint64(len(raw))+uint64(len(encode([]byte("v0")))) {
		t.Fatalf("BytesWritten %d does not match the two files", st.BytesWritten)
	}
}

func TestWriteNowAndFlushIgnoreInterval(t *testing.T) {
	s, dir, _ := newTestStore(t, Options{MinInterval: time.Hour})
	s.Write("a", []byte("1"))
	s.runDue()
	if err := s.WriteNow("hs_ed25519_secret_key", []byte("== ed25519v1-secret: type0 ==\x00\x00\x00key"), Raw, Secret); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "hs_ed25519_secret_key"))
	if err != nil || string(raw) != "== ed25519v1-secret: type0 ==\x00\x00\x00key" {
		t.Fatalf("raw file %q, %v", raw, err)
	}
	if got, err := s.ReadRaw("hs_ed25519_secret_key"); err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("ReadRaw %q, %v", got, err)
	}
	s.Write("a", []byte("2"))
	s.runDue()
	if st := s.Stats(); st.Pending != 1 {
		t.Fatalf("a written before MinInterval: %+v", st)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s2, _ := open(dir, Options{}, false)
	if got, err := s2.Read("a"); err != nil || string(got) != "2" {
		t.Fatalf("after Flush, disk has %q, %v", got, err)
	}
}

func TestCorruptFileMovedAside(t *testing.T) {
	var logbuf bytes.Buffer
	log := torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logbuf})
	s, dir, _ := newTestStore(t, Options{Log: log})
	good := encode([]byte("guards\n"))
	for i, bad := range [][]byte{good[:len(good)-10], append([]byte("X"), good[1:]...), {}, []byte("\x00\x00\x00\x00")} {
		os.WriteFile(filepath.Join(dir, "state"), bad, 0o600)
		_, err := s.Read("state")
		var ce *CorruptError
		if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
			t.Fatalf("case %d: Read = %v, want ErrCorrupt", i, err)
		}
		want := filepath.Join(dir, "state.corrupt-"+string(rune('1'+i)))
		if ce.MovedTo != want {
			t.Fatalf("case %d: moved to %q, want %q", i, ce.MovedTo, want)
		}
		if b, _ := os.ReadFile(want); !bytes.Equal(b, bad) {
			t.Fatalf("case %d: moved-aside content differs", i)
		}
		if _, err := s.Read("state"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("case %d: after move-aside Read = %v, want not exist", i, err)
		}
	}
	if st := s.Stats(); st.Corrupt != 4 {
		t.Fatalf("Corrupt = %d", st.Corrupt)
	}
	if !strings.Contains(logbuf.String(), "[warn] State file") {
		t.Fatalf("no warning logged: %q", logbuf.String())
	}
	for range MaxCorrupt + 3 {
		os.WriteFile(filepath.Join(dir, "state"), []byte("junk"), 0o600)
		s.Read("state")
	}
	names, _ := filepath.Glob(filepath.Join(dir, "state.corrupt-*"))
	if len(names) != MaxCorrupt {
		t.Fatalf("%d corrupt copies kept, want %d", len(names), MaxCorrupt)
	}
}

func TestStorageErrorsKeepDataInRAM(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EROFS, syscall.EACCES} {
		t.Run(errno.Error(), func(t *testing.T) {
			var logbuf bytes.Buffer
			log := torlog.New(torlog.Sink{Min: torlog.Debug, Max: torlog.Err, W: &logbuf})
			ffs := &faultFS{}
			ffs.fail.Store(errno)
			s, dir, clk := newTestStore(t, Options{FS: ffs, Log: log, RetryMin: time.Minute, RetryMax: 4 * time.Minute})
			s.Write("state", []byte("keep me"))
			s.Write("other", []byte("me too"))
			for range 5 {
				s.runDue()
				clk.Add(5 * time.Minute)
			}
			if err := s.WriteNow("key", []byte("k"), Secret); !errors.Is(err, errno) || !IsStorageError(err) {
				t.Fatalf("WriteNow error %v, want %v", err, errno)
			}
			if got, err := s.Read("state"); err != nil || string(got) != "keep me" {
				t.Fatalf("Read during failure = %q, %v", got, err)
			}
			if n := strings.Count(logbuf.String(), "[warn]"); n != 1 {
				t.Fatalf("%d warnings logged, want exactly 1:\n%s", n, logbuf.String())
			}
			st := s.Stats()
			if st.Failed < 3 || st.Pending != 3 || st.Writes != 0 {
				t.Fatalf("stats %+v", st)
			}
			// Backoff: right after a failure nothing is retried.
			s.runDue()
			failed := s.Stats().Failed
			clk.Add(30 * time.Second)
			s.runDue()
			if s.Stats().Failed != failed {
				t.Fatal("retried before backoff elapsed")
			}
			leftovers, _ := filepath.Glob(filepath.Join(dir, ".*"))
			if len(leftovers) != 0 {
				t.Fatalf("temporary files left: %v", leftovers)
			}
			ffs.fail.Store(syscall.Errno(0))
			clk.Add(5 * time.Minute)
			s.runDue()
			if st := s.Stats(); st.Pending != 0 || st.Writes != 3 {
				t.Fatalf("after recovery: %+v", st)
			}
			if !strings.Contains(logbuf.String(), "works again") {
				t.Fatal("recovery not logged")
			}
			s2, _ := open(dir, Options{}, false)
			if got, err := s2.Read("other"); err != nil || string(got) != "me too" {
				t.Fatalf("after recovery disk has %q, %v", got, err)
			}
		})
	}
}

func TestTimeDependentHeldUntilClockTrusted(t *testing.T) {
	c := &flagClock{}
	s, dir, _ := newTestStore(t, Options{Clock: c})
	os.WriteFile(filepath.Join(dir, "state"), encode([]byte("LastWritten 2026-11-26")), 0o600)
	s.Write("state", []byte("LastWritten 1970-01-01"), TimeDependent)
	s.Write("plain", []byte("x"))
	s.runDue()
	if err := s.WriteNow("state", []byte("LastWritten 1970-01-01"), TimeDependent); !errors.Is(err, ErrClockUntrusted) {
		t.Fatalf("WriteNow with untrusted clock: %v", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush with held data: %v", err)
	}
	if st := s.Stats(); st.HeldForClock != 1 || st.Pending != 1 || st.Writes != 1 {
		t.Fatalf("stats %+v", st)
	}
	s2, _ := open(dir, Options{}, false)
	if got, _ := s2.Read("state"); string(got) != "LastWritten 2026-11-26" {
		t.Fatalf("good file replaced while clock untrusted: %q", got)
	}
	c.ok.Store(true)
	s.runDue()
	if got, _ := s2.Read("state"); string(got) != "LastWritten 1970-01-01" {
		t.Fatalf("held data not written once trusted: %q", got)
	}
}

func TestOpenRemovesTempFilesAndChecksNames(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".state.tmp-0123"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(dir, "keepme"), []byte("x"), 0o600)
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, ".state.tmp-0123")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("leftover temp file not removed")
	}
	if _, err := os.Stat(filepath.Join(dir, "keepme")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", ".hidden", "a/b", "../x", "x.corrupt-1", "x.tmp-1", strings.Repeat("a", 129), "sp ace"} {
		if err := s.Write(bad, nil); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

func TestBackgroundWriterAndClose(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MinInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.Write("a", []byte("1"))
	s.Write("a", []byte("2"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, _ := Open(dir, Options{})
	defer s2.Close()
	if got, err := s2.Read("a"); err != nil || string(got) != "2" {
		t.Fatalf("after Close: %q, %v", got, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MinInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "n" + string(rune('0'+g))
			for i := range 50 {
				s.Write(name, []byte{byte(i)})
				if i%10 == 0 {
					s.WriteNow(name, []byte{byte(i)})
				}
				s.Read(name)
				s.Stats()
			}
			s.Write(name, []byte("final"))
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, _ := open(dir, Options{}, false)
	for g := range 4 {
		if got, err := s2.Read("n" + string(rune('0'+g))); err != nil || string(got) != "final" {
			t.Fatalf("n%d = %q, %v", g, got, err)
		}
	}
}
