package dirmgr

import (
	"testing"

	"tinytor/tor/dir"
)

func TestCountBytesByDocument(t *testing.T) {
	m := New(Config{})
	paths, _ := dir.MicrodescPaths([][32]byte{{1}})
	m.countBytes(dir.ConsensusPath(nil), 100)
	m.countBytes(paths[0], 20)
	m.countBytes(dir.CertsByFingerprintPath([][20]byte{{2}}), 3)
	m.countBytes("/tor/server/authority", 1000) // not a document we count
	s := m.Stats()
	if s.ConsensusBytes != 100 || s.MicrodescBytes != 20 || s.CertBytes != 3 {
		t.Fatalf("stats %+v, want 100 consensus, 20 microdesc, 3 cert bytes", s)
	}
}
