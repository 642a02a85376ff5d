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

// ParamsFrom reads the parameters through param (nil gives the defaults),
// with C tor's defaults, bounds and cross-checks (cbtclosequantile at least
// cbtquantile, cbtinitialtimeout at least cbtmintimeout).
func ParamsFrom(param ParamFunc) Params {
	get := func(name string, def, min, max int32) int32 {
		if param == nil {
			return def
		}
		return param(name, def, min, max)
	}
	const maxInt32 = 1<<31 - 1
	p := Params{
		Disabled:     get("cbtdisabled", 0, 0, 1) != 0,
		NumModes:     int(get("cbtnummodes", 10, 1, 20)),
		RecentCount:  int(get("cbtrecentcount", 20, 3, 1000)),
		MaxTimeouts:  int(get("cbtmaxtimeouts", 18, 3, 10000)),
		MinCircs:     int(get("cbtmincircs", 100, 1, 10000)),
		Quantile:     int(get("cbtquantile", 80, 10, 99)),
		TestFreq:     time.Duration(get("cbttestfreq", 10, 1, maxInt32)) * time.Second,
		MinTimeoutMS: get("cbtmintimeout", binWidthMS, binWidthMS, maxInt32),
		MaxOpenCircs: int(get("cbtmaxopencircs", 10, 0, 14)),
	}
	p.CloseQuantile = int(get("cbtclosequantile", 99, 10, 99))
	if p.CloseQuantile < p.Quantile {
		p.CloseQuantile = p.Quantile
	}
	p.InitialTimeoutMS = get("cbtinitialtimeout", 60000, binWidthMS, maxInt32)
	if p.InitialTimeoutMS < p.MinTimeoutMS {
		p.InitialTimeoutMS = p.MinTimeoutMS
	}
	return p
}
