package algorithms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
	"github.com/distributedratelimiter/ratelimit/internal/rcall"
)

// DefaultTimeout is the deadline of one Redis call when WithTimeout is not
// given: when Redis counts as failed rather than slow. A loaded machine
// stalls tens of milliseconds at times, and a stall is not an outage;
// callers that need an answer sooner set their own deadline, which is
// honoured and never taken for a Redis failure.
const DefaultTimeout = 250 * time.Millisecond

// Limiter is the per-request ("direct") limiter: every AllowN runs one
// atomic script in Redis, so every instance sharing the Redis server sees
// exactly one limit. It costs one network round trip per request; see the
// lease package for the limiter that avoids it.
//
// [Limiter.RefundN] gives back tokens that an admitted request did not
// use; see [Refunder] for what each algorithm does with them.
//
// A Limiter is safe for concurrent use. Create it with [NewLimiter]; the
// zero value is not usable.
type Limiter struct {
	rdb            redis.Scripter
	lim            ratelimit.Limit
	alg            Algorithm
	ks             ratelimit.Keyspace
	timeout        time.Duration
	honorsDeadline bool // rdb honours context deadlines: call on the caller's goroutine
	policy         ratelimit.FailurePolicy
	breaker        *breaker.Breaker // nil when turned off
	local          *localBuckets    // FailLocal's per-key buckets
	clock          ratelimit.Clock
	start          time.Time // the clock at NewLimiter: local time is ns since
}

var (
	_ ratelimit.Limiter  = (*Limiter)(nil)
	_ ratelimit.Refunder = (*Limiter)(nil)
)

// Option configures a [Limiter].
type Option interface{ apply(*config) }

type config struct {
	alg        Algorithm
	ks         ratelimit.Keyspace
	timeout    time.Duration
	policy     ratelimit.FailurePolicy
	instances  int
	breakerOff bool
	logger     *slog.Logger
	clock      ratelimit.Clock
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

func newConfig(opts []Option) config {
	c := config{alg: GCRA, timeout: DefaultTimeout, policy: ratelimit.FailClosed, instances: 1,
		logger: slog.Default(), clock: ratelimit.SystemClock{}}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithAlgorithm chooses the algorithm. Default: GCRA. A nil Algorithm
// keeps the default.
func WithAlgorithm(a Algorithm) Option {
	return optionFunc(func(c *config) {
		if a != nil {
			c.alg = a
		}
	})
}

// WithKeyspace sets the namespace of the Redis keys. Default: the zero
// Keyspace, whose prefix is ratelimit.DefaultPrefix.
func WithKeyspace(ks ratelimit.Keyspace) Option {
	return optionFunc(func(c *config) { c.ks = ks })
}

// WithTimeout bounds each Redis call, independently of how long the
// caller's context would allow. Default: DefaultTimeout (250 ms). Zero
// keeps the default; ratelimit.NoBound (or any negative value) means the
// caller's context alone bounds the call.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d != 0 {
			c.timeout = d
		}
	})
}

// NewLimiter returns a per-request Limiter enforcing lim through rdb, which
// may be any go-redis client: standalone, Sentinel (failover) or Cluster.
// It fails with [ratelimit.ErrInvalidLimit] when lim is invalid, or does not
// suit the algorithm (see [CalendarWindow.Validate]).
//
// For the tightest deadlines build the client with ContextTimeoutEnabled:
// then calls run on the caller's goroutine. Otherwise each call runs on a
// goroutine of its own so that the caller can still leave at its deadline.
func NewLimiter(rdb redis.Scripter, lim ratelimit.Limit, opts ...Option) (*Limiter, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	c := newConfig(opts)
	alg := c.alg
	if p, ok := alg.(preparer); ok {
		var err error
		if alg, err = p.prepare(lim, c.clock); err != nil {
			return nil, err
		}
	}
	return &Limiter{
		rdb:            rdb,
		lim:            lim,
		alg:            alg,
		ks:             c.ks,
		timeout:        c.timeout,
		honorsDeadline: rcall.HonorsDeadline(rdb),
		policy:         c.policy,
		breaker:        newBreaker(c),
		local:          newLocalBuckets(lim.Share(c.instances)),
		clock:          c.clock,
		start:          c.clock.Now(),
	}, nil
}

// A preparer is an Algorithm that NewLimiter prepares for the Limiter:
// it checks the limit against its own parameters and takes the Limiter's
// clock, as [CalendarWindow] does.
type preparer interface {
	prepare(lim ratelimit.Limit, clk ratelimit.Clock) (Algorithm, error)
}

// Limit returns the limit the Limiter enforces.
func (l *Limiter) Limit() ratelimit.Limit { return l.lim }

// Algorithm returns the algorithm the Limiter runs.
func (l *Limiter) Algorithm() Algorithm { return l.alg }

// Allow is shorthand for AllowN(ctx, key, 1).
func (l *Limiter) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return l.AllowN(ctx, key, 1)
}

// AllowN runs the algorithm's script once for n tokens of key. See
// [ratelimit.Limiter.AllowN] for the errors.
func (l *Limiter) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	rkey, err := l.redisKey(key, n)
	if err != nil {
		return ratelimit.Decision{}, err
	}
	d, err := call(l, ctx, "", key, func(ctx context.Context) (ratelimit.Decision, error) {
		return l.alg.Check(ctx, l.rdb, rkey, l.lim, n)
	})
	if err != nil {
		if !errors.Is(err, ratelimit.ErrStore) {
			return ratelimit.Decision{}, err // the caller gave up: no policy
		}
		if !errors.Is(err, ratelimit.ErrCircuitOpen) && !breaker.IsFailure(err) {
			// Redis answered, with an error (a key of the wrong type, a
			// malformed reply): a fault to report, not an outage to ride
			// out.
			return ratelimit.Decision{Limit: l.lim, Source: ratelimit.SourceRedis}, err
		}
		return l.fail(key, n, err)
	}
	l.local.drop(key) // Redis answers: the key's fallback state goes
	return d, nil
}

// RefundN gives back n tokens that an earlier admitted AllowN of key spent
// but did not use, never raising key above its burst. It implements
// [ratelimit.Refunder]. It fails like AllowN, and with
// [ErrRefundUnsupported] when the Algorithm is not a [Refunder].
func (l *Limiter) RefundN(ctx context.Context, key string, n int) error {
	rf, ok := l.alg.(Refunder)
	if !ok {
		return fmt.Errorf("%w: %q", ErrRefundUnsupported, l.alg.Name())
	}
	rkey, err := l.redisKey(key, n)
	if err != nil {
		return err
	}
	_, err = call(l, ctx, "refund", key, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, rf.Refund(ctx, l.rdb, rkey, l.lim, n)
	})
	return err
}

// call runs fn, an operation op ("" for a check) of the Limiter's
// Algorithm on key, once through the circuit breaker, bounded by ctx and
// the Limiter's timeout. It returns the caller's own context error when
// the caller gave up (see rcall.Call), and any other failure as a
// [*ratelimit.StoreError].
func call[T any](l *Limiter, ctx context.Context, op, key string, fn func(context.Context) (T, error)) (T, error) {
	v, err := rcall.Call(ctx, l.breaker, l.timeout, l.honorsDeadline, fn)
	if err == nil {
		return v, nil
	}
	var zero T
	if cerr := rcall.CallerDone(ctx); cerr != nil {
		return zero, cerr
	}
	if op != "" {
		op = " " + op
	}
	return zero, &ratelimit.StoreError{Op: l.alg.Name() + op, Key: key, Err: err}
}

// redisKey validates n and key and returns key's Redis key.
func (l *Limiter) redisKey(key string, n int) (string, error) {
	if err := l.lim.ValidateN(n); err != nil {
		return "", err
	}
	return l.ks.ClientKey(key, l.alg.Name())
}
