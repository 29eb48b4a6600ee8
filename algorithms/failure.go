package algorithms

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
	"github.com/distributedratelimiter/ratelimit/internal/fallback"
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
// ratelimit.FailLocal: each then admits rate/n per key, with a burst of
// burst/n that it must earn first, while Redis is down. Default: 1. Values
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
// spanning at least 250 ms (one stall never opens it), suspend Redis calls
// for about a quarter of a second, after which one probe tests Redis
// again; meanwhile the failure policy decides at once, with no timeout to
// wait for. Unlike the other options, this one's zero value, false, is
// not the default: it turns the breaker off.
func WithCircuitBreaker(on bool) Option {
	return optionFunc(func(c *config) { c.breakerOff = !on })
}

func newBreaker(c config) *breaker.Breaker {
	return breaker.ForLimiter(c.breakerOff, "algorithms."+c.alg.Name(), c.logger, c.clock)
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

// WithClock sets the clock of the FailLocal buckets and the circuit
// breaker; Redis state always uses the server's clock. Default:
// ratelimit.SystemClock. A nil clock keeps the default.
func WithClock(clk ratelimit.Clock) Option {
	return optionFunc(func(c *config) {
		if clk != nil {
			c.clock = clk
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
		ok, retry := l.local.take(key, int64(l.clock.Now().Sub(l.start)), n)
		return ratelimit.Decision{Allowed: ok, Limit: l.lim, RetryAfter: retry, Source: ratelimit.SourceFallback}, nil
	}
	return ratelimit.Decision{Limit: l.lim, Source: ratelimit.SourceFallback}, err
}

// maxLocalKeys bounds the per-key buckets FailLocal keeps.
const maxLocalKeys = 10_000

// localBuckets are the in-process token buckets of ratelimit.FailLocal,
// one per key, each starting empty (see internal/fallback). They live only
// while Redis cannot answer for their key, and never more than
// maxLocalKeys at once.
type localBuckets struct {
	rate, burst float64      // this instance's share: tokens/s and burst
	n           atomic.Int64 // len(m), read without mu by drop
	mu          sync.Mutex   // protects m
	m           map[string]*fallback.Bucket
}

func newLocalBuckets(share ratelimit.Limit) *localBuckets {
	return &localBuckets{rate: share.PerSecondRate(), burst: float64(share.Burst)}
}

// take decides n tokens of key at now (ns on the limiter's clock).
func (b *localBuckets) take(key string, now int64, n int) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[string]*fallback.Bucket)
	}
	fb, ok := b.m[key]
	if !ok {
		if len(b.m) >= maxLocalKeys {
			for k := range b.m { // evict one arbitrary key
				delete(b.m, k)
				break
			}
		}
		fb = fallback.New(now, -1)
		b.m[key] = fb
		b.n.Store(int64(len(b.m)))
	}
	return fb.Take(now, n, b.rate, b.burst)
}

// drop forgets key's bucket once Redis answers for it again. It costs one
// atomic load while no key is falling back.
func (b *localBuckets) drop(key string) {
	if b.n.Load() == 0 {
		return
	}
	b.mu.Lock()
	delete(b.m, key)
	b.n.Store(int64(len(b.m)))
	b.mu.Unlock()
}
