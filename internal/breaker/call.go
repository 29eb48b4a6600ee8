package breaker

import (
	"log/slog"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// LimiterCoolDown is the cool-down of the breakers the limiters build with
// ForLimiter: short and fixed (±20% jitter, no doubling), so limiting goes
// back to Redis within about a quarter of a second of its return, however
// long it was down. While open, a probe every cool-down costs one call.
const LimiterCoolDown = 250 * time.Millisecond

// LimiterFailureSpan is the minimum failure span of the limiters' breakers
// (see WithMinFailureSpan): Redis must have failed for a quarter of a
// second before calls are suspended, so one stall never opens it.
const LimiterFailureSpan = 250 * time.Millisecond

// ForLimiter returns the breaker a limiter puts in front of Redis, named
// name, logging to logger and timing with clk; or nil, a breaker that is
// always closed, when off is true.
func ForLimiter(off bool, name string, logger *slog.Logger, clk ratelimit.Clock) *Breaker {
	if off {
		return nil
	}
	return New(WithName(name), WithLogger(logger), WithClock(clk),
		WithCoolDown(LimiterCoolDown), WithMaxCoolDown(LimiterCoolDown),
		WithMinFailureSpan(LimiterFailureSpan))
}
