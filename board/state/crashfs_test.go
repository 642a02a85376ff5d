package state

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashFS is an in-memory model of a filesystem that loses power: file
// data reaches "disk" only on File.Sync, directory changes (create,
// rename, remove) only on SyncDir. Crash computes what a reboot would find:
// synced data and directory entries for sure, plus an arbitrary subset of
// the unsynced ones, and for unsynced file data an arbitrary prefix of what
// was written (torn writes). Unlike SIGKILL, which leaves the page cache
// intact, this catches a missing or misplaced fsync.
type crashFS struct {
	mu     sync.Mutex
	dir    map[string]*inode // volatile directory
	durDir map[string]*inode // directory as on disk
	budget int               // mutating operations left before power fails (-1: unlimited)
	nextID int
}

type inode struct {
	id     int
	data   []byte // page cache
	synced []byte // on disk
}

var errPowerLost = errors.New("power lost")

func newCrashFS() *crashFS {
	return &crashFS{dir: map[string]*inode{}, durDir: map[string]*inode{}, budget: -1}
}

// op charges one mutating operation; false means the power is gone.
func (c *crashFS) op() bool {
	if c.budget == 0 {
		return false
	}
	if c.budget > 0 {
		c.budget--
	}
	return true
}

// crash returns the filesystem as found after power returns.
func (c *crashFS) crash(rng *rand.Rand) *crashFS {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := newCrashFS()
	names := map[string]bool{}
	for n := range c.dir {
		names[n] = true
	}
	for n := range c.durDir {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		vol, dur := c.dir[n], c.durDir[n]
		ino := dur
		if vol != dur && rng.IntN(2) == 0 {
			ino = vol // the unsynced directory change happened to reach disk
		}
		if ino == nil {
			continue
		}
		content := ino.synced
		if !bytes.Equal(ino.data, ino.synced) && rng.IntN(2) == 0 {
			// Some unsynced pages were written back: a torn file.
			content = ino.data[:rng.IntN(len(ino.data)+1)]
		}
		nino := &inode{id: ino.id, data: bytes.Clone(content), synced: bytes.Clone(content)}
		out.dir[n], out.durDir[n] = nino, nino
	}
	out.nextID = c.nextID
	return out
}

func (c *crashFS) MkdirAll(string, fs.FileMode) error { return nil }

func (c *crashFS) CreateTemp(dir, prefix string, _ fs.FileMode) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.op() {
		return nil, errPowerLost
	}
	c.nextID++
	name := fmt.Sprintf("%s%d", prefix, c.nextID)
	ino := &inode{id: c.nextID}
	c.dir[name] = ino
	return &crashFile{fs: c, ino: ino, name: filepath.Join(dir, name)}, nil
}

func (c *crashFS) ReadFile(name string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ino := c.dir[filepath.Base(name)]
	if ino == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(ino.data), nil
}

func (c *crashFS) Rename(oldpath, newpath string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.op() {
		return errPowerLost
	}
	o, n := filepath.Base(oldpath), filepath.Base(newpath)
	ino := c.dir[o]
	if ino == nil {
		return &fs.PathError{Op: "rename", Path: oldpath, Err: fs.ErrNotExist}
	}
	delete(c.dir, o)
	c.dir[n] = ino
	return nil
}

func (c *crashFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.op() {
		return errPowerLost
	}
	delete(c.dir, filepath.Base(name))
	return nil
}

func (c *crashFS) SyncDir(string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.op() {
		return errPowerLost
	}
	c.durDir = make(map[string]*inode, len(c.dir))
	for n, ino := range c.dir {
		c.durDir[n] = ino
	}
	return nil
}

func (c *crashFS) ReadDir(string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for n := range c.dir {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

type fakeInfo struct{ name string }

func (f fakeInfo) Name() string       { return f.name }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return 0o600 }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return nil }

func (c *crashFS) Lstat(name string) (fs.FileInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir[filepath.Base(name)] == nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
	}
	return fakeInfo{filepath.Base(name)}, nil
}

type crashFile struct {
	fs   *crashFS
	ino  *inode
	name string
}

func (f *crashFile) Name() string { return f.name }
func (f *crashFile) Close() error { return nil }

func (f *crashFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if !f.fs.op() {
		return 0, errPowerLost
	}
	f.ino.data = append(f.ino.data, p...)
	return len(p), nil
}

func (f *crashFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if !f.fs.op() {
		return errPowerLost
	}
	f.ino.synced = bytes.Clone(f.ino.data)
	return nil
}

// TestCrashFSModelTearsUnsyncedFiles checks the model itself: data that
// was written but not synced can come back torn.
func TestCrashFSModelTearsUnsyncedFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	torn := false
	for range 50 {
		c := newCrashFS()
		f, _ := c.CreateTemp("/d", "x", 0o600)
		f.Write([]byte("0123456789"))
		c.SyncDir("/d")
		after := c.crash(rng)
		b, err := after.ReadFile("/d/x1")
		if err == nil && len(b) > 0 && len(b) < 10 {
			torn = true
		}
	}
	if !torn {
		t.Fatal("the crash model never tore an unsynced file")
	}
}

// TestPowerLossAtEveryStep cuts power after a random number of filesystem
// operations while the Store replaces files, then checks on the "rebooted"
// filesystem that every file is an old or new version, never torn (raw
// files included), and that every write WriteNow acknowledged survived.
func TestPowerLossAtEveryStep(t *testing.T) {
	rng := rand.New(rand.NewPCG(20261127, 7))
	names := []string{"state", "guards"}
	trials := 500 // TINYTOR_CRASH_TRIALS overrides
	if v, err := strconv.Atoi(os.Getenv("TINYTOR_CRASH_TRIALS")); err == nil {
		trials = v
	}
	if testing.Short() {
		trials = 100
	}
	for trial := range trials {
		c := newCrashFS()
		s, err := open("/data", Options{FS: c}, false)
		if err != nil {
			t.Fatal(err)
		}
		acked := map[string]int{}
		for _, n := range names {
			if err := s.WriteNow(n, content(n, 1)); err != nil {
				t.Fatal(err)
			}
			acked[n] = 1
		}
		if err := s.WriteNow(rawName, content(rawName, 1), Raw); err != nil {
			t.Fatal(err)
		}
		acked[rawName] = 1
		c.mu.Lock()
		c.budget = rng.IntN(30)
		c.mu.Unlock()
		last := map[string]int{}
		for gen := 2; gen < 6; gen++ {
			for _, n := range append(names, rawName) {
				var flags []Flag
				if n == rawName {
					flags = []Flag{Raw}
				}
				last[n] = gen
				if s.WriteNow(n, content(n, gen), flags...) == nil {
					acked[n] = gen
				}
			}
		}
		after := c.crash(rng)
		s2, err := open("/data", Options{FS: after}, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range append(names, rawName) {
			var b []byte
			if n == rawName {
				b, err = s2.ReadRaw(n)
			} else {
				b, err = s2.Read(n)
			}
			if err != nil {
				t.Fatalf("trial %d: %s after power loss: %v", trial, n, err)
			}
			if cerr := checkContent(n, b); cerr != nil {
				t.Fatalf("trial %d: %s torn: %v", trial, n, cerr)
			}
			var gen int
			fmt.Sscanf(strings.SplitN(string(b), " ", 3)[1], "gen=%d", &gen)
			if gen < acked[n] || gen > max(last[n], 1) {
				t.Fatalf("trial %d: %s is generation %d; acknowledged %d, last attempted %d", trial, n, gen, acked[n], last[n])
			}
		}
		// Leftover temporaries are cleaned at Open.
		left, _ := after.ReadDir("/data")
		for _, n := range left {
			if strings.HasPrefix(n, ".") {
				t.Fatalf("trial %d: temporary %s survived Open", trial, n)
			}
		}
	}
}
