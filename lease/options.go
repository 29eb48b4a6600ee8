package lease

import (
	"log/slog"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// Defaults of the options.
const (
	// DefaultLeaseTTL is how long leased tokens may stay unspent. Long
	// leases (from a bucket far from empty) cover up to half of it.
	DefaultLeaseTTL = 2 * time.Second
	// DefaultAccuracyBudget is the fraction of the burst one instance may
	// hold as leased, unspent tokens.
	DefaultAccuracyBudget = 0.05
	// DefaultRefillTimeout bounds one background lease call to Redis. It
	// is long on purpose: no caller waits for it longer than the maximum
	// wait, and a refill that outlasts a stall of Redis lands its grant
	// instead of abandoning tokens that Redis took for it.
	DefaultRefillTimeout = time.Second
	// DefaultMaxWait bounds how long a caller waits for Redis: for a
	// shared refill, or for a call on its own goroutine (a quiet key's
	// refill, a key beyond the key cap, a refund to Redis).
	DefaultMaxWait = 250 * time.Millisecond
	// DefaultMaxKeys is the largest number of keys tracked at once.
	DefaultMaxKeys = 100_000
	// DefaultIdleTimeout is how long a key may see no request before its
	// entry is evicted and its tokens returned.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultHorizon is the shortest span of demand one lease covers.
	DefaultHorizon = 50 * time.Millisecond
)

// An Option configures a [Limiter].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	ks            ratelimit.Keyspace
	clock         ratelimit.Clock
	bucket        remoteBucket
	leaseTTL      time.Duration
	budget        float64
	refillTimeout time.Duration
	maxWait       time.Duration
	maxKeys       int
	idleTimeout   time.Duration
	horizon       time.Duration
	logger        *slog.Logger
	policy        ratelimit.FailurePolicy
	instances     int
	breakerOff    bool
	ahead         bool
}

func newConfig(opts []Option) config {
	c := config{
		clock:         ratelimit.SystemClock{},
		leaseTTL:      DefaultLeaseTTL,
		budget:        DefaultAccuracyBudget,
		refillTimeout: DefaultRefillTimeout,
		maxWait:       DefaultMaxWait,
		maxKeys:       DefaultMaxKeys,
		idleTimeout:   DefaultIdleTimeout,
		horizon:       DefaultHorizon,
		logger:        slog.Default(),
		policy:        ratelimit.FailLocal,
		instances:     1,
		ahead:         true,
	}
	for _, o := range opts {
		o.apply(&c)
	}
	if c.idleTimeout < c.leaseTTL {
		c.idleTimeout = c.leaseTTL
	}
	return c
}

// WithKeyspace sets the namespace of the Redis keys. Default: the zero
// Keyspace (prefix ratelimit.DefaultPrefix). A leasing limiter and a
// per-request token bucket limiter with the same keyspace share buckets.
func WithKeyspace(ks ratelimit.Keyspace) Option {
	return optionFunc(func(c *config) { c.ks = ks })
}

// WithClock sets the clock used for local bookkeeping: lease expiry, rate
// estimates and remembered denials. Redis state always uses the server's
// clock. Default: ratelimit.SystemClock. A nil clock keeps the default.
func WithClock(clk ratelimit.Clock) Option {
	return optionFunc(func(c *config) {
		if clk != nil {
			c.clock = clk
		}
	})
}

// withBucket replaces the Redis token bucket the limiter leases from, for
// tests and fault injection (export_test.go makes it WithBucket there).
// Default: the algorithms package's token bucket scripts on the client
// given to New.
func withBucket(b remoteBucket) Option {
	return optionFunc(func(c *config) { c.bucket = b })
}

// WithLeaseTTL sets how long leased tokens may stay unspent before they are
// returned to Redis. It bounds how stale a served token can be, and so
// the accuracy bound (see the package doc). Default: DefaultLeaseTTL (2 s).
// Zero or negative keeps the default.
func WithLeaseTTL(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.leaseTTL = d
		}
	})
}

// WithAccuracyBudget sets the fraction of the burst that this instance may
// hold as leased, unspent tokens; a lease is never larger. With N
// instances, at most N × budget × burst tokens sit in local counters at
// once. Smaller is more exact and costs more Redis calls; a key whose burst
// × budget is below 2 is served one token per Redis call, exactly like the
// per-request limiter. Default: DefaultAccuracyBudget (0.05). Values
// outside (0, 1] keep the default.
func WithAccuracyBudget(f float64) Option {
	return optionFunc(func(c *config) {
		if f > 0 && f <= 1 {
			c.budget = f
		}
	})
}

// WithRefillTimeout bounds each background lease call to Redis. Callers
// never wait for it longer than the maximum wait (see WithMaxWait): it only
// says when Redis counts as failed rather than slow. Default:
// DefaultRefillTimeout (1 s). Zero or negative keeps the default.
func WithRefillTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.refillTimeout = d
		}
	})
}

// WithMaxWait bounds how long a caller waits for Redis, on top of its own
// context: for a shared refill when its key's local tokens are spent, or
// for a call made on its goroutine. A caller whose refill is still out
// then gets the failure policy, and so do the key's callers after it until
// a refill succeeds. Default: DefaultMaxWait (250 ms). Zero or negative
// keeps the default.
func WithMaxWait(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.maxWait = d
		}
	})
}

// WithMaxKeys caps the number of keys tracked at once. A key that arrives
// while the cap is reached is checked with one Redis call, as the
// per-request limiter would, until idle keys are evicted. Default:
// DefaultMaxKeys (100,000). Zero or negative keeps the default.
func WithMaxKeys(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxKeys = n
		}
	})
}

// withIdleTimeout sets how long a key may see no request before its entry
// is evicted and its tokens returned, for tests (export_test.go makes it
// WithIdleTimeout there). Default: DefaultIdleTimeout (30 s); never
// shorter than the lease TTL. Zero or negative keeps the default.
func withIdleTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.idleTimeout = d
		}
	})
}

// WithLogger sets the logger for background failures (returns that
// could not reach Redis). Default: slog.Default(). A nil logger keeps the
// default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithGrantAhead(false) turns off grants ahead. With them (the default), a
// busy key whose Redis bucket is empty leases a share of the bucket's
// refill rate in one call (see algorithms.Charge.Ahead): Redis grants
// tokens not yet earned, in debt, and this instance serves them one
// interval apart, never before Redis earns them, counting from when the
// reply arrived. At 10× demand on a 1,000/s key with 4 instances that
// takes Redis calls from about 74 to about 5 per 1,000 decisions
// (docs/accuracy.md). The price: every token is served at least one
// reply's latency after Redis earned it, so on a loaded machine, whose
// replies are late, up to that latency × rate of tokens are served later
// than an exact bucket would (or not before a test ends). A quiet key (see
// docs/accuracy.md) never leases ahead.
func WithGrantAhead(on bool) Option {
	return optionFunc(func(c *config) { c.ahead = on })
}
