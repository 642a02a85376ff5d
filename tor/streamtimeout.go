package tor

import (
	"context"
	"errors"
	"time"

	"tinytor/tor/config"
	"tinytor/tor/torlog"
)

// Stream timeouts, as C tor's connection_ap_expire_beginning: a stream
// whose BEGIN (or RESOLVE) gets neither CONNECTED nor END in time is
// detached from its circuit, the circuit is marked unusable for new
// streams (its other streams may go on), and the stream is tried on
// another circuit.

// StreamRetryTimeout is how long the attempt of a stream that has
// already timed out retries times waits for the exit's answer:
// CircuitStreamTimeout (configured) when it is set, else C tor's rule
// (compute_retry_timeout): 10 seconds for the first two attempts, 15
// seconds for later ones.
func StreamRetryTimeout(configured time.Duration, retries int) time.Duration {
	if configured > 0 {
		return configured
	}
	if retries < 2 {
		return 10 * time.Second
	}
	return 15 * time.Second
}

// streamTimeout is StreamRetryTimeout with the client's configuration.
func (c *Client) streamTimeout(retries int) time.Duration {
	return StreamRetryTimeout(c.conf().CircuitStreamTimeout, retries)
}

// attemptContext bounds one attempt of a stream by timeout within ctx.
// timedOut reports, after the attempt, whether it ended because of this
// bound rather than ctx.
func attemptContext(ctx context.Context, timeout time.Duration) (actx context.Context, cancel context.CancelFunc, timedOut func(err error) bool) {
	actx, cancel = context.WithTimeout(ctx, timeout)
	return actx, cancel, func(err error) bool {
		return err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded)
	}
}

// streamTimeoutSeverity is the level of the retry message: info for the
// short first timeouts, notice after (as C tor logs it).
func streamTimeoutSeverity(cutoff time.Duration) torlog.Severity {
	if cutoff < 15*time.Second {
		return torlog.Info
	}
	return torlog.Notice
}

// safe returns s (a destination) for a log line, or "[scrubbed]" unless
// SafeLogging is 0, as C tor's safe_str_client.
func (c *Client) safe(s string) string {
	if conf := c.conf(); conf != nil && conf.SafeLogging == config.SafeLoggingOff {
		return s
	}
	return "[scrubbed]"
}
