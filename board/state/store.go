// Package state is tinytor's one writer of persistent state on flash.
//
// Router flash wears out and loses power mid-write, so every file goes
// through a Store, which
//
//   - coalesces routine writes: the latest data per name reaches flash at
//     most once per Options.MinInterval (WriteNow and Flush bypass this for
//     data that must be durable at once, such as a fresh onion key);
//   - replaces files atomically: a temporary file in the same directory is
//     written, fsynced, renamed over the old one, and the directory is
//     fsynced, so after a power cut either the old or the new file is there;
//   - checksums files: each file ends with a trailer line holding the
//     payload's length and SHA-256 (see the format below). A torn or corrupt
//     file is never trusted: it is moved aside to "name.corrupt-<n>", a
//     warning is logged and Read returns a *CorruptError (errors.Is
//     ErrCorrupt) so the caller rebuilds the data;
//   - survives a full, read-only or unwritable disk: the data stays in RAM
//     (Read returns it), one warning is logged, and the write is retried
//     with exponential backoff;
//   - holds time-stamped data while the wall clock is not known good (a
//     router without RTC says 1970 until it learns the time), so a file
//     stamped 1970 never replaces a good one.
//
// # File format
//
// A checksummed file (the default) is
//
//	payload
//	#tinytor-state v1 len=<decimal payload length> sha256=<64 lowercase hex>
//
// that is: the payload bytes, a newline (always added, even when the
// payload ends with one), the trailer line, and a final newline. The length
// and hash cover the payload only. Read strips the trailer.
//
// Files that another program must read unchanged (C tor's
// hs_ed25519_secret_key, for example) are written with the Raw flag: no
// trailer, exactly the given bytes, still atomically replaced. Read such
// files with ReadRaw; their integrity rests on the atomic rename alone, so
// callers should check what they parse (key files have their own headers).
//
// All files are created with mode Options.FileMode (default 0600); data
// written with the Secret flag is always 0600.
package state

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"tinytor/tor/errfmt"
	"tinytor/tor/lock"
	"tinytor/tor/torlog"
)

// Flag modifies one write.
type Flag uint8

const (
	// Raw writes data exactly as given, without the checksum trailer, for
	// files read by other programs (C tor key formats). Read it back with
	// ReadRaw. The replace is still atomic.
	Raw Flag = 1 << iota
	// TimeDependent marks data that embeds wall-clock time (the state file,
	// guard sampling dates). While Options.Clock says the time is not
	// trusted the data is held in RAM and only reaches flash once it is.
	TimeDependent
	// Secret marks key material: the file is always created 0600 and the
	// content is never logged.
	Secret
)

// Clock tells the Store whether wall-clock time is known good.
// board/clock's Clock implements it.
type Clock interface {
	Trusted() bool
}

// Default values of Options.
const (
	DefaultMinInterval = 10 * time.Minute
	DefaultRetryMin    = 30 * time.Second
	DefaultRetryMax    = 30 * time.Minute
	DefaultClockPoll   = 5 * time.Second
	DefaultFileMode    = fs.FileMode(0o600)
	// MaxCorrupt is how many moved-aside copies are kept per name; older
	// ones are overwritten by newer corrupt files (flash space is small).
	MaxCorrupt = 8
)

// Options configure a Store. The zero value gives the defaults.
type Options struct {
	// MinInterval is the least time between two writes of one name by the
	// background writer (default DefaultMinInterval). The first write of a
	// name after Open is not delayed.
	MinInterval time.Duration
	// RetryMin and RetryMax bound the exponential backoff after a failed
	// write (defaults DefaultRetryMin, DefaultRetryMax).
	RetryMin, RetryMax time.Duration
	// ClockPoll is how often data held for an untrusted clock is
	// reconsidered (default DefaultClockPoll).
	ClockPoll time.Duration
	// FileMode is the permission of files created (default 0600).
	FileMode fs.FileMode
	// FS is the filesystem (default OSFS{}).
	FS FS
	// Clock says whether wall time is trusted; nil means always trusted.
	Clock Clock
	// Log receives warnings (nil: discard).
	Log *torlog.Logger
	// Now is the time source for scheduling (default time.Now).
	Now func() time.Time
}

// Stats are the Store's counters.
type Stats struct {
	// BytesWritten counts bytes handed to the filesystem, trailers included.
	BytesWritten uint64
	// Writes counts completed atomic replaces.
	Writes uint64
	// Coalesced counts Write calls whose data was replaced by a later
	// Write before it reached flash (writes saved).
	Coalesced uint64
	// Failed counts failed write attempts (ENOSPC, EROFS, ...).
	Failed uint64
	// Corrupt counts files found corrupt and moved aside.
	Corrupt uint64
	// Pending is the number of names whose latest data is not on flash.
	Pending int
	// HeldForClock is how many of those wait for a trusted clock.
	HeldForClock int
}

// ErrCorrupt is matched (errors.Is) by the error Read returns for a file
// that failed its checksum.
var ErrCorrupt = errors.New("state file corrupt")

// ErrClosed is returned by writes to a closed Store.
var ErrClosed = errors.New("state store closed")

// ErrClockUntrusted is returned by WriteNow for TimeDependent data while the
// clock is not trusted; the data is kept in RAM and written later.
var ErrClockUntrusted = errors.New("wall clock not trusted yet: time-dependent state held in RAM")

// CorruptError describes a file that failed its checksum.
type CorruptError struct {
	Name    string // state name
	MovedTo string // path it was moved to ("" if moving failed)
	Reason  error  // what was wrong
}

func (e *CorruptError) Error() string {
	where := "could not be moved aside"
	if e.MovedTo != "" {
		where = "moved to " + e.MovedTo
	}
	return "state file " + strconv.Quote(e.Name) + " corrupt (" + e.Reason.Error() + "); " + where
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the reason.
func (e *CorruptError) Unwrap() error { return e.Reason }

type entry struct {
	data      []byte
	flags     Flag
	dirty     bool   // data is not on flash yet
	gen       uint64 // bumped by every Write
	written   bool   // written at least once since Open
	lastWrite time.Time
	retryAt   time.Time
	backoff   time.Duration
}

// Store is the single writer of a state directory. It is safe for
// concurrent use.
type Store struct {
	dir  string
	opts Options

	ioMu lock.Mutex // serialises filesystem writes (one writer)

	mu       lock.Mutex
	entries  map[string]*entry
	stats    Stats
	degraded bool // a write failed and has not succeeded since
	closed   bool

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// Open opens (creating it 0700 if needed) the state directory dir, removes
// temporary files left by an interrupted write, and starts the background
// writer.
func Open(dir string, opts Options) (*Store, error) {
	return open(dir, opts, true)
}

func open(dir string, opts Options, background bool) (*Store, error) {
	if opts.MinInterval <= 0 {
		opts.MinInterval = DefaultMinInterval
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = DefaultRetryMin
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(DefaultRetryMax, opts.RetryMin)
	}
	if opts.ClockPoll <= 0 {
		opts.ClockPoll = DefaultClockPoll
	}
	if opts.FileMode == 0 {
		opts.FileMode = DefaultFileMode
	}
	if opts.FS == nil {
		opts.FS = OSFS{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := opts.FS.MkdirAll(dir, 0o700); err != nil {
		return nil, errfmt.Errorf("state: creating directory %s: %w", dir, err)
	}
	names, err := opts.FS.ReadDir(dir)
	if err != nil {
		return nil, errfmt.Errorf("state: listing %s: %w", dir, err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") && strings.Contains(n, tmpInfix) {
			// Left by a write interrupted before its rename; the old
			// file (if any) is intact. Failure to remove is harmless.
			_ = opts.FS.Remove(filepath.Join(dir, n))
		}
	}
	s := &Store{
		dir:     dir,
		opts:    opts,
		entries: make(map[string]*entry),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	if background {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		go s.loop(ctx)
	} else {
		close(s.done)
	}
	return s, nil
}

const tmpInfix = ".tmp-"

// checkName accepts names of plain files in the state directory.
func checkName(name string) error {
	var why string
	switch {
	case name == "" || len(name) > 128:
		why = "want 1 to 128 characters"
	case name[0] == '.':
		why = "must not start with '.'"
	}
	for i := 0; i < len(name) && why == ""; i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			why = "character " + strconv.QuoteRune(rune(c)) + " at " + strconv.Itoa(i) + " (allowed: letters, digits, '_', '-', '.')"
		}
	}
	if why == "" && (strings.Contains(name, ".corrupt-") || strings.Contains(name, tmpInfix)) {
		why = "reserved suffix"
	}
	if why != "" {
		return errfmt.Errorf("state: bad name %q: %s", name, why)
	}
	return nil
}

func joinFlags(flags []Flag) Flag {
	var f Flag
	for _, x := range flags {
		f |= x
	}
	return f
}

// Write queues data as the new content of name. It returns at once; the
// background writer puts the latest data on flash, at most once per
// MinInterval per name. Until then Read returns the queued data. Write
// copies data. The error is non-nil only for a bad name or a closed Store.
func (s *Store) Write(name string, data []byte, flags ...Flag) error {
	if err := s.queue(name, data, joinFlags(flags)); err != nil {
		return err
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

func (s *Store) queue(name string, data []byte, flags Flag) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return writeError(name, ErrClosed)
	}
	e := s.entries[name]
	if e == nil {
		e = &entry{}
		s.entries[name] = e
	}
	if e.dirty {
		s.stats.Coalesced++
	}
	e.data = append([]byte(nil), data...)
	e.flags = flags
	e.dirty = true
	e.gen++
	return nil
}

// WriteNow writes data to flash before returning, ignoring MinInterval and
// any retry backoff. If the write fails the data stays queued (Read
// returns it) and is retried in the background; the error says why. For
// TimeDependent data while the clock is untrusted, it returns
// ErrClockUntrusted and keeps the data queued.
func (s *Store) WriteNow(name string, data []byte, flags ...Flag) error {
	if err := s.queue(name, data, joinFlags(flags)); err != nil {
		return err
	}
	return s.writeOne(name, true)
}

// Flush writes every queued name now, ignoring MinInterval and backoff,
// except TimeDependent data while the clock is untrusted (that stays
// queued and is not an error). It returns the write errors joined.
func (s *Store) Flush() error {
	var errs []error
	for _, n := range s.dirtyNames() {
		if err := s.writeOne(n, true); err != nil && !errors.Is(err, ErrClockUntrusted) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops the background writer and flushes. Data that still cannot be
// written (full disk, untrusted clock) is lost with the process; the
// returned error says so.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
	<-s.done
	err := s.Flush()
	if held := s.dirtyNames(); len(held) > 0 {
		err = errors.Join(err, errfmt.Errorf("state: closing with %d unwritten file(s): %s", len(held), strings.Join(held, ", ")))
	}
	return err
}

// dirtyNames returns the names whose data is queued.
func (s *Store) dirtyNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n, e := range s.entries {
		if e.dirty {
			names = append(names, n)
		}
	}
	return names
}

// writeError is the error of a failed write of name.
func writeError(name string, err error) error {
	return errfmt.Errorf("state: writing %q: %w", name, err)
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	trusted := s.trusted()
	for _, e := range s.entries {
		if e.dirty {
			st.Pending++
			if e.flags&TimeDependent != 0 && !trusted {
				st.HeldForClock++
			}
		}
	}
	return st
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) trusted() bool { return s.opts.Clock == nil || s.opts.Clock.Trusted() }

// Read returns the content of the checksummed file name: the queued data if
// it has not reached flash yet, else the file's payload. A missing file
// gives an error matching fs.ErrNotExist; a file failing its checksum is
// moved aside and gives a *CorruptError (errors.Is ErrCorrupt).
//
// Never Read a file written with Raw: it has no trailer, so it would be
// judged corrupt and moved aside. Use ReadRaw for those.
func (s *Store) Read(name string) ([]byte, error) {
	return s.read(name, false)
}

// ReadRaw returns the content of a file written with the Raw flag: the
// queued data, or the file's bytes unchecked.
func (s *Store) ReadRaw(name string) ([]byte, error) {
	return s.read(name, true)
}

func (s *Store) read(name string, raw bool) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if e := s.entries[name]; e != nil && e.dirty {
		d := append([]byte(nil), e.data...)
		s.mu.Unlock()
		return d, nil
	}
	s.mu.Unlock()
	// Hold ioMu so no rename of this name happens while we read or move
	// a corrupt file aside.
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	path := filepath.Join(s.dir, name)
	b, err := s.opts.FS.ReadFile(path)
	if err != nil {
		return nil, errfmt.Errorf("state: reading %s: %w", path, err)
	}
	if raw {
		return b, nil
	}
	payload, derr := decode(b)
	if derr == nil {
		return payload, nil
	}
	cerr := &CorruptError{Name: name, Reason: derr}
	if moved, merr := s.moveAside(name); merr == nil {
		cerr.MovedTo = moved
	} else {
		s.opts.Log.Warnf("State file %s is corrupt and could not be moved aside: %v", path, merr)
	}
	s.mu.Lock()
	s.stats.Corrupt++
	s.mu.Unlock()
	s.opts.Log.Warnf("State file %s is corrupt (%v); not trusting it. Moved to %s; it will be rebuilt.", path, derr, cerr.MovedTo)
	return nil, cerr
}

// moveAside renames name to the first free name.corrupt-<n> (n from 1 to
// MaxCorrupt; when all are taken the last is overwritten).
func (s *Store) moveAside(name string) (string, error) {
	var target string
	for n := 1; n <= MaxCorrupt; n++ {
		target = filepath.Join(s.dir, name+".corrupt-"+strconv.Itoa(n))
		if _, err := s.opts.FS.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err := s.opts.FS.Rename(filepath.Join(s.dir, name), target); err != nil {
		return "", err
	}
	_ = s.opts.FS.SyncDir(s.dir)
	return target, nil
}

// writeOne writes the queued data of name if it is still dirty. force
// ignores MinInterval and backoff.
func (s *Store) writeOne(name string, force bool) error {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	s.mu.Lock()
	e := s.entries[name]
	if e == nil || !e.dirty {
		s.mu.Unlock()
		return nil
	}
	now := s.opts.Now()
	if e.flags&TimeDependent != 0 && !s.trusted() {
		s.mu.Unlock()
		return writeError(name, ErrClockUntrusted)
	}
	if !force && !s.due(e, now) {
		s.mu.Unlock()
		return nil
	}
	data, flags, gen := e.data, e.flags, e.gen
	s.mu.Unlock()

	n, err := s.replace(name, data, flags)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.BytesWritten += uint64(n)
	if err != nil {
		s.stats.Failed++
		e.backoff = min(max(s.opts.RetryMin, 2*e.backoff), s.opts.RetryMax)
		e.retryAt = now.Add(e.backoff)
		if !s.degraded {
			s.degraded = true
			s.opts.Log.Warnf("Could not write state to %s: %v. Keeping it in memory and retrying later; check free space and that the filesystem is writable.", s.dir, err)
		}
		return writeError(name, err)
	}
	s.stats.Writes++
	if s.degraded {
		s.degraded = false
		s.opts.Log.Noticef("Writing state to %s works again.", s.dir)
	}
	e.written = true
	e.lastWrite = now
	e.backoff = 0
	e.retryAt = time.Time{}
	if e.gen == gen {
		e.dirty = false
		e.data = nil
	}
	return nil
}

// due reports whether the background writer may write e at now.
func (s *Store) due(e *entry, now time.Time) bool {
	if e.written && now.Sub(e.lastWrite) < s.opts.MinInterval {
		return false
	}
	return !now.Before(e.retryAt)
}

// replace atomically replaces the file name with data and returns the
// number of bytes written.
func (s *Store) replace(name string, data []byte, flags Flag) (int, error) {
	content := data
	if flags&Raw == 0 {
		content = encode(data)
	}
	mode := s.opts.FileMode
	if flags&Secret != 0 {
		mode = 0o600
	}
	f, err := s.opts.FS.CreateTemp(s.dir, "."+name+tmpInfix, mode)
	if err != nil {
		return 0, errfmt.Errorf("creating temporary file: %w", err)
	}
	tmp := f.Name()
	n, err := f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.opts.FS.Rename(tmp, filepath.Join(s.dir, name))
	}
	if err != nil {
		_ = s.opts.FS.Remove(tmp)
		return n, errfmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := s.opts.FS.SyncDir(s.dir); err != nil {
		// The rename happened; durability of the directory entry is
		// uncertain, so report it and let the retry rewrite it.
		return n, errfmt.Errorf("syncing directory %s: %w", s.dir, err)
	}
	return n, nil
}

// runDue writes every name that is due at now and returns when the loop
// should look again (zero: nothing pending).
func (s *Store) runDue() time.Time {
	now := s.opts.Now()
	s.mu.Lock()
	var names []string
	var next time.Time
	trusted := s.trusted()
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for n, e := range s.entries {
		if !e.dirty {
			continue
		}
		var t time.Time
		switch {
		case e.flags&TimeDependent != 0 && !trusted:
			t = now.Add(s.opts.ClockPoll)
		case s.due(e, now):
			names = append(names, n)
			continue
		default:
			t = e.retryAt
			if e.written {
				t = later2(t, e.lastWrite.Add(s.opts.MinInterval))
			}
		}
		later(t)
	}
	s.mu.Unlock()
	for _, n := range names {
		err := s.writeOne(n, false)
		s.mu.Lock()
		if e := s.entries[n]; e != nil && (err != nil || e.dirty) {
			t := e.lastWrite.Add(s.opts.MinInterval)
			if err != nil {
				// Retry at the backoff time, or, if the clock
				// stopped being trusted meanwhile, at the next poll.
				t = later2(e.retryAt, now.Add(s.opts.ClockPoll))
			}
			later(t)
		}
		s.mu.Unlock()
	}
	return next
}

func later2(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// loop is the background writer.
func (s *Store) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := s.runDue()
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(s.opts.Now()), 10*time.Millisecond)
		}
		t.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

// IsStorageError reports whether err is one of the errors a router's flash
// typically gives when it is full or remounted read-only (ENOSPC, EDQUOT,
// EROFS, EACCES, EPERM, EIO).
func IsStorageError(err error) bool {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.EIO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
