package tor

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStreamRetryTimeout(t *testing.T) {
	// C tor's compute_retry_timeout: 10 s for tries 0 and 1, then 15 s;
	// CircuitStreamTimeout overrides every try.
	for _, tc := range []struct {
		configured time.Duration
		retries    int
		want       time.Duration
	}{
		{0, 0, 10 * time.Second},
		{0, 1, 10 * time.Second},
		{0, 2, 15 * time.Second},
		{0, 7, 15 * time.Second},
		{3 * time.Second, 0, 3 * time.Second},
		{3 * time.Second, 5, 3 * time.Second},
	} {
		if got := StreamRetryTimeout(tc.configured, tc.retries); got != tc.want {
			t.Errorf("StreamRetryTimeout(%s, %d) = %s, want %s", tc.configured, tc.retries, got, tc.want)
		}
	}
}

func TestAttemptContext(t *testing.T) {
	// The attempt's own bound ends it: a timeout to retry.
	actx, cancel, timedOut := attemptContext(context.Background(), time.Millisecond)
	<-actx.Done()
	cancel()
	if !timedOut(actx.Err()) {
		t.Error("an attempt that reached its bound is not reported as timed out")
	}
	if timedOut(nil) {
		t.Error("a successful attempt is reported as timed out")
	}

	// The caller's context ends it: no retry.
	parent, stop := context.WithCancel(context.Background())
	actx, cancel, timedOut = attemptContext(parent, time.Hour)
	stop()
	<-actx.Done()
	cancel()
	if timedOut(actx.Err()) {
		t.Error("an attempt cancelled by its caller is reported as timed out")
	}

	// An attempt that failed for another reason before its bound.
	actx, cancel, timedOut = attemptContext(context.Background(), time.Hour)
	if timedOut(errors.New("END")) {
		t.Error("an early failure is reported as timed out")
	}
	cancel()
	_ = actx
}

func TestStreamTimeoutSeverity(t *testing.T) {
	if s := streamTimeoutSeverity(10 * time.Second); s.String() == streamTimeoutSeverity(15*time.Second).String() {
		t.Errorf("10 s and 15 s timeouts log at the same level %s", s)
	}
}
