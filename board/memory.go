package board

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"tinytor/board/mem"
	"tinytor/tor/errfmt"
)

// Memory pressure handling.
const (
	pressurePoll  = time.Second      // how often the Budget is checked
	shedInterval  = 10 * time.Second // least time between two sheddings
	stateStatsLog = 6 * time.Hour    // how often flash statistics are logged
)

// planMemory sets the Go memory limit and GC percent from MaxMemInQueues
// or the RAM and cgroup limits, and makes the Budget that refuses streams
// under pressure.
func (b *Board) planMemory() error {
	info, err := mem.ReadInfo("")
	if err != nil {
		b.log.Warnf("Couldn't read the memory size and limits (%v): leaving the Go memory limit and GC as they are.", err)
		b.caps = mem.Plan{MaxMemInQueues: max(b.cfg.MaxMemInQueues, mem.MinQueues)}.Caps()
		b.budget = mem.NewBudget(b.caps, 0, nil)
		return nil
	}
	if exe, err := os.Executable(); err == nil {
		if st, err := os.Stat(exe); err == nil {
			info.CodeSize = uint64(st.Size())
		}
	}
	plan, err := mem.NewPlan(info, b.cfg.MaxMemInQueues)
	if err != nil {
		return errfmt.Errorf("MaxMemInQueues: %w", err)
	}
	b.applyPlan(plan)
	b.caps = b.plan.Caps()
	b.budget = mem.NewBudget(b.caps, uint64(b.plan.GoMemLimit), nil)
	return nil
}

// applyPlan sets the Go memory limit and GC percent. GOMEMLIMIT and GOGC
// from the environment win where they are stricter (the limit) or set
// (the GC percent).
func (b *Board) applyPlan(p mem.Plan) {
	envLimit := b.getenv("GOMEMLIMIT") != ""
	if envLimit {
		if cur := debug.SetMemoryLimit(-1); cur > 0 && cur < p.GoMemLimit {
			p.GoMemLimit = cur
		}
	}
	_, prevGC := p.Apply()
	if b.getenv("GOGC") != "" {
		debug.SetGCPercent(prevGC)
		p.GCPercent = prevGC
	}
	b.plan = p
	auto := " (automatic)"
	if b.cfg.MaxMemInQueues != 0 {
		auto = ""
	}
	from := ""
	if envLimit {
		from = ", GOMEMLIMIT considered"
	}
	b.log.Noticef("Memory: %s usable; MaxMemInQueues %s%s; process budget %s: Go memory limit %s%s and %s for the program's code; GC %d%%.",
		mib(p.Effective), mib(p.MaxMemInQueues), auto, mib(p.Budget), mib(uint64(p.GoMemLimit)), from, mib(p.Budget-min(p.Budget, uint64(p.GoMemLimit))), p.GCPercent)
}

// watchPressure logs changes of memory pressure; at Moderate it closes
// the used circuits that carry no stream, at High or above every idle
// circuit (new streams are refused by AllowNewStream meanwhile); at
// Critical it also returns freed memory to the kernel.
// It logs the flash statistics every stateStatsLog too.
func (b *Board) watchPressure(ctx context.Context, client Client) {
	t := time.NewTicker(pressurePoll)
	defer t.Stop()
	prev := mem.PressureNone
	var lastShed time.Time
	lastStats := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := b.budget.Pressure()
		if p != prev {
			b.logPressure(p, prev)
			prev = p
		}
		switch {
		case p >= mem.PressureHigh && time.Since(lastShed) >= shedInterval:
			lastShed = time.Now()
			if n := client.ShedIdleCircuits(); n > 0 {
				b.log.Infof("Closed %d idle circuits under memory pressure.", n)
			}
			if p >= mem.PressureCritical {
				debug.FreeOSMemory()
			}
		case p == mem.PressureModerate && time.Since(lastShed) >= shedInterval:
			// Used circuits without streams go first, before the
			// pressure grows to the point where streams are refused.
			lastShed = time.Now()
			if n := client.ShedDirtyIdleCircuits(); n > 0 {
				b.log.Infof("Closed %d used idle circuits under moderate memory pressure.", n)
			}
		}
		if time.Since(lastStats) >= stateStatsLog {
			lastStats = time.Now()
			b.logStateStats("so far")
		}
	}
}

// logPressure logs a change of memory pressure from prev to p.
func (b *Board) logPressure(p, prev mem.Pressure) {
	used := fmt.Sprintf("%d streams, %d circuits", b.budget.Used(mem.Streams), b.budget.Used(mem.Circuits))
	switch {
	case p >= mem.PressureHigh && prev < mem.PressureHigh:
		b.log.Warnf("Memory pressure %s (%s, Go memory limit %s): closing idle circuits and refusing new streams.", p, used, mib(uint64(b.plan.GoMemLimit)))
	case p < mem.PressureHigh && prev >= mem.PressureHigh:
		b.log.Noticef("Memory pressure down to %s (%s): accepting new streams again.", p, used)
	default:
		b.log.Infof("Memory pressure %s (%s).", p, used)
	}
}

// logStateStats logs what the state writer put on flash.
func (b *Board) logStateStats(when string) {
	if b.st == nil {
		return
	}
	s := b.st.Stats()
	up := time.Since(b.started)
	rate := ""
	if up >= time.Hour {
		rate = fmt.Sprintf(" (%.0f bytes/hour)", float64(s.BytesWritten)/up.Hours())
	}
	b.log.Noticef("State writes %s: %d bytes to flash in %d writes over %s%s; %d coalesced, %d failed, %d pending.",
		when, s.BytesWritten, s.Writes, up.Round(time.Second), rate, s.Coalesced, s.Failed, s.Pending)
}

// mib formats a byte count in MiB for logs.
func mib(n uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
