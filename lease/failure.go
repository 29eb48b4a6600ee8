package lease

import (
	"context"
	"math"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
	"github.com/distributedratelimiter/ratelimit/internal/fallback"
	"github.com/distributedratelimiter/ratelimit/internal/rcall"
)

// WithFailurePolicy sets what the limiter decides for a key whose leased
// tokens are spent while Redis is slow (a refill out longer than the
// maximum wait) or cannot answer. Default: ratelimit.FailLocal, which keeps
// serving leased tokens until they expire, then limits each key locally
// with a bucket that starts empty and earns at the share of the limit
// Redis recently granted this instance for it (WithInstances for a key
// with no such history); the next refill charges what it admitted to
// Redis. The zero value keeps the default.
func WithFailurePolicy(p ratelimit.FailurePolicy) Option {
	return optionFunc(func(c *config) {
		if p != 0 {
			c.policy = p
		}
	})
}

// WithInstances sets how many instances are expected to enforce the limit
// together, for keys with no history of grants from Redis: under
// ratelimit.FailLocal such a key is limited at rate/n, with a burst of
// burst/n to earn first, while Redis cannot answer. Keys with history use
// the share Redis granted them instead. Default: 1. Values below 1 keep the
// default.
func WithInstances(n int) Option {
	return optionFunc(func(c *config) {
		if n >= 1 {
			c.instances = n
		}
	})
}

// WithCircuitBreaker turns the circuit breaker on or off. When on (the
// default), five consecutive failed Redis calls, or half of the last 20,
// spanning at least 250 ms, suspend Redis calls for a cool-down of about a
// quarter of a second, after which one probe call tests Redis again:
// meanwhile the failure policy decides at once, with no Redis timeout to
// wait for. One stall never opens it.
func WithCircuitBreaker(on bool) Option {
	return optionFunc(func(c *config) { c.breakerOff = !on })
}

// fallbackHold is how long a degraded key waits after a failed refill
// before it tries Redis again, in the background; the breaker decides
// about Redis as a whole.
const fallbackHold = 100 * time.Millisecond

func newBreaker(c config) *breaker.Breaker {
	return breaker.ForLimiter(c.breakerOff, "lease", c.logger, c.clock)
}

// call runs one Redis call through the circuit breaker, bounded by ctx and
// timeout, on the calling goroutine when honorsDeadline is set.
func call[T any](l *Limiter, ctx context.Context, timeout time.Duration, honorsDeadline bool, fn func(context.Context) (T, error)) (T, error) {
	return rcall.Call(ctx, l.breaker, timeout, honorsDeadline, func(ctx context.Context) (T, error) {
		l.stats.redisCalls.Add(1)
		return fn(ctx)
	})
}

// fail decides a request for n tokens of key by the failure policy, after
// err kept Redis from answering.
func (l *Limiter) fail(e *entry, key string, n int, err error) (ratelimit.Decision, error) {
	switch l.cfg.policy {
	case ratelimit.FailOpen:
		l.stats.decided.fellBack(true)
		e.countUnleased()
		return ratelimit.Decision{Allowed: true, Limit: l.lim, Source: ratelimit.SourceFallback}, nil
	case ratelimit.FailClosed:
		l.stats.decided.fellBack(false)
		e.countUnleased()
		return ratelimit.Decision{Limit: l.lim, Source: ratelimit.SourceFallback},
			&ratelimit.StoreError{Op: "lease refill", Key: key, Err: err}
	}
	e.countUnleased()
	rate, burst := l.share(e)
	now := l.now()
	x := e.more()
	e.mu.Lock()
	if x.fb == nil {
		x.fb = fallback.New(now, e.remote.Load())
		x.owes.Store(true)
	}
	ok, retry := x.fb.Take(now, n, rate, burst)
	e.mu.Unlock()
	d := ratelimit.Decision{Allowed: ok, Limit: l.lim, RetryAfter: retry, Source: ratelimit.SourceFallback}
	l.stats.decided.fellBack(ok)
	return d, nil
}

// share returns the rate (tokens/s) and burst at which FailLocal limits e
// on this instance: the share of the limit that Redis recently granted
// this instance for the key, or for a key with no such history the limit
// divided by WithInstances. The burst is the same fraction of the limit's
// burst, at least one token.
func (l *Limiter) share(e *entry) (rate, burst float64) {
	full := l.lim.PerSecondRate()
	e.mu.Lock()
	rate = float64(e.share)
	e.mu.Unlock()
	if rate <= 0 {
		rate = full / float64(l.cfg.instances)
	}
	rate = min(rate, full)
	return rate, max(1, math.Floor(float64(l.lim.Burst)*rate/full))
}

// failUncached decides by the failure policy for a key the key cap keeps
// out of the table. Without an entry there is no local bucket, so
// FailLocal denies such keys, as FailClosed does but without an error.
func (l *Limiter) failUncached(key string, n int, err error) (ratelimit.Decision, error) {
	switch l.cfg.policy {
	case ratelimit.FailOpen:
		l.stats.decided.fellBack(true)
		return ratelimit.Decision{Allowed: true, Limit: l.lim, Source: ratelimit.SourceFallback}, nil
	case ratelimit.FailClosed:
		l.stats.decided.fellBack(false)
		return ratelimit.Decision{Limit: l.lim, Source: ratelimit.SourceFallback},
			&ratelimit.StoreError{Op: "lease check", Key: key, Err: err}
	}
	l.stats.decided.fellBack(false)
	return ratelimit.Decision{Limit: l.lim, RetryAfter: fallbackHold, Source: ratelimit.SourceFallback}, nil
}

// b2i is 1 for true, 0 for false: the index of an outcome in
// counters.fallback.
func b2i(ok bool) int {
	if ok {
		return 1
	}
	return 0
}
