package service

import (
	"os"
	"path/filepath"
	"strings"

	"tinytor/tor/config"
)

// TorrcIDs are the service IDs (the address without ".onion") of the
// services cfgs describe, read from the hostname files their directories
// hold; a service whose file cannot be read is left out.
func TorrcIDs(cfgs []config.HiddenService) map[string]bool {
	ids := map[string]bool{}
	for _, hc := range cfgs {
		b, err := os.ReadFile(filepath.Join(hc.Dir, HostnameFile))
		if err != nil {
			continue
		}
		ids[strings.TrimSuffix(strings.TrimSpace(string(b)), ".onion")] = true
	}
	return ids
}
