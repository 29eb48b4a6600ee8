package algorithms

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// An Algorithm is one per-request rate-limiting algorithm, run as a single
// atomic Lua script in Redis. Implementations are stateless values, safe
// for concurrent use.
type Algorithm interface {
	// Name is a short stable identifier ("token_bucket", "gcra",
	// "fixed_window", "sliding_window"). It is part of the Redis key names,
	// so two algorithms never read each other's state.
	Name() string

	// Check spends n tokens of lim at the Redis key rkey if they are
	// available, reading the time from the Redis server. rkey is a full
	// Redis key, as made by [ratelimit.Keyspace]. lim and n must already be
	// valid. A denial is a Decision, not an error; errors are Redis
	// failures or replies of the wrong shape ([ratelimit.ErrBadReply]).
	Check(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (ratelimit.Decision, error)
}

// A Refunder is an [Algorithm] that can give back tokens that an earlier
// admitted Check spent but did not use. Every Algorithm of this package is
// a Refunder; [Limiter.RefundN] calls it.
type Refunder interface {
	// Refund gives back n tokens of lim at the Redis key rkey, never
	// raising the key above its burst:
	//   - token bucket: n tokens go back into the bucket, capped at Burst;
	//   - GCRA: the theoretical arrival time moves n emission intervals
	//     earlier, but not before now;
	//   - fixed and sliding window: the current window's count goes down by
	//     n, but not below 0. Tokens spent in an earlier window cannot be
	//     given back.
	// Refunding a key that is full, or missing, changes nothing. lim and n
	// must already be valid. Errors are Redis failures or replies of the
	// wrong shape ([ratelimit.ErrBadReply]).
	Refund(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) error
}

var _ Refunder = scripted{}

// ErrRefundUnsupported is returned by [Limiter.RefundN] when the Limiter's
// Algorithm is not a [Refunder]. No Algorithm of this package causes it.
var ErrRefundUnsupported = errors.New("algorithms: algorithm cannot refund")

// The algorithms. Each is described in the doc of its Lua script and its
// reference model.
var (
	// TokenBucket refills Rate tokens per Period into a bucket of Burst
	// tokens; a request takes n tokens or nothing.
	TokenBucket Algorithm = scripted{"token_bucket", tokenBucketTakeScript, tokenBucketReturnScript, tokenBucketPeekScript, tokenBucketChargeScript}
	// GCRA is the generic cell rate algorithm (a leaky bucket as a meter):
	// the same admissions as TokenBucket, with one timestamp of state, kept
	// exactly. Lowering a key's Burst caps a token bucket's tokens, while
	// GCRA keeps the debt already run up.
	GCRA Algorithm = scripted{"gcra", gcraScript, gcraRefundScript, gcraPeekScript, gcraChargeScript}
	// FixedWindow counts requests in windows of Period aligned to the Unix
	// epoch and admits at most Burst per window.
	FixedWindow Algorithm = scripted{"fixed_window", fixedWindowScript, fixedWindowRefundScript, fixedWindowPeekScript, fixedWindowChargeScript}
	// SlidingWindow estimates the count over the last Period from the
	// current and previous fixed windows, weighting the previous window by
	// how much of it still overlaps, and admits while the estimate stays at
	// most Burst.
	SlidingWindow Algorithm = scripted{"sliding_window", slidingWindowScript, slidingWindowRefundScript, slidingWindowPeekScript, slidingWindowChargeScript}
)

// scripted is an Algorithm of this package whose every operation is one
// script run with the Limit's arguments: all but [CalendarWindow], whose
// scripts also take the bounds of its windows. A scripted is comparable.
type scripted struct {
	name                        string
	check, refund, peek, charge *redis.Script
}

func (a scripted) Name() string { return a.name }

func (a scripted) Check(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (ratelimit.Decision, error) {
	return runCheck(ctx, a.check, rdb, rkey, lim, n)
}

func (a scripted) Refund(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) error {
	_, err := runRefund(ctx, a.refund, rdb, rkey, lim, n)
	return err
}

func (a scripted) Peek(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit) (ratelimit.Decision, error) {
	return runPeek(ctx, a.peek, rdb, rkey, lim)
}

func (scripted) Reset(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit) error {
	return resetKey(ctx, rdb, rkey, lim)
}

func (a scripted) Charge(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) error {
	_, err := run(ctx, a.charge, rdb, rkey, lim, n)
	return err
}

// All lists every Algorithm, in a stable order.
var All = []Algorithm{TokenBucket, GCRA, FixedWindow, SlidingWindow}

// ByName returns the Algorithm with the given [Algorithm.Name].
func ByName(name string) (Algorithm, error) {
	for _, a := range All {
		if a.Name() == name {
			return a, nil
		}
	}
	return nil, fmt.Errorf("algorithms: unknown algorithm %q", name)
}

// Grant is the outcome of [TakeUpTo]: how many tokens the bucket handed
// out, and what it had left.
type Grant struct {
	// Granted is the number of tokens taken, from 0 to the n asked for.
	Granted int
	// Remaining is the number of whole tokens left in the bucket after the
	// grant.
	Remaining int
	// RetryAfter is, when Granted is 0, the time until one token is
	// available; otherwise zero.
	RetryAfter time.Duration
	// ResetAfter is the time until the bucket is full again.
	ResetAfter time.Duration
}
