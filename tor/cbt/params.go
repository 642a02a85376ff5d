package cbt

import "time"

// Fixed sizes of the learner (C tor's circuitstats.h).
const (
	// BinWidth is the width of a histogram bin (CBT_BIN_WIDTH).
	BinWidth = 10 * time.Millisecond
	// NCircuitsToObserve is how many build times are kept
	// (CBT_NCIRCUITS_TO_OBSERVE).
	NCircuitsToObserve = 1000
	// SaveStateEvery is how many new build times make the state worth
	// writing (CBT_SAVE_STATE_EVERY).
	SaveStateEvery = 10
)

// binWidthMS is BinWidth in milliseconds.
const binWidthMS = int32(BinWidth / time.Millisecond)

// abandoned marks a circuit closed at the close timeout (a right-censored
// value, CBT_BUILD_ABANDONED); buildTimeMax is CBT_BUILD_TIME_MAX.
const (
	abandoned    = int32(1<<31 - 2)
	buildTimeMax = int32(1<<31 - 1)
)

// Params are the consensus parameters that govern the learner (path-spec
// 2.4.6). Get them from a consensus with ParamsFrom; DefaultParams gives the
// values used without one.
type Params struct {
	// Disabled is cbtdisabled: learning off, history discarded.
	Disabled bool
	// NumModes is cbtnummodes: how many histogram modes average into Xm.
	NumModes int
	// RecentCount is cbtrecentcount: how many recent outcomes the network
	// liveness check remembers.
	RecentCount int
	// MaxTimeouts is cbtmaxtimeouts: timeouts among the recent outcomes
	// that make the learner start again.
	MaxTimeouts int
	// MinCircs is cbtmincircs: build times needed before a timeout is
	// computed.
	MinCircs int
	// Quantile is cbtquantile, in percent: the timeout's point on the
	// Pareto curve.
	Quantile int
	// CloseQuantile is cbtclosequantile, in percent: the point at which a
	// measurement circuit is abandoned (never below Quantile).
	CloseQuantile int
	// TestFreq is cbttestfreq: how often a test circuit is built while
	// fewer than MinCircs times are known.
	TestFreq time.Duration
	// MinTimeoutMS is cbtmintimeout: the lowest timeout, in milliseconds.
	MinTimeoutMS int32
	// InitialTimeoutMS is cbtinitialtimeout: the timeout before one is
	// learned, in milliseconds (never below MinTimeoutMS).
	InitialTimeoutMS int32
	// MaxOpenCircs is cbtmaxopencircs: at most this many clean circuits
	// are kept open for timeout testing.
	MaxOpenCircs int
}

// ParamFunc reads a consensus parameter, returning def when it is absent
// and clamping it to [min, max]: dir.Consensus's Param method.
type ParamFunc func(name string, def, min, max int32) int32

// DefaultParams returns the parameters used without a consensus.
func DefaultParams() Params { return ParamsFrom(nil) }

// Indexes into paramSpecs.
const (
	pDisabled = iota
	pNumModes
	pRecentCount
	pMaxTimeouts
	pMinCircs
	pQuantile
	pCloseQuantile
	pTestFreq
	pMinTimeout
	pInitialTimeout
	pMaxOpenCircs
	numParams
)

// paramSpecs are the consensus parameters of Params with C tor's defaults
// and bounds.
var paramSpecs = [numParams]struct {
	name          string
	def, min, max int32
}{
	pDisabled:       {"cbtdisabled", 0, 0, 1},
	pNumModes:       {"cbtnummodes", 10, 1, 20},
	pRecentCount:    {"cbtrecentcount", 20, 3, 1000},
	pMaxTimeouts:    {"cbtmaxtimeouts", 18, 3, 10000},
	pMinCircs:       {"cbtmincircs", 100, 1, 10000},
	pQuantile:       {"cbtquantile", 80, 10, 99},
	pCloseQuantile:  {"cbtclosequantile", 99, 10, 99},
	pTestFreq:       {"cbttestfreq", 10, 1, 1<<31 - 1},
	pMinTimeout:     {"cbtmintimeout", binWidthMS, binWidthMS, 1<<31 - 1},
	pInitialTimeout: {"cbtinitialtimeout", 60000, binWidthMS, 1<<31 - 1},
	pMaxOpenCircs:   {"cbtmaxopencircs", 10, 0, 14},
}

// ParamsFrom reads the parameters through param (nil gives the defaults),
// with C tor's defaults, bounds and cross-checks (cbtclosequantile at least
// cbtquantile, cbtinitialtimeout at least cbtmintimeout).
func ParamsFrom(param ParamFunc) Params {
	var v [numParams]int32
	for i, s := range paramSpecs {
		v[i] = s.def
		if param != nil {
			v[i] = param(s.name, s.def, s.min, s.max)
		}
	}
	return Params{
		Disabled:         v[pDisabled] != 0,
		NumModes:         int(v[pNumModes]),
		RecentCount:      int(v[pRecentCount]),
		MaxTimeouts:      int(v[pMaxTimeouts]),
		MinCircs:         int(v[pMinCircs]),
		Quantile:         int(v[pQuantile]),
		CloseQuantile:    int(max(v[pCloseQuantile], v[pQuantile])),
		TestFreq:         time.Duration(v[pTestFreq]) * time.Second,
		MinTimeoutMS:     v[pMinTimeout],
		InitialTimeoutMS: max(v[pInitialTimeout], v[pMinTimeout]),
		MaxOpenCircs:     int(v[pMaxOpenCircs]),
	}
}
