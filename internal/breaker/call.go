package breaker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// Call runs fn if b lets a call through, and hands the ticket back with
// fn's outcome as the package documentation describes: when ctx, the
// caller's context, ended (cancelled, or its deadline passed before the
// call's own timeout), or fn's error is a cancellation, the call says
// nothing about Redis and is not counted; other errors count as IsFailure
// says. fn should apply the call's own timeout to the context it is given.
// When b refuses, Call returns ratelimit.ErrCircuitOpen without running fn.
// A nil b always runs fn.
func Call[T any](b *Breaker, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	tk, ok := b.Allow()
	if !ok {
		var zero T
		return zero, ratelimit.ErrCircuitOpen
	}
	v, err := fn(ctx)
	if err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)) {
		b.Cancel(tk)
	} else {
		b.Done(tk, !IsFailure(err))
	}
	return v, err
}

// LimiterCoolDown is the cool-down of the breakers the limiters build with
// ForLimiter: short and fixed (±20% jitter, no doubling), so limiting goes
// back to Redis within about half a second of its return, however long it
// was down.
const LimiterCoolDown = 500 * time.Millisecond

// ForLimiter returns the breaker a limiter puts in front of Redis, named
// name, logging to logger and timing with clk; or nil, a breaker that is
// always closed, when off is true.
func ForLimiter(off bool, name string, logger *slog.Logger, clk ratelimit.Clock) *Breaker {
	if off {
		return nil
	}
	return New(WithName(name), WithLogger(logger), WithClock(clk),
		WithCoolDown(LimiterCoolDown), WithMaxCoolDown(LimiterCoolDown))
}
