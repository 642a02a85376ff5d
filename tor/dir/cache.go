package dir

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"tinytor/tor/dir/netdoc"
	"tinytor/tor/errfmt"
)

// C tor's cache file names (in its CacheDirectory).
const (
	ConsensusFile  = "cached-microdesc-consensus"
	CertsFile      = "cached-certs"
	MicrodescsFile = "cached-microdescs"
)

// FileStore keeps named files. ReadFile of an absent file returns an
// error satisfying errors.Is(err, fs.ErrNotExist). WriteFile replaces a
// file atomically: a reader sees the old or the new content, never a mix.
type FileStore interface {
	WriteFile(name string, data []byte) error
	ReadFile(name string) ([]byte, error)
}

// DirStore is a FileStore over an OS directory.
type DirStore struct {
	Dir string
}

// WriteFile writes data to Dir/name atomically (WriteFileAtomic).
func (s DirStore) WriteFile(name string, data []byte) error {
	return WriteFileAtomic(s.Dir, name, data)
}

// ReadFile reads Dir/name.
func (s DirStore) ReadFile(name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(s.Dir, name))
}

func checkName(name string) error {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return errors.New("cache file name " + strconv.Quote(name) + " is not a plain file name")
	}
	return nil
}

// WriteFileAtomic writes data to dir/name through a temporary file in dir
// that is synced and then renamed over the target; the directory is synced
// afterwards so that the rename survives a power cut.
func WriteFileAtomic(dir, name string, data []byte) (err error) {
	if err := checkName(name); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return &fs.PathError{Op: "writing", Path: name, Err: err}
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return &fs.PathError{Op: "writing", Path: tmp, Err: err}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return &fs.PathError{Op: "syncing", Path: tmp, Err: err}
	}
	if err := f.Close(); err != nil {
		return &fs.PathError{Op: "closing", Path: tmp, Err: err}
	}
	target := filepath.Join(dir, name)
	if err := os.Rename(tmp, target); err != nil {
		return &fs.PathError{Op: "renaming", Path: tmp + " to " + target, Err: err}
	}
	d, err := os.Open(dir)
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		return &fs.PathError{Op: "syncing directory", Path: dir, Err: err}
	}
	return nil
}

// Cache stores directory documents in a FileStore under C tor's names.
type Cache struct {
	Store FileStore
}

// SaveConsensus stores a consensus document's text.
func (c *Cache) SaveConsensus(doc []byte) error {
	return c.Store.WriteFile(ConsensusFile, doc)
}

// SaveCerts stores the certificates (their Raw text, concatenated).
func (c *Cache) SaveCerts(certs []*AuthCert) error {
	var buf bytes.Buffer
	for _, ct := range certs {
		buf.Write(ct.Raw)
	}
	return c.Store.WriteFile(CertsFile, buf.Bytes())
}

// SaveMicrodescs rewrites the microdescriptor cache with the texts of the
// microdescriptors in docs (fetched responses or the old cache file) whose
// digest keep accepts, each at most once. Pass the old cache content among
// docs to keep what it holds. Malformed microdescriptors are never saved
// (the caller has seen them when it parsed docs): they are skipped with
// no error.
func (c *Cache) SaveMicrodescs(docs [][]byte, keep func(digest [32]byte) bool) (int, error) {
	var buf bytes.Buffer
	seen := map[[32]byte]bool{}
	for _, doc := range docs {
		if len(doc) == 0 {
			continue
		}
		mds, spans, _ := parseMicrodescs(doc) // the well-formed ones, whatever the error
		for j, md := range mds {
			if seen[md.Digest] || !keep(md.Digest) {
				continue
			}
			seen[md.Digest] = true
			buf.Write(doc[spans[j].start:spans[j].end])
		}
	}
	return len(seen), c.Store.WriteFile(MicrodescsFile, buf.Bytes())
}

// Loaded is what Cache.Load found and re-verified.
type Loaded struct {
	// Certs are the cached certificates that verify at the given time.
	Certs []*AuthCert
	// Consensus is the cached consensus if it parses, is signed by enough
	// of the authorities with Certs, and is usable at the given time;
	// otherwise nil. ConsensusDoc is its text.
	Consensus    *Consensus
	ConsensusDoc []byte
	// Microdescs are the cached microdescriptors listed in Consensus (all
	// of them if Consensus is nil); a malformed one is dropped alone.
	// MicrodescsDoc is the file's text.
	Microdescs    []*Microdesc
	MicrodescsDoc []byte
	// Problems lists what was dropped and why (absent files are not
	// problems).
	Problems []error
}

// read returns the contents of the cache file name, nil if it is absent
// or unreadable (a problem then).
func (l *Loaded) read(store FileStore, name string) []byte {
	b, err := store.ReadFile(name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			l.Problems = append(l.Problems, &fs.PathError{Op: "reading", Path: name, Err: err})
		}
		return nil
	}
	return b
}

// problem records a part of the cache dropped because of err, with the
// context what ("cached-certs: dropping"): a *SkippedMicrodescsError
// gives one problem per skipped microdescriptor.
func (l *Loaded) problem(what string, err error) {
	var sk *SkippedMicrodescsError
	if errors.As(err, &sk) {
		for _, e := range sk.Skipped {
			l.Problems = append(l.Problems, netdoc.Reason(e, what+": dropping"))
		}
		return
	}
	l.Problems = append(l.Problems, netdoc.Reason(err, what))
}

// Load reads the cache and re-verifies everything as if it had just been
// fetched: certificates against their signatures and now, the consensus
// against the certificates and the authorities, allowing skew for its
// valid-after time.
func (c *Cache) Load(authorities [][20]byte, now time.Time, skew time.Duration) *Loaded {
	l := &Loaded{}
	if doc := l.read(c.Store, CertsFile); len(doc) > 0 {
		certs, err := ParseAuthCerts(doc)
		if err != nil {
			l.problem(CertsFile, err)
		}
		for _, ct := range certs {
			if err := ct.Verify(now); err != nil {
				l.problem(CertsFile+": dropping", err)
				continue
			}
			l.Certs = append(l.Certs, ct)
		}
	}
	if doc := l.read(c.Store, ConsensusFile); len(doc) > 0 {
		cons, err := ParseConsensus(doc)
		switch {
		case err != nil:
			l.problem(ConsensusFile, err)
		case !cons.Usable(now, skew):
			l.Problems = append(l.Problems, errfmt.Errorf("%s: not usable at %s (valid %s to %s)", ConsensusFile,
				netdoc.Time(now), netdoc.Time(cons.ValidAfter), netdoc.Time(cons.ValidUntil)))
		default:
			if err := cons.Verify(l.Certs, authorities, now); err != nil {
				l.problem(ConsensusFile, err)
			} else {
				l.Consensus, l.ConsensusDoc = cons, doc
			}
		}
	}
	if doc := l.read(c.Store, MicrodescsFile); len(doc) > 0 {
		// A malformed microdescriptor is dropped alone, with a problem
		// saying where and why; the others are kept.
		mds, err := ParseMicrodescs(doc)
		if err != nil {
			l.problem(MicrodescsFile, err)
		}
		l.MicrodescsDoc = doc
		var listed map[[32]byte]bool
		if l.Consensus != nil {
			listed = make(map[[32]byte]bool, len(l.Consensus.Relays))
			for i := range l.Consensus.Relays {
				listed[l.Consensus.Relays[i].Microdesc] = true
			}
		}
		for _, md := range mds {
			if listed == nil || listed[md.Digest] {
				l.Microdescs = append(l.Microdescs, md)
			}
		}
	}
	return l
}
