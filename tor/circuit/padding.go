package circuit

import (
	"math/rand/v2"

	"tinytor/tor/cell"
)

// Random padding in DATA cells.
//
// sendLocked fills the unused part of every relay cell with four zero bytes
// and then random bytes from the circuit's generator (tor-spec 6.1). A full
// DATA cell has no unused part, though, and an authenticated SENDME proves
// that the hop saw the cells only if their digest cannot be predicted: so
// "random bytes should be added to at least one RELAY_DATA cell within one
// increment window", one in every 100 (tor-spec 7.3). As C tor does
// (connection_edge_get_inbuf_bytes_to_package), the packager of each hop
// counts down an interval of 50 to 99 DATA cells, picked at random, and
// shortens the cell that ends it unless a cell in the interval was short
// enough already. Hence any 100 consecutive DATA cells to a hop include one
// with at least randomPadMin random padding bytes.

// randomPadMin is how many random padding bytes, after the four zero ones,
// make a DATA cell random enough (C tor's RELAY_PAYLOAD_LENGTH_FOR_RANDOM_SENDMES).
const randomPadMin = 16

// randomDataMax is the most data a DATA cell carries and still has
// randomPadMin random bytes of padding.
const randomDataMax = cell.RelayDataLen - 4 - randomPadMin

// sendPadding is a hop's schedule of random DATA cells (C tor's
// send_randomness_after_n_cells and have_sent_sufficiently_random_cell).
// It is guarded by Circuit.mu.
type sendPadding struct {
	left int  // DATA cells until one must be random
	sent bool // a random cell has gone out since left was picked
	set  bool // left has been picked
}

// dataLen returns how many of the avail (> 0) bytes a writer has the next
// DATA cell to the hop carries, and counts that cell as sent.
func (p *sendPadding) dataLen(avail int, rng *rand.ChaCha8) int {
	if !p.set {
		p.reset(rng)
	}
	n := min(avail, cell.RelayDataLen)
	if p.left == 0 && !p.sent {
		n = min(n, randomDataMax)
	}
	if n <= randomDataMax {
		p.sent = true
	}
	if p.left == 0 {
		p.reset(rng)
	}
	p.left--
	return n
}

// reset starts a new interval of CircWindowInc/2 to CircWindowInc-1 cells.
func (p *sendPadding) reset(rng *rand.ChaCha8) {
	p.set, p.sent = true, false
	p.left = CircWindowInc/2 + int(rng.Uint64()%(CircWindowInc/2))
}
