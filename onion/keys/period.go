package keys

import (
	"errors"
	"time"

	"tinytor/tor/errfmt"
)

// Defaults and bounds of the time period length (rend-spec-v3 2.2.1,
// consensus parameter hsdir_interval).
const (
	DefaultPeriodMinutes = 1440
	MinPeriodMinutes     = 30
	MaxPeriodMinutes     = 14400
)

// Shared random protocol shape (dir-spec, C tor shared_random.h): a run has
// two phases of 12 rounds, each one voting interval long.
const (
	srRoundsPerPhase = 12
	srPhases         = 2
)

// Periods describes how time is cut into time periods (rend-spec-v3 2.2.1).
// Build it with LivePeriods or PeriodsFor; the zero value is invalid.
type Periods struct {
	// LengthMinutes is the period length in minutes; it is hashed into
	// the blinding nonce and the HSDir indexes.
	LengthMinutes uint64
	// Offset is the rotation offset subtracted from the time before
	// dividing: one SRV phase, 12 voting intervals (12 h on the live
	// network).
	Offset time.Duration
	// VotingInterval is the consensus voting interval (fresh-until minus
	// valid-after); the SRV protocol run is 24 of them.
	VotingInterval time.Duration
}

// ErrPeriods reports unusable time period parameters.
var ErrPeriods = errors.New("invalid time period parameters")

// LivePeriods returns the parameters of the public Tor network: 1440-minute
// periods, a 12-hour offset and one-hour voting intervals.
func LivePeriods() Periods {
	return Periods{LengthMinutes: DefaultPeriodMinutes, Offset: 12 * time.Hour, VotingInterval: time.Hour}
}

// PeriodsFor computes the parameters as C tor does from a consensus: its
// voting interval (fresh-until minus valid-after), whether the network is a
// test network (TestingTorNetwork: the period is one SRV protocol run, 24
// voting intervals), and the hsdir_interval consensus parameter (0 when
// absent; used only when not testing, clamped to [30, 14400]). The offset
// is always 12 voting intervals.
func PeriodsFor(votingInterval time.Duration, testing bool, hsdirInterval int) (Periods, error) {
	if votingInterval < time.Second {
		return Periods{}, errfmt.Errorf("%w: voting interval %v", ErrPeriods, votingInterval)
	}
	p := Periods{
		Offset:         srRoundsPerPhase * votingInterval,
		VotingInterval: votingInterval,
	}
	if testing {
		run := srRoundsPerPhase * srPhases * votingInterval
		p.LengthMinutes = uint64(run / time.Minute)
		if p.LengthMinutes == 0 {
			return Periods{}, errfmt.Errorf("%w: SRV run of %v is shorter than a minute", ErrPeriods, run)
		}
		return p, nil
	}
	switch {
	case hsdirInterval == 0:
		p.LengthMinutes = DefaultPeriodMinutes
	case hsdirInterval < MinPeriodMinutes:
		p.LengthMinutes = MinPeriodMinutes
	case hsdirInterval > MaxPeriodMinutes:
		p.LengthMinutes = MaxPeriodMinutes
	default:
		p.LengthMinutes = uint64(hsdirInterval)
	}
	return p, nil
}

func (p Periods) check() {
	if p.LengthMinutes == 0 {
		panic("keys: zero Periods used")
	}
}

// Num returns the number of the time period that t falls in (C tor
// hs_get_time_period_num: whole minutes since the epoch, minus the offset
// in whole minutes, divided by the length). Callers pass the valid-after
// time of their live consensus.
func (p Periods) Num(t time.Time) uint64 {
	p.check()
	mins := uint64(t.Unix()) / 60
	off := uint64(p.Offset / time.Minute)
	if mins < off {
		return 0
	}
	return (mins - off) / p.LengthMinutes
}

// Start returns the instant period num begins.
func (p Periods) Start(num uint64) time.Time {
	p.check()
	return time.Unix(int64(num*p.LengthMinutes*60)+int64(p.Offset/time.Second), 0).UTC()
}

// NextStart returns the start of the period after the one t falls in (C tor
// hs_get_start_time_of_next_time_period).
func (p Periods) NextStart(t time.Time) time.Time {
	return p.Start(p.Num(t) + 1)
}

// SRVRunStart returns the start of the shared random protocol run that the
// consensus with this valid-after time belongs to (C tor
// sr_state_get_start_time_of_current_protocol_run).
func (p Periods) SRVRunStart(validAfter time.Time) time.Time {
	vi := int64(p.VotingInterval / time.Second)
	if vi <= 0 {
		panic("keys: Periods without a voting interval")
	}
	va := validAfter.Unix()
	slot := (va / vi) % (srRoundsPerPhase * srPhases)
	return time.Unix(va-slot*vi, 0).UTC()
}

// InTPToSRV reports whether a consensus with this valid-after time lies in
// the segment between the start of a new time period and the next new SRV
// (12:00 to 00:00 UTC on the live network; C tor
// hs_in_period_between_tp_and_srv, rend-spec-v3 2.2.4).
func (p Periods) InTPToSRV(validAfter time.Time) bool {
	srvStart := p.SRVRunStart(validAfter)
	tpStart := p.NextStart(srvStart)
	return !(!validAfter.Before(srvStart) && validAfter.Before(tpStart))
}
