package dirmgr

import (
	"bytes"
	"crypto/sha256"

	"tinytor/tor/dir"
)

// MicrodescText returns the text of the microdescriptor with the given
// digest from the cache file, which holds exactly the microdescriptors in
// use ("" if it is not there), for GETINFO md/id/<fp>.
func (m *Manager) MicrodescText(digest [32]byte) string {
	doc, err := m.cfg.Cache.Store.ReadFile(dir.MicrodescsFile)
	if err != nil {
		return ""
	}
	return string(findMicrodesc(doc, digest))
}

// findMicrodesc returns the microdescriptor of doc (a concatenation of
// microdescriptors, each starting with an "onion-key" line) whose SHA-256
// is digest, or nil.
func findMicrodesc(doc []byte, digest [32]byte) []byte {
	const start = "onion-key"
	var starts []int
	for off := 0; off < len(doc); {
		if bytes.HasPrefix(doc[off:], []byte(start)) {
			starts = append(starts, off)
		}
		nl := bytes.IndexByte(doc[off:], '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	for i, s := range starts {
		end := len(doc)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		if sha256.Sum256(doc[s:end]) == digest {
			return doc[s:end]
		}
	}
	return nil
}
