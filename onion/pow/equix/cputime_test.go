//go:build unix

package equix

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time: the machines these run on
// are shared, so benchmarks also report CPU time per operation, which load
// from other processes does not inflate the way it does wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
