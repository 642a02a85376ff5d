package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha3"
	"encoding/binary"
	"time"

	"tinytor/tor/errfmt"
)

// OPEMax is the largest input of the order-preserving encryption C tor
// uses for revision counters (OPE_INPUT_MAX, 2^18).
const OPEMax = 1 << 18

// ope returns C tor's order-preserving encryption of n (crypto_ope.c): the
// sum of the first n little-endian 16-bit words of the AES-256-CTR
// keystream (zero IV) under key, each plus one, so that the result grows
// strictly with n. n must be in [1, OPEMax].
func ope(key [32]byte, n int) (uint64, error) {
	if n < 1 || n > OPEMax {
		return 0, errfmt.Errorf("order-preserving encryption input %d out of [1, %d]", n, OPEMax)
	}
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return 0, err
	}
	var iv [aes.BlockSize]byte
	s := cipher.NewCTR(b, iv[:])
	var buf [4096]byte
	var total uint64
	for n > 0 {
		m := min(n, len(buf)/2)
		chunk := buf[:2*m]
		clear(chunk)
		s.XORKeyStream(chunk, chunk)
		for i := 0; i < m; i++ {
			total += uint64(binary.LittleEndian.Uint16(chunk[2*i:])) + 1
		}
		n -= m
	}
	return total, nil
}

// RevisionCounter returns the revision counter C tor puts in a descriptor
// signed by the blinded key k (hs_service.c set_descriptor_revision_counter,
// rend-spec-v3 appendix F.2): the order-preserving encryption, under the
// key SHA3-256("rev-counter-generation\0" | k's expanded secret), of the
// whole seconds elapsed since the start of the shared random protocol run
// whose SRV places the descriptor, plus one. For a service's first
// descriptor that is the previous run (Periods.SRVRunStart minus
// Periods.SRVRunLength), for its second the current run. The counter grows
// with elapsed without any state, so descriptors made after a restart still
// supersede older ones at the HSDirs. Elapsed beyond the OPE range is
// clamped as C tor does.
func (k *SigningKey) RevisionCounter(elapsed time.Duration) (uint64, error) {
	if elapsed < 0 {
		return 0, errfmt.Errorf("revision counter: negative elapsed time %v", elapsed)
	}
	n := int64(elapsed/time.Second) + 1
	if n > OPEMax {
		n = OPEMax
	}
	in := make([]byte, 0, 23+ExpandedLen)
	in = append(in, "rev-counter-generation\x00"...)
	in = append(in, k.secret[:]...)
	return ope(sha3.Sum256(in), int(n))
}

// SRVRunLength returns the length of a shared random protocol run: 24
// voting intervals.
func (p Periods) SRVRunLength() time.Duration {
	return srRoundsPerPhase * srPhases * p.VotingInterval
}
