package ratelimit

import (
	"context"
	"time"
)

// A Limiter checks requests of client keys against a limit shared by every
// instance of a service.
//
// Implementations are safe for concurrent use by multiple goroutines.
type Limiter interface {
	// Allow is shorthand for AllowN(ctx, key, 1).
	Allow(ctx context.Context, key string) (Decision, error)

	// AllowN checks whether n tokens may be spent by key now, and spends
	// them if so. A denial is a Decision with Allowed false and a nil
	// error; a denied request spends nothing. The error is non-nil only
	// when the check could not be made: an invalid key ([ErrInvalidKey]),
	// n <= 0 or n > burst ([ErrInvalidN]), a closed limiter ([ErrClosed]),
	// a store failure ([ErrStore]) or ctx done.
	AllowN(ctx context.Context, key string, n int) (Decision, error)
}

// Clock tells the time. Implementations must be safe for concurrent use.
// Limiters use it only for local bookkeeping (lease expiry, rate
// estimates); shared state always uses the Redis server's clock.
type Clock interface {
	Now() time.Time
}

// SystemClock is the [Clock] that reads [time.Now].
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NoBound, given to an option that bounds a duration
// (algorithms.WithTimeout, reject.WithMaxWait, tiers.WithGracePeriod),
// removes the bound: only the caller's context ends the wait. Options
// follow one rule: zero keeps the default, NoBound means no bound, and a
// nil option is skipped.
const NoBound time.Duration = -1

// A Refunder gives back n tokens that an earlier admitted AllowN of the
// same key spent but did not use, for example because another limit of the
// same request denied it. A refund never raises a key above its burst.
// Limiters that can refund implement it; callers check with a type
// assertion.
type Refunder interface {
	RefundN(ctx context.Context, key string, n int) error
}

// A Settler settles the cost of a request that AllowN(ctx, key, reserved)
// admitted with an estimate, once its actual cost is known (the tokens an
// LLM call used, the rows a batch job wrote): it gives back reserved −
// actual tokens when the request cost less, and spends actual − reserved
// more when it cost more, even into debt that later requests of the key
// pay off, so that a client cannot overspend by under-estimating. reserved
// 0 charges a cost that nothing reserved. Limiters that can settle
// implement it; each states its bound on what debt lets through.
type Settler interface {
	SettleN(ctx context.Context, key string, reserved, actual int) error
}

// An Inspector tells what a key has left without spending it, and gives a
// key its full limit again: for a support desk, tests, dashboards, or a
// customer who upgraded. Limiters that can implement it; callers check
// with a type assertion.
//
// Both validate the key as AllowN does and fail with the same errors
// ([ErrInvalidKey], [ErrClosed], [ErrStore], ctx's).
type Inspector interface {
	// Peek returns the Decision a request for one token would get now,
	// without spending it: Allowed reports whether one token is
	// available, Remaining is the whole tokens left, RetryAfter the time
	// until one is (zero if Allowed), ResetAfter the time until the key
	// is full. Each implementation says how fresh the answer is.
	Peek(ctx context.Context, key string) (Decision, error)

	// Reset gives key its whole burst again. Each implementation says
	// when instances stop spending the key's old state.
	Reset(ctx context.Context, key string) error
}
