package lease

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
	"github.com/distributedratelimiter/ratelimit/internal/rcall"
	"github.com/distributedratelimiter/ratelimit/internal/stripe"
)

// ErrRefillWait is wrapped in the [ratelimit.StoreError] returned when a
// caller gave up waiting for a refill after the limiter's maximum wait.
var ErrRefillWait = errors.New("ratelimit: lease refill did not finish within the maximum wait")

// A Bucket is the shared token bucket a [Limiter] leases from. The default
// runs the algorithms package's token bucket scripts; tests and fault
// injection can supply their own with [WithBucket].
type Bucket interface {
	// TakeUpTo takes up to n tokens from the bucket at rkey.
	TakeUpTo(ctx context.Context, rkey string, lim ratelimit.Limit, n int) (algorithms.Grant, error)
	// GiveBack returns n unspent tokens to the bucket at rkey.
	GiveBack(ctx context.Context, rkey string, lim ratelimit.Limit, n int) (int, error)
}

// redisBucket is the default Bucket.
type redisBucket struct{ rdb redis.Scripter }

func (b redisBucket) TakeUpTo(ctx context.Context, rkey string, lim ratelimit.Limit, n int) (algorithms.Grant, error) {
	return algorithms.TakeUpTo(ctx, b.rdb, rkey, lim, n)
}

func (b redisBucket) GiveBack(ctx context.Context, rkey string, lim ratelimit.Limit, n int) (int, error) {
	return algorithms.GiveBack(ctx, b.rdb, rkey, lim, n)
}

// Limiter is the leasing limiter. See the package documentation for how it
// works and what it guarantees.
//
// A Limiter is safe for concurrent use. Create it with [New] and release it
// with [Limiter.Close]; the zero value is not usable.
type Limiter struct {
	lim      ratelimit.Limit
	cfg      config
	bucket   Bucket
	direct   bool // bucket calls may run on the calling goroutine
	sz       sizer
	interval float64 // ns to earn one token, exact
	start    time.Time

	entries sync.Map // string → *entry
	count   atomic.Int64
	hits    *stripe.Counter // admissions on the hit path
	group   singleflight.Group

	rtt         atomic.Int64 // EWMA of refill round trips, ns
	breaker     *breaker.Breaker
	lastFailure atomic.Pointer[error] // the latest refill error that found Redis unreachable

	ctx     context.Context // cancelled by Close; parent of refills
	cancel  context.CancelFunc
	closed  atomic.Bool    // set first by Close: no new calls
	bgMu    sync.Mutex     // protects closing and bg.Add
	closing bool           // set by Close once no refill may start
	bg      sync.WaitGroup // refills in flight
	janitor chan struct{}  // closed when the janitor has returned

	stats counters
}

var (
	_ ratelimit.Limiter  = (*Limiter)(nil)
	_ ratelimit.Refunder = (*Limiter)(nil)
)

// New returns a leasing Limiter enforcing lim with the token bucket in
// Redis behind rdb (any go-redis client: standalone, Sentinel or Cluster;
// it may be nil when WithBucket is given). It starts one background
// goroutine, stopped by Close. It fails with [ratelimit.ErrInvalidLimit]
// when lim is invalid.
func New(rdb redis.Scripter, lim ratelimit.Limit, opts ...Option) (*Limiter, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	cfg := newConfig(opts)
	l := &Limiter{
		lim:      lim,
		cfg:      cfg,
		bucket:   cfg.bucket,
		interval: float64(lim.Period) / float64(lim.Rate),
		start:    cfg.clock.Now(),
		janitor:  make(chan struct{}),
		hits:     stripe.New(),
	}
	if l.bucket == nil {
		if rdb == nil {
			return nil, fmt.Errorf("ratelimit: lease.New needs a Redis client or WithBucket")
		}
		l.bucket = redisBucket{rdb}
		l.direct = rcall.HonorsContext(rdb)
	}
	l.sz = newSizer(lim.Burst, cfg.budget, cfg.horizon, l.interval)
	l.breaker = newBreaker(cfg)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.runJanitor()
	return l, nil
}

// Limit returns the limit the Limiter enforces.
func (l *Limiter) Limit() ratelimit.Limit { return l.lim }

// earn returns the time the limit takes to earn k tokens (0 for k <= 0).
func (l *Limiter) earn(k int64) time.Duration {
	return time.Duration(float64(max(k, 0)) * l.interval)
}

// AccuracyBudget returns the fraction of the burst this instance may hold
// as leased, unspent tokens (see WithAccuracyBudget).
func (l *Limiter) AccuracyBudget() float64 { return l.cfg.budget }

// now returns the limiter's clock in ns since New.
func (l *Limiter) now() int64 { return int64(l.cfg.clock.Now().Sub(l.start)) }

// Allow is shorthand for AllowN(ctx, key, 1).
func (l *Limiter) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return l.AllowN(ctx, key, 1)
}

// AllowN spends n tokens of key if they are available. When this instance
// holds enough leased tokens, it decides with one atomic operation: no
// lock, no allocation, no Redis call and no clock read. Otherwise it waits
// for a refill from Redis, bounded by ctx and the maximum wait, or answers
// from a denial it remembers. See [ratelimit.Limiter.AllowN] for the
// errors.
func (l *Limiter) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	if n <= 0 || n > l.lim.Burst {
		return ratelimit.Decision{}, l.lim.ValidateN(n)
	}
	if len(key) == 0 || len(key) > ratelimit.MaxKeyLen {
		return ratelimit.Decision{}, ratelimit.ValidateKey(key)
	}
	if l.closed.Load() {
		return ratelimit.Decision{}, ratelimit.ErrClosed
	}
	if v, ok := l.entries.Load(key); ok {
		e := v.(*entry)
		if left, ok := e.take(int64(n)); ok {
			l.hits.Add(1)
			if left <= int64(e.low.Load()) && e.refilling.CompareAndSwap(false, true) {
				l.startRefill(e)
			}
			return l.allowed(e, left, ratelimit.SourceLocal), nil
		}
		return l.slow(ctx, key, e, n)
	}
	return l.slow(ctx, key, nil, n)
}

// allowed is the decision of a request served from local tokens, leased
// earlier (src local) or by a refill it waited for (src redis).
func (l *Limiter) allowed(e *entry, left int64, src ratelimit.Source) ratelimit.Decision {
	rem := left + max(e.remote.Load(), 0)
	rem = min(rem, int64(l.lim.Burst))
	return ratelimit.Decision{
		Allowed:    true,
		Limit:      l.lim,
		Remaining:  int(rem),
		ResetAfter: l.earn(int64(l.lim.Burst) - rem),
		Source:     src,
	}
}

// denied is the decision of a request denied until retry has passed.
func (l *Limiter) denied(e *entry, retry time.Duration, src ratelimit.Source) ratelimit.Decision {
	rem := max(e.tokens.Load(), 0) + max(e.remote.Load(), 0)
	rem = min(rem, int64(l.lim.Burst))
	return ratelimit.Decision{
		Limit:      l.lim,
		Remaining:  int(rem),
		RetryAfter: retry,
		ResetAfter: l.earn(int64(l.lim.Burst) - rem),
		Source:     src,
	}
}

// slow is the path of a request that local tokens could not serve: a
// remembered denial, or a wait for a refill. It waits for refills until it
// gets its tokens, Redis denies, or ctx or the maximum wait ends: a refill
// shared with other callers may leave too few tokens for this one, so it
// registers as a waiter, and a refill asks for at least one token per
// waiter.
func (l *Limiter) slow(ctx context.Context, key string, e *entry, n int) (ratelimit.Decision, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	src := ratelimit.SourceLocal // until this call asks Redis itself
	for {
		if e == nil || e.tokens.Load() < 0 {
			e = l.entry(key)
			if e == nil {
				return l.uncached(ctx, key, n)
			}
		}
		if left, ok := e.take(int64(n)); ok {
			l.stats.allowedSlow[src].Add(1)
			return l.allowed(e, left, src), nil
		}
		now := l.now()
		if until := e.deniedUntil.Load(); now < until {
			e.denials.Add(1)
			l.stats.denied[src].Add(1)
			return l.denied(e, time.Duration(until-now), src), nil
		}
		if now < e.failedUntil.Load() {
			return l.fail(e, key, n, l.recentFailure())
		}
		if err := ctx.Err(); err != nil {
			return ratelimit.Decision{}, err
		}
		l.stats.waits.Add(1)
		if l.direct && e.low.Load() == 0 && !e.refilling.Load() {
			// A quiet key leases one request's tokens at a time: refill
			// on this goroutine, bounded by ctx, as the per-request
			// limiter would, rather than through a refill goroutine.
			if err := l.refill(ctx, e, int64(n)); err != nil {
				return l.refillFailed(ctx, e, key, n, err)
			}
			src = ratelimit.SourceRedis
			continue
		}
		if timer == nil {
			timer = time.NewTimer(l.cfg.maxWait)
		}
		e.waiting.Add(int64(n))
		ch := l.group.DoChan(key, l.refillFunc(e, int64(n)))
		var err error
		select {
		case r := <-ch:
			err = r.Err
		case <-ctx.Done():
			err = ctx.Err()
		case <-timer.C:
			// select picks at random among ready cases: on a starved
			// process the refill may have finished too.
			select {
			case r := <-ch:
				err = r.Err
			default:
				err = ErrRefillWait
			}
		}
		e.waiting.Add(-int64(n))
		if err != nil {
			return l.refillFailed(ctx, e, key, n, err)
		}
		src = ratelimit.SourceRedis
		if e.claim(int64(n)) {
			l.stats.allowedSlow[ratelimit.SourceRedis].Add(1)
			return l.allowed(e, max(e.tokens.Load(), 0), ratelimit.SourceRedis), nil
		}
	}
}

// refillFailed decides a request whose refill did not succeed.
func (l *Limiter) refillFailed(ctx context.Context, e *entry, key string, n int, err error) (ratelimit.Decision, error) {
	switch {
	case ctx.Err() != nil:
		return ratelimit.Decision{}, ctx.Err()
	case l.closed.Load() || errors.Is(err, ratelimit.ErrClosed):
		return ratelimit.Decision{}, ratelimit.ErrClosed
	case err == ErrRefillWait:
		// Slow, not failed: this caller gets the failure policy, the key
		// keeps trying Redis.
		return l.fail(e, key, n, err)
	case !breaker.IsFailure(err):
		// Redis answered, with an error (a key of the wrong type, a
		// malformed reply): a fault to report, not an outage to ride out.
		return ratelimit.Decision{Limit: l.lim, Source: ratelimit.SourceRedis},
			&ratelimit.StoreError{Op: "lease refill", Key: key, Err: err}
	}
	l.lastFailure.Store(&err)
	e.failedUntil.Store(l.now() + int64(fallbackHold))
	return l.fail(e, key, n, err)
}

// recentFailure returns the error of the latest refill that found Redis
// unreachable, for decisions made while a key holds off after it.
func (l *Limiter) recentFailure() error {
	if p := l.lastFailure.Load(); p != nil {
		return *p
	}
	return ratelimit.ErrCircuitOpen
}

// entry returns the live entry of key, creating it if the key cap allows,
// or nil when the cap is reached.
func (l *Limiter) entry(key string) *entry {
	for {
		if v, ok := l.entries.Load(key); ok {
			if e := v.(*entry); e.tokens.Load() >= 0 {
				return e
			}
			continue // being evicted: wait for the janitor to delete it
		}
		// Take a place under the cap before storing, so that concurrent
		// creators can never overshoot it.
		if l.count.Add(1) > int64(l.cfg.maxKeys) {
			l.count.Add(-1)
			l.stats.overflow.Add(1)
			return nil
		}
		e := newEntry(key, l.now())
		if v, loaded := l.entries.LoadOrStore(key, e); loaded {
			l.count.Add(-1)
			if old := v.(*entry); old.tokens.Load() >= 0 {
				return old
			}
			continue
		}
		return e
	}
}

// uncached checks a key that the key cap keeps out of the table with one
// Redis call, as the per-request limiter would.
func (l *Limiter) uncached(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	g, err := call(l, ctx, l.cfg.refillTimeout, func(ctx context.Context) (algorithms.Grant, error) {
		return l.bucket.TakeUpTo(ctx, l.rkey(key), l.lim, n)
	})
	if err != nil {
		if ctx.Err() != nil {
			return ratelimit.Decision{}, ctx.Err()
		}
		return l.failUncached(key, n, err)
	}
	d := ratelimit.Decision{
		Limit:      l.lim,
		Remaining:  g.Remaining,
		ResetAfter: g.ResetAfter,
		Source:     ratelimit.SourceRedis,
	}
	if g.Granted == n {
		d.Allowed = true
		l.stats.allowedSlow[ratelimit.SourceRedis].Add(1)
		return d, nil
	}
	if g.Granted > 0 {
		l.giveBack(key, int64(g.Granted))
	}
	d.RetryAfter = max(g.RetryAfter, l.earn(int64(n-g.Remaining)))
	l.stats.denied[ratelimit.SourceRedis].Add(1)
	return d, nil
}

// startRefill starts a background refill of e; the caller has set
// e.refilling.
func (l *Limiter) startRefill(e *entry) {
	if l.closed.Load() {
		e.refilling.Store(false)
		return
	}
	l.stats.prefetches.Add(1)
	l.group.DoChan(e.key, l.refillFunc(e, 0))
	// Let the refill goroutine send its request now rather than after this
	// goroutine's time slice: on a busy process that is what keeps the
	// refill ahead of the batch running out.
	runtime.Gosched()
}

// refillFunc returns the singleflight function that leases tokens for e,
// at least need of them when Redis has them. It clears e.refilling when it
// ends, whoever started it.
func (l *Limiter) refillFunc(e *entry, need int64) func() (any, error) {
	return func() (any, error) {
		defer e.refilling.Store(false)
		if !l.enter() {
			return nil, ratelimit.ErrClosed
		}
		defer l.bg.Done()
		return nil, l.refill(l.ctx, e, need)
	}
}

// refill leases tokens for e from Redis, at least need of them when Redis
// has them, bounded by ctx and the refill timeout.
func (l *Limiter) refill(ctx context.Context, e *entry, need int64) error {
	start := l.now()
	e.mu.Lock()
	demand := e.served() + e.denials.Load()
	e.rate = ewma(e.rate, demand-e.lastDemand, time.Duration(start-e.lastRefill))
	e.lastDemand, e.lastRefill = demand, start
	rate := e.rate
	e.mu.Unlock()

	rtt := time.Duration(l.rtt.Load())
	n := l.sz.size(rate, rtt, e.remote.Load(), max(need, e.waiting.Load()))

	g, err := call(l, ctx, l.cfg.refillTimeout, func(ctx context.Context) (algorithms.Grant, error) {
		return l.bucket.TakeUpTo(ctx, l.rkey(e.key), l.lim, int(n))
	})
	if errors.Is(err, ratelimit.ErrCircuitOpen) {
		l.stats.refillErrors.Add(1) // refused without a call: no round trip to learn from
		return err
	}
	end := l.now()
	l.observeRTT(time.Duration(end - start))
	l.stats.refills.Add(1)
	if err != nil {
		l.stats.refillErrors.Add(1)
		return err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	e.remote.Store(int64(g.Remaining))
	if g.Granted == 0 {
		wait := l.sz.denialWait(g.RetryAfter, rate, rtt)
		e.deniedUntil.Store(end + int64(wait))
		e.low.Store(0)
		return nil
	}
	granted := int64(g.Granted)
	e.unreserve() // unclaimed by earlier waiters
	if !e.add(granted, e.waiting.Load(), end) {
		l.giveBack(e.key, granted) // evicted meanwhile
		return nil
	}
	l.stats.leased.Add(granted)
	e.deniedUntil.Store(0)
	e.low.Store(int32(min(l.sz.lowWatermark(n, rate, rtt), math.MaxInt32)))
	return nil
}

func (l *Limiter) observeRTT(d time.Duration) {
	for {
		old := l.rtt.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/8
		}
		if l.rtt.CompareAndSwap(old, next) {
			return
		}
	}
}

// RefundN returns n tokens that an admitted AllowN of key spent but did not
// use. They go back into this instance's lease (the Redis bucket gets them
// back when the lease expires or is returned); a key this instance does not
// track gets them back in Redis at once.
func (l *Limiter) RefundN(ctx context.Context, key string, n int) error {
	if err := l.lim.ValidateN(n); err != nil {
		return err
	}
	if err := ratelimit.ValidateKey(key); err != nil {
		return err
	}
	if l.closed.Load() {
		return ratelimit.ErrClosed
	}
	if v, ok := l.entries.Load(key); ok {
		e := v.(*entry)
		e.mu.Lock()
		ok := e.add(int64(n), 0, l.now())
		e.mu.Unlock()
		if ok {
			l.stats.refunded.Add(int64(n))
			return nil
		}
	}
	_, err := call(l, ctx, l.cfg.refillTimeout, func(ctx context.Context) (int, error) {
		return l.bucket.GiveBack(ctx, l.rkey(key), l.lim, n)
	})
	if err != nil {
		return &ratelimit.StoreError{Op: "lease refund", Key: key, Err: err}
	}
	return nil
}

// rkey returns the Redis key of key's token bucket. key must be valid.
func (l *Limiter) rkey(key string) string {
	rk, _ := l.cfg.ks.ClientKey(key, algorithms.TokenBucket.Name())
	return rk
}

// giveBack returns n tokens to the Redis bucket of key, bounded by the
// refill timeout; a failure is logged and counted, since the tokens then
// come back by the bucket's own refill.
func (l *Limiter) giveBack(key string, n int64) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.refillTimeout)
	defer cancel()
	_, err := call(l, ctx, 0, func(ctx context.Context) (int, error) {
		return l.bucket.GiveBack(ctx, l.rkey(key), l.lim, int(n))
	})
	if err != nil {
		l.stats.giveBackErrors.Add(1)
		l.cfg.logger.Warn("ratelimit: could not give back leased tokens", "tokens", n, "err", err)
		return
	}
	l.stats.returned.Add(n)
}
