// Package ring computes the HSDir hash ring of v3 onion services
// (rend-spec-v3 2.2.3, 2.2.4, 2.3.1): where a service's descriptor is
// stored and fetched, which shared random value and time period a client
// and a service use, and the disaster SRV when the consensus has none.
//
// It works on plain values (ed25519 identities, SRVs, the consensus
// valid-after time), so it does not depend on the directory code.
package ring

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha3"
	"encoding/binary"
	"slices"
	"sort"
	"time"

	"tinytor/onion/keys"
)

// Params are the consensus parameters of the ring (rend-spec-v3 2.2.3).
type Params struct {
	Replicas    int // hsdir_n_replicas, [1,16], default 2
	SpreadFetch int // hsdir_spread_fetch, [1,128], default 3
	SpreadStore int // hsdir_spread_store, [1,128], default 4
}

// DefaultParams returns the defaults (used when the consensus has no
// params line, as on test networks).
func DefaultParams() Params { return Params{Replicas: 2, SpreadFetch: 3, SpreadStore: 4} }

// ParamsFrom reads the parameters with a consensus's parameter lookup
// (dir.Consensus.Param has this signature), with the spec's defaults and
// bounds.
func ParamsFrom(param func(name string, def, min, max int32) int32) Params {
	return Params{
		Replicas:    int(param("hsdir_n_replicas", 2, 1, 16)),
		SpreadFetch: int(param("hsdir_spread_fetch", 3, 1, 128)),
		SpreadStore: int(param("hsdir_spread_store", 4, 1, 128)),
	}
}

func u64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// HSIndex returns hs_service_index(replica) = SHA3-256("store-at-idx" |
// blinded | INT_8(replica) | INT_8(periodMinutes) | INT_8(period)).
func HSIndex(replica uint64, blinded ed25519.PublicKey, period, periodMinutes uint64) [32]byte {
	b := make([]byte, 0, 12+32+24)
	b = append(b, "store-at-idx"...)
	b = append(b, blinded...)
	b = u64(b, replica)
	b = u64(b, periodMinutes)
	b = u64(b, period)
	return sha3.Sum256(b)
}

// HSDirIndex returns hs_relay_index = SHA3-256("node-idx" | ed25519 id |
// srv | INT_8(period) | INT_8(periodMinutes)).
func HSDirIndex(id [32]byte, srv [32]byte, period, periodMinutes uint64) [32]byte {
	b := make([]byte, 0, 8+64+16)
	b = append(b, "node-idx"...)
	b = append(b, id[:]...)
	b = append(b, srv[:]...)
	b = u64(b, period)
	b = u64(b, periodMinutes)
	return sha3.Sum256(b)
}

// DisasterSRV returns the SRV to use for a period when the consensus lacks
// one: SHA3-256("shared-random-disaster" | INT_8(periodMinutes) |
// INT_8(period)) (rend-spec-v3 2.3.1).
func DisasterSRV(period, periodMinutes uint64) [32]byte {
	b := make([]byte, 0, 22+16)
	b = append(b, "shared-random-disaster"...)
	b = u64(b, periodMinutes)
	b = u64(b, period)
	return sha3.Sum256(b)
}

// SRVs are the shared random values of a consensus; nil when absent.
type SRVs struct {
	Current, Previous *[32]byte
}

func (s SRVs) current(period, minutes uint64) [32]byte {
	if s.Current != nil {
		return *s.Current
	}
	return DisasterSRV(period, minutes)
}

func (s SRVs) previous(period, minutes uint64) [32]byte {
	if s.Previous != nil {
		return *s.Previous
	}
	return DisasterSRV(period, minutes)
}

// Use is a time period and the SRV that goes with it in the ring: the
// descriptor for Period (blinded with that period) is stored at the nodes
// whose indexes are computed with SRV and Period.
type Use struct {
	Period uint64
	SRV    [32]byte
}

// Fetch returns what a client uses to fetch descriptors with a consensus
// of this valid-after time: the current period, with the current SRV
// between a new period and the next SRV, else the previous SRV (C tor
// node_set_hsdir_index, rend-spec-v3 2.2.4.1).
func Fetch(p keys.Periods, validAfter time.Time, srvs SRVs) Use {
	tp := p.Num(validAfter)
	if p.InTPToSRV(validAfter) {
		return Use{tp, srvs.current(tp, p.LengthMinutes)}
	}
	return Use{tp, srvs.previous(tp, p.LengthMinutes)}
}

// Store returns what a service uses for its two descriptors (rend-spec-v3
// 2.2.4.2): between a new period and the next SRV, the previous period
// with the previous SRV and the current period with the current SRV;
// otherwise the current period with the previous SRV and the next period
// with the current SRV.
func Store(p keys.Periods, validAfter time.Time, srvs SRVs) (first, second Use) {
	tp := p.Num(validAfter)
	m := p.LengthMinutes
	if p.InTPToSRV(validAfter) {
		return Use{tp - 1, srvs.previous(tp-1, m)}, Use{tp, srvs.current(tp, m)}
	}
	return Use{tp, srvs.previous(tp, m)}, Use{tp + 1, srvs.current(tp+1, m)}
}

// Node is a relay with the HSDir flag (and a v3 HSDir protocol version)
// whose ed25519 identity is known.
type Node struct {
	Ed25519ID [32]byte
	// RSAID is the relay's fingerprint, for the caller to find it again.
	RSAID [20]byte
}

// Responsible returns the HSDirs responsible for the descriptor of the
// service with this blinded key (blinded for u.Period): for each replica
// 1..Replicas, the first spread nodes whose index follows the replica's
// hs_index on the ring, skipping nodes already chosen (C tor
// hs_get_responsible_hsdirs). Use spread = SpreadFetch to fetch (then pick
// one at random) and SpreadStore to upload. Fewer nodes come back if the
// ring is small.
func Responsible(nodes []Node, blinded ed25519.PublicKey, u Use, periodMinutes uint64, replicas, spread int) []Node {
	type entry struct {
		idx  [32]byte
		node Node
	}
	// Pointers, so that the sort shares the instantiation for pointer
	// slices used elsewhere.
	ring := make([]*entry, 0, len(nodes))
	seenID := make(map[[32]byte]bool, len(nodes))
	for _, n := range nodes {
		if seenID[n.Ed25519ID] {
			continue
		}
		seenID[n.Ed25519ID] = true
		ring = append(ring, &entry{HSDirIndex(n.Ed25519ID, u.SRV, u.Period, periodMinutes), n})
	}
	if len(ring) == 0 {
		return nil
	}
	slices.SortFunc(ring, func(a, b *entry) int { return bytes.Compare(a.idx[:], b.idx[:]) })
	var out []Node
	chosen := make(map[[32]byte]bool)
	for replica := 1; replica <= replicas; replica++ {
		hs := HSIndex(uint64(replica), blinded, u.Period, periodMinutes)
		// First node whose index is >= hs_index, wrapping to the start.
		start := sort.Search(len(ring), func(i int) bool { return bytes.Compare(ring[i].idx[:], hs[:]) >= 0 })
		if start == len(ring) {
			start = 0
		}
		added := 0
		for i := start; added < spread; {
			n := ring[i].node
			if !chosen[n.Ed25519ID] {
				chosen[n.Ed25519ID] = true
				out = append(out, n)
				added++
			}
			if i++; i == len(ring) {
				i = 0
			}
			if i == start {
				break
			}
		}
	}
	return out
}
