package ctlbackend

import (
	"math"
	"strings"
	"testing"
	"time"

	"tinytor/tor/event"
)

func TestBuildTimeoutSetEvent(t *testing.T) {
	evs := Translate(&event.BuildTimeoutSet{
		Type: "COMPUTED", TotalTimes: 124, Timeout: 1504700 * time.Microsecond, Xm: 393 * time.Millisecond,
		Alpha: 1.3716934, Quantile: 0.8, TimeoutRate: 0.0625, Close: 60000 * time.Millisecond, CloseRate: 0.008065,
	})
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	want := "COMPUTED TOTAL_TIMES=124 TIMEOUT_MS=1504 XM=393 ALPHA=1.371693 CUTOFF_QUANTILE=0.800000 TIMEOUT_RATE=0.062500 CLOSE_MS=60000 CLOSE_RATE=0.008065"
	if evs[0].Type != "BUILDTIMEOUT_SET" || evs[0].Body != want {
		t.Fatalf("got %s %q\nwant %q", evs[0].Type, evs[0].Body, want)
	}
	inf := Translate(&event.BuildTimeoutSet{Type: "COMPUTED", Alpha: math.Inf(1)})
	if !strings.Contains(inf[0].Body, " ALPHA=inf ") {
		t.Fatalf("got %q", inf[0].Body)
	}
	reset := Translate(&event.BuildTimeoutSet{Type: "RESET", Timeout: time.Minute, Close: time.Minute, Quantile: 1})
	if want := "RESET TOTAL_TIMES=0 TIMEOUT_MS=60000 XM=0 ALPHA=0.000000 CUTOFF_QUANTILE=1.000000 TIMEOUT_RATE=0.000000 CLOSE_MS=60000 CLOSE_RATE=0.000000"; reset[0].Body != want {
		t.Fatalf("got %q", reset[0].Body)
	}
}
