package lease

import (
	"context"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
	"github.com/distributedratelimiter/ratelimit/internal/rcall"
)

// WithFailurePolicy sets what the limiter decides for a key whose leased
// tokens are spent while Redis cannot answer. Default: ratelimit.FailLocal,
// which keeps serving leased tokens until they expire, then limits each
// key locally at this instance's share of the limit (see WithInstances).
// The zero value keeps the default.
func WithFailurePolicy(p ratelimit.FailurePolicy) Option {
	return optionFunc(func(c *config) {
		if p != 0 {
			c.policy = p
		}
	})
}

// WithInstances sets how many instances are expected to enforce the limit
// together. Under ratelimit.FailLocal each instance then admits rate/n and
// burst/n per key while Redis is down, so that all together stay near the
// limit. Default: 1, which lets each instance admit the whole limit. Values
// below 1 keep the default.
func WithInstances(n int) Option {
	return optionFunc(func(c *config) {
		if n >= 1 {
			c.instances = n
		}
	})
}

// WithCircuitBreaker turns the circuit breaker on or off. When on (the
// default), five consecutive failed Redis calls, or half of the last 20,
// suspend Redis calls for a cool-down of about half a second, after which
// one probe call tests Redis again: meanwhile the failure policy decides at once,
// with no Redis timeout to wait for.
func WithCircuitBreaker(on bool) Option {
	return optionFunc(func(c *config) { c.breakerOff = !on })
}

// fallbackHold is how long a key keeps deciding by its failure policy
// after a failed refill before it tries Redis again; the breaker decides
// about Redis as a whole.
const fallbackHold = 100 * time.Millisecond

func newBreaker(c config) *breaker.Breaker {
	return breaker.ForLimiter(c.breakerOff, "lease", c.logger, c.clock)
}

// call runs one Redis call through the circuit breaker, bounded by ctx and
// timeout.
func call[T any](l *Limiter, ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	return breaker.Call(l.breaker, ctx, func(ctx context.Context) (T, error) {
		l.stats.redisCalls.Add(1)
		return rcall.Do(ctx, timeout, l.direct, fn)
	})
}

// fail decides a request for n tokens of key by the failure policy, after
// err kept Redis from answering.
func (l *Limiter) fail(e *entry, key string, n int, err error) (ratelimit.Decision, error) {
	switch l.cfg.policy {
	case ratelimit.FailOpen:
		l.stats.failOpen.Add(1)
		l.stats.fbAllowed.Add(1)
		return ratelimit.Decision{Allowed: true, Limit: l.lim, Source: ratelimit.SourceFallback}, nil
	case ratelimit.FailClosed:
		l.stats.failClosed.Add(1)
		return ratelimit.Decision{Limit: l.lim, Source: ratelimit.SourceFallback},
			&ratelimit.StoreError{Op: "lease refill", Key: key, Err: err}
	}
	l.stats.failLocal.Add(1)
	share := algorithms.TokenBucketModel{Limit: l.lim.Share(l.cfg.instances)}
	if n > share.Limit.Burst {
		// More than this instance's share could ever admit at once.
		return ratelimit.Decision{Limit: l.lim, RetryAfter: share.Limit.Interval(), Source: ratelimit.SourceFallback}, nil
	}
	now := l.cfg.clock.Now().UnixMicro()
	e.mu.Lock()
	if e.fallback == nil {
		e.fallback = new(algorithms.TokenBucketState)
	}
	var d ratelimit.Decision
	*e.fallback, d = share.Decide(*e.fallback, now, n)
	e.mu.Unlock()
	d.Limit, d.Source = l.lim, ratelimit.SourceFallback
	if d.Allowed {
		l.stats.fbAllowed.Add(1)
	}
	return d, nil
}

// failUncached decides by the failure policy for a key the key cap keeps
// out of the table. Without an entry there is no local bucket, so
// FailLocal denies such keys, as FailClosed does but without an error.
func (l *Limiter) failUncached(key string, n int, err error) (ratelimit.Decision, error) {
	if l.cfg.policy == ratelimit.FailLocal {
		l.stats.failLocal.Add(1)
		return ratelimit.Decision{Limit: l.lim, RetryAfter: fallbackHold, Source: ratelimit.SourceFallback}, nil
	}
	return l.fail(nil, key, n, err)
}
