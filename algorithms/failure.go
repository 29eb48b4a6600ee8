package algorithms

import (
	"log/slog"
	"sync"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
)

// WithFailurePolicy sets what the Limiter decides when Redis cannot
// answer (down, slower than the timeout, or the circuit breaker open).
// Errors that Redis itself returned (a key of the wrong type, a malformed
// reply) are returned as errors under every policy.
// Default: ratelimit.FailClosed, which returns a denial with an error
// wrapping the store failure. ratelimit.FailOpen admits;
// ratelimit.FailLocal limits each key in process with a token bucket of
// this instance's share of the limit (see WithInstances). A cancelled or
// expired caller context is returned as an error under every policy. The
// zero value keeps the default.
func WithFailurePolicy(p ratelimit.FailurePolicy) Option {
	return optionFunc(func(c *config) {
		if p != 0 {
			c.policy = p
		}
	})
}

// WithInstances sets how many instances enforce the limit together, for
// ratelimit.FailLocal: each then admits rate/n and burst/n per key while
// Redis is down. Default: 1. Values below 1 keep the default.
func WithInstances(n int) Option {
	return optionFunc(func(c *config) {
		if n >= 1 {
			c.instances = n
		}
	})
}

// WithCircuitBreaker turns the circuit breaker on or off. When on (the
// default), five consecutive failed Redis calls, or half of the last 20,
// suspend Redis calls for about half a second, after which one probe
// tests Redis again; meanwhile the failure policy decides at once, with no
// timeout to wait for.
func WithCircuitBreaker(on bool) Option {
	return optionFunc(func(c *config) { c.breakerOff = !on })
}

func newBreaker(c config) *breaker.Breaker {
	return breaker.ForLimiter(c.breakerOff, "algorithms."+c.alg.Name(), c.logger, ratelimit.SystemClock{})
}

// WithLogger sets the logger of the circuit breaker's state changes.
// Default: slog.Default() when NewLimiter runs. A nil logger keeps the
// default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// fail decides a request for n tokens of key by the failure policy, after
// err kept Redis from answering.
func (l *Limiter) fail(key string, n int, err error) (ratelimit.Decision, error) {
	switch l.policy {
	case ratelimit.FailOpen:
		return ratelimit.Decision{Allowed: true, Limit: l.lim, Source: ratelimit.SourceFallback}, nil
	case ratelimit.FailLocal:
		d := l.local.decide(key, time.Now().UnixMicro(), n)
		d.Limit, d.Source = l.lim, ratelimit.SourceFallback
		return d, nil
	}
	return ratelimit.Decision{Limit: l.lim, Source: ratelimit.SourceFallback}, err
}

// maxLocalKeys bounds the per-key buckets FailLocal keeps.
const maxLocalKeys = 10_000

// localBuckets are the in-process token buckets of ratelimit.FailLocal.
// They live only while Redis is down and never hold more than
// maxLocalKeys keys.
type localBuckets struct {
	model TokenBucketModel
	mu    sync.Mutex                  // protects m
	m     map[string]TokenBucketState // created on first use
}

func newLocalBuckets(share ratelimit.Limit) *localBuckets {
	return &localBuckets{model: TokenBucketModel{Limit: share}}
}

func (b *localBuckets) decide(key string, nowUS int64, n int) ratelimit.Decision {
	if n > b.model.Limit.Burst {
		// More than this instance's share could ever admit at once.
		return ratelimit.Decision{RetryAfter: b.model.Limit.Interval()}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[string]TokenBucketState)
	}
	s, ok := b.m[key]
	if !ok && len(b.m) >= maxLocalKeys {
		for k := range b.m { // evict one arbitrary key
			delete(b.m, k)
			break
		}
	}
	s, d := b.model.Decide(s, nowUS, n)
	b.m[key] = s
	return d
}
