package cbt

import (
	"errors"
	"strconv"
	"strings"

	"tinytor/tor/errfmt"
	"tinytor/tor/event"
)

// maxStoredTimes bounds TotalBuildTimes in a state read back: C tor
// writes at most NCircuitsToObserve, and a larger claim only costs memory.
const maxStoredTimes = 100 * NCircuitsToObserve

// ErrBadState is matched (errors.Is) by the errors LoadState returns for a
// history it could not use.
var ErrBadState = errors.New("bad circuit build time state")

// storedBin is one CircuitBuildTimeBin line.
type storedBin struct {
	ms    int32
	count uint32
}

// storedState is the content of the state lines.
type storedState struct {
	total, abandoned int
	bins             []storedBin
}

// badState returns an ErrBadState error saying what is wrong.
func badState(what string) error {
	return errfmt.Errorf("%w: %s", ErrBadState, what)
}

// parseState reads the state lines. Unknown lines are skipped.
func parseState(data []byte) (storedState, error) {
	var st storedState
	for _, line := range strings.Split(string(data), "\n") {
		key, value, _ := strings.Cut(strings.TrimSpace(line), " ")
		value = strings.TrimSpace(value)
		var count *int
		switch {
		case strings.EqualFold(key, "TotalBuildTimes"):
			key, count = "TotalBuildTimes", &st.total
		case strings.EqualFold(key, "CircuitBuildAbandonedCount"):
			key, count = "CircuitBuildAbandonedCount", &st.abandoned
		case strings.EqualFold(key, "CircuitBuildTimeBin"), strings.EqualFold(key, "BuildtimeHistogram"):
			f := strings.Fields(value)
			if len(f) < 2 {
				return st, badState("too few arguments to CircuitBuildTimeBin")
			}
			ms, err := strconv.ParseUint(f[0], 10, 31)
			if err != nil {
				return st, badState("unparsable bin number " + strconv.Quote(f[0]))
			}
			count, err := strconv.ParseUint(f[1], 10, 32)
			if err != nil {
				return st, badState("unparsable bin count " + strconv.Quote(f[1]))
			}
			st.bins = append(st.bins, storedBin{ms: int32(ms), count: uint32(count)})
			continue
		default:
			continue
		}
		n, err := strconv.ParseUint(value, 10, 31)
		if err != nil || n > maxStoredTimes {
			return st, badState(key + " " + strconv.Quote(value))
		}
		*count = int(n)
	}
	return st, nil
}

// LoadState replaces the history with the one in data, the lines
// MarshalState writes (other lines are ignored, so data may be a whole C
// tor state file). As C tor does (circuit_build_times_parse_state), the
// times are shuffled before they fill the history, so that the oldest
// expire first in no particular order, and a history whose counts do not
// add up is discarded: learning then starts again and the error (matching
// ErrBadState) says why. The timeout is recomputed from what was loaded.
// The liveness history starts empty.
func (e *Estimator) LoadState(data []byte) error {
	st, err := parseState(data)
	e.mu.Lock()
	e.init()
	events := []*event.BuildTimeoutSet{e.eventLocked("RESET")}
	if e.disabledLocked() {
		e.mu.Unlock()
		e.publish(events[0])
		return nil
	}
	if err == nil {
		err = e.fillLocked(st)
	}
	if err != nil {
		e.opts.Log.Warnf("Unable to parse circuit build times: %v", err)
		e.resetLocked()
	} else {
		events = append(events, e.setTimeoutLocked())
	}
	e.dirty = 0
	e.mu.Unlock()
	for _, ev := range events {
		e.publish(ev)
	}
	return err
}

// fillLocked expands st into times, shuffles them and adds them to the
// (empty) history.
func (e *Estimator) fillLocked(st storedState) error {
	loaded := make([]int32, 0, st.total)
	for _, b := range st.bins {
		if uint64(len(loaded))+uint64(b.count)+uint64(st.abandoned) > uint64(st.total) {
			return badState("too many build times in state file (" +
				strconv.FormatUint(uint64(len(loaded))+uint64(b.count)+uint64(st.abandoned), 10) +
				" or more, TotalBuildTimes " + strconv.Itoa(st.total) + ")")
		}
		for range b.count {
			loaded = append(loaded, b.ms)
		}
	}
	if len(loaded)+st.abandoned != st.total {
		return badState("build times count mismatch: read " + strconv.Itoa(len(loaded)+st.abandoned) +
			" times, but file says " + strconv.Itoa(st.total))
	}
	for range st.abandoned {
		loaded = append(loaded, abandoned)
	}
	if len(loaded) > NCircuitsToObserve {
		e.opts.Log.Noticef("The number of circuit times that this Tor version uses to calculate build times is less than the number stored in your state file. Decreasing the circuit time history from %d to %d.",
			len(loaded), NCircuitsToObserve)
	}
	e.opts.Rand.Shuffle(len(loaded), func(i, j int) { loaded[i], loaded[j] = loaded[j], loaded[i] })
	for _, t := range loaded[:min(len(loaded), NCircuitsToObserve)] {
		e.addTimeLocked(t)
	}
	n := 0
	for n < NCircuitsToObserve && e.times[n] != 0 {
		n++
	}
	e.opts.Log.Infof("Loaded %d/%d values from %d lines in circuit time histogram", n, e.total, len(st.bins))
	if want := min(len(loaded), NCircuitsToObserve); n != want || e.total != want {
		return badState("shuffled build times mismatch: read " + strconv.Itoa(n) + " times, but file says " + strconv.Itoa(st.total))
	}
	return nil
}
