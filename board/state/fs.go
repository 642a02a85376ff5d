package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the small slice of the filesystem the Store uses. OSFS is the real
// one; tests inject failing implementations to produce ENOSPC, EROFS and
// permission errors.
type FS interface {
	// MkdirAll creates dir and its parents with permission perm.
	MkdirAll(dir string, perm fs.FileMode) error
	// CreateTemp creates a new file in dir with a name starting with
	// pattern's prefix, opened for writing, with permission perm.
	CreateTemp(dir, prefix string, perm fs.FileMode) (File, error)
	// ReadFile returns the whole content of name.
	ReadFile(name string) ([]byte, error)
	// Rename atomically replaces newpath with oldpath.
	Rename(oldpath, newpath string) error
	// Remove deletes name.
	Remove(name string) error
	// SyncDir fsyncs the directory dir so that a rename in it is durable.
	SyncDir(dir string) error
	// ReadDir lists the names in dir.
	ReadDir(dir string) ([]string, error)
	// Lstat reports whether name exists (err wraps fs.ErrNotExist if not).
	Lstat(name string) (fs.FileInfo, error)
}

// File is a file being written by the Store.
type File interface {
	Name() string
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// OSFS is the FS of the operating system.
type OSFS struct{}

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }

// CreateTemp implements FS. The file is created with O_EXCL and mode perm
// (not os.CreateTemp's 0600-then-chmod), so a secret is never readable by
// others, not even for a moment.
func (OSFS) CreateTemp(dir, prefix string, perm fs.FileMode) (File, error) {
	var buf [8]byte
	for range 100 {
		if _, err := randRead(buf[:]); err != nil {
			return nil, err
		}
		name := filepath.Join(dir, prefix+hexString(buf[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	return nil, &fs.PathError{Op: "createtemp", Path: filepath.Join(dir, prefix+"*"), Err: fs.ErrExist}
}

// ReadFile implements FS.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// Rename implements FS.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Lstat implements FS.
func (OSFS) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(name) }

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}
