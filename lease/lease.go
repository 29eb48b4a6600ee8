package lease

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
	"github.com/distributedratelimiter/ratelimit/internal/keytable"
	"github.com/distributedratelimiter/ratelimit/internal/rcall"
)

// ErrRefillWait is wrapped in the [ratelimit.StoreError] returned when a
// caller gave up waiting for a refill after the limiter's maximum wait.
var ErrRefillWait = errors.New("lease: refill did not finish within the maximum wait")

// remoteBucket is the shared token bucket a [Limiter] leases from. The
// default runs the algorithms package's token bucket scripts; tests and
// fault injection supply their own (withBucket).
type remoteBucket interface {
	// TakeUpTo charges c to the bucket at rkey (see algorithms.Charge),
	// then takes up to n tokens from it.
	TakeUpTo(ctx context.Context, rkey string, lim ratelimit.Limit, n int, c algorithms.Charge) (algorithms.Grant, error)
	// Return returns n unspent tokens to the bucket at rkey.
	Return(ctx context.Context, rkey string, lim ratelimit.Limit, n int) error
	// Peek returns what the bucket at rkey holds now, spending nothing
	// (see algorithms.Inspector).
	Peek(ctx context.Context, rkey string, lim ratelimit.Limit) (ratelimit.Decision, error)
	// Charge spends n tokens of the bucket at rkey however few it holds,
	// into debt down to -Burst (see algorithms.Charger).
	Charge(ctx context.Context, rkey string, lim ratelimit.Limit, n int) error
	// Reset gives the bucket at rkey its whole burst again.
	Reset(ctx context.Context, rkey string, lim ratelimit.Limit) error
}

// redisBucket is the default remoteBucket.
type redisBucket struct{ rdb redis.Scripter }

func (b redisBucket) TakeUpTo(ctx context.Context, rkey string, lim ratelimit.Limit, n int, c algorithms.Charge) (algorithms.Grant, error) {
	return algorithms.ChargeTakeUpTo(ctx, b.rdb, rkey, lim, n, c)
}

func (b redisBucket) Return(ctx context.Context, rkey string, lim ratelimit.Limit, n int) error {
	_, err := algorithms.ReturnN(ctx, b.rdb, rkey, lim, n)
	return err
}

func (b redisBucket) Peek(ctx context.Context, rkey string, lim ratelimit.Limit) (ratelimit.Decision, error) {
	return algorithms.TokenBucket.(algorithms.Inspector).Peek(ctx, b.rdb, rkey, lim)
}

func (b redisBucket) Charge(ctx context.Context, rkey string, lim ratelimit.Limit, n int) error {
	return algorithms.TokenBucket.(algorithms.Charger).Charge(ctx, b.rdb, rkey, lim, n)
}

func (b redisBucket) Reset(ctx context.Context, rkey string, lim ratelimit.Limit) error {
	return algorithms.TokenBucket.(algorithms.Inspector).Reset(ctx, b.rdb, rkey, lim)
}

// Limiter is the leasing limiter. See the package documentation for how it
// works and what it guarantees.
//
// A Limiter is safe for concurrent use. Create it with [New] and release it
// with [Limiter.Close]; the zero value is not usable.
type Limiter struct {
	// hot caches the entries of hot keys (see hotSlot), read by every
	// request and written rarely: first, on a cache line of its own.
	hot [hotSlots]atomic.Pointer[entry]
	_   [64]byte

	lim      ratelimit.Limit
	cfg      config
	bucket   remoteBucket
	sz       sizer
	interval float64 // ns to earn one token, exact
	start    time.Time

	honorsDeadline bool // bucket calls may run on the calling goroutine

	entries *keytable.Table[entry] // by entry.key; Load takes no lock
	count   atomic.Int64
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
// it may be nil in tests that give their own bucket). It starts one background
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
		entries:  keytable.New(func(e *entry) string { return e.key }),
	}
	l.stats.decided = newTally()
	if l.bucket == nil {
		if rdb == nil {
			return nil, errors.New("lease: New needs a Redis client")
		}
		l.bucket = redisBucket{rdb}
		l.honorsDeadline = rcall.HonorsDeadline(rdb)
	}
	l.sz = newSizer(lim.Burst, cfg.budget, cfg.horizon, cfg.leaseTTL, l.interval)
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
func (l *Limiter) AllowN(ctx context.Context, key string, n int) (d ratelimit.Decision, err error) {
	if n <= 0 || n > l.lim.Burst {
		return d, l.lim.ValidateN(n)
	}
	if len(key) == 0 || len(key) > ratelimit.MaxKeyLen {
		return d, ratelimit.ValidateKey(key)
	}
	if l.closed.Load() {
		return d, ratelimit.ErrClosed
	}
	e := l.hot[hotSlot(key)].Load()
	if e == nil || e.key != key {
		e = l.entries.Load(key)
	}
	if e == nil {
		return l.slow(ctx, key, nil, n)
	}
	var left int64
	ok := false
	if st := e.striped.Load(); st != nil {
		// A hot key: take from this goroutine's stripe. What it left,
		// times the stripes, stands for what the key has left.
		left, ok = st.take(int64(n))
		left *= int64(len(st.cells))
	}
	if !ok {
		if left, ok = e.take(int64(n)); !ok {
			return l.slow(ctx, key, e, n)
		}
	}
	l.hit(e, n, left)
	l.fillAllowed(&d, e, left, ratelimit.SourceLocal)
	return d, nil
}

// hotSlots is the number of entries Limiter.hot caches.
const hotSlots = 8

// hotSlot returns the slot of Limiter.hot for key, which is not empty:
// from its length and last byte, which a comparison of the cached key
// reads anyway. The hit path of a cached key compares one string instead
// of hashing it and probing the table. A key is cached while its tokens
// are striped (a lease of stripeMin or more: a key that hot), by each of
// its refills, and uncached when it is evicted; keys that share a slot
// take turns, and a cached entry that was evicted meanwhile is caught by
// its dead counter, as one from the table would be. Clients choose their
// keys, but all a crafted one can do is miss the cache.
func hotSlot(key string) int { return (len(key) ^ int(key[len(key)-1])) & (hotSlots - 1) }

// cacheHot caches e in Limiter.hot if its tokens are striped.
func (l *Limiter) cacheHot(e *entry) {
	// Stored only when it changes: every request reads the slots' line.
	if s := &l.hot[hotSlot(e.key)]; e.striped.Load() != nil && s.Load() != e {
		s.Store(e)
	}
}

// uncacheHot takes e, evicted, out of Limiter.hot.
func (l *Limiter) uncacheHot(e *entry) { l.hot[hotSlot(e.key)].CompareAndSwap(e, nil) }

// hit follows a request for n tokens served on the hit path, which left
// about left tokens: small enough to inline, it counts nothing for n == 1
// (see counters.hitAdmissions) and has hitLow check the low watermark only
// when left is at or below it.
func (l *Limiter) hit(e *entry, n int, left int64) {
	if n > 1 || left <= int64(e.low.Load()) {
		l.hitLow(e, n, left)
	}
}

// hitLow counts a hit of n > 1 tokens and starts a refill at the low
// watermark. A low watermark of zero (single-token leases) never
// prefetches: a token fetched ahead would sit here while other instances
// are denied. left is an estimate for a hot key (its caller's stripe
// times the stripes, and callers spread over the stripes unevenly): the
// count of every stripe decides, or a refill would start with half the
// lease still unspent.
func (l *Limiter) hitLow(e *entry, n int, left int64) {
	if n > 1 {
		l.stats.hitExtra.Add(int64(n - 1))
	}
	low := int64(e.low.Load())
	if left > low || low <= 0 || e.refilling.Load() {
		return
	}
	if e.held() > low {
		// Only this caller's stripe is low: spread the key's tokens again,
		// so that its next hits do not count every stripe each time.
		if e.mu.TryLock() {
			e.rebalance()
			e.mu.Unlock()
		}
		return
	}
	if e.refilling.CompareAndSwap(false, true) {
		l.startRefill(e)
	}
}

// allowed is the decision of a request served from local tokens, leased
// earlier (src local) or by a refill it waited for (src redis).
func (l *Limiter) allowed(e *entry, left int64, src ratelimit.Source) (d ratelimit.Decision) {
	l.fillAllowed(&d, e, left, src)
	return d
}

// fillAllowed sets d, zero, to the decision allowed returns. It fills d in
// place, field by field: a Decision is too large to live in registers, and
// building it as a composite literal copies it through the stack twice,
// which the hit path feels.
func (l *Limiter) fillAllowed(d *ratelimit.Decision, e *entry, left int64, src ratelimit.Source) {
	rem := left + max(e.remote.Load(), 0)
	rem = min(rem, int64(l.lim.Burst))
	d.Allowed = true
	d.Limit = l.lim
	d.Remaining = int(rem)
	d.ResetAfter = l.earn(int64(l.lim.Burst) - rem)
	d.Source = src
}

// denied counts a request of e denied at src without spending a leased
// token (in the key's demand and the limiter's denials), and returns its
// decision: denied until retry has passed.
func (l *Limiter) denied(e *entry, retry time.Duration, src ratelimit.Source) ratelimit.Decision {
	e.countUnleased()
	l.stats.decided.denied(src)
	rem := e.held() + max(e.remote.Load(), 0)
	rem = min(rem, int64(l.lim.Burst))
	return ratelimit.Decision{
		Limit:      l.lim,
		Remaining:  int(rem),
		RetryAfter: retry,
		ResetAfter: l.earn(int64(l.lim.Burst) - rem),
		Source:     src,
	}
}

// callerContext returns ctx, also cancelled by Close, for a Redis call made
// on a caller's goroutine.
func (l *Limiter) callerContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(l.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// entry returns the live entry of key, creating it if the key cap allows,
// or nil when the cap is reached.
func (l *Limiter) entry(key string) *entry {
	for {
		if e := l.entries.Load(key); e != nil {
			if e.tokens.Load() >= 0 {
				return e
			}
			// Being evicted: the janitor deletes it from the table
			// before it lets go of its mutex; wait for that instead of
			// spinning.
			e.mu.Lock()
			e.mu.Unlock()
			continue
		}
		// Take a place under the cap before storing, so that concurrent
		// creators can never overshoot it.
		if l.count.Add(1) > int64(l.cfg.maxKeys) {
			l.count.Add(-1)
			l.stats.overflow.Add(1)
			return nil
		}
		e := newEntry(key, l.now())
		if old, loaded := l.entries.LoadOrStore(key, e); loaded {
			l.count.Add(-1)
			if old.tokens.Load() >= 0 {
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
	cctx, cancel := l.callerContext(ctx)
	defer cancel()
	g, err := call(l, cctx, l.cfg.maxWait, false, func(ctx context.Context) (algorithms.Grant, error) {
		return l.bucket.TakeUpTo(ctx, l.rkey(key), l.lim, n, algorithms.Charge{})
	})
	if err != nil {
		if cerr := rcall.CallerDone(ctx); cerr != nil {
			return ratelimit.Decision{}, cerr
		}
		if l.closed.Load() {
			return ratelimit.Decision{}, ratelimit.ErrClosed
		}
		if !unavailable(err) {
			return ratelimit.Decision{Limit: l.lim, Source: ratelimit.SourceRedis},
				&ratelimit.StoreError{Op: "lease check", Key: key, Err: err}
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
		l.returnTokens(key, int64(g.Granted))
	}
	d.RetryAfter = max(g.RetryAfter, l.earn(int64(n-g.Remaining)))
	l.stats.decided.denied(ratelimit.SourceRedis)
	return d, nil
}

// rkey returns the Redis key of key's token bucket. key must be valid.
func (l *Limiter) rkey(key string) string {
	rk, _ := l.cfg.ks.ClientKey(key, algorithms.TokenBucket.Name())
	return rk
}
