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

// redisBucket is the default Bucket.
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
	lim      ratelimit.Limit
	cfg      config
	bucket   Bucket
	sz       sizer
	interval float64 // ns to earn one token, exact
	start    time.Time

	honorsDeadline bool // bucket calls may run on the calling goroutine

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
		if st := e.striped.Load(); st != nil {
			// A hot key: take from this goroutine's stripe. What it left,
			// times the stripes, stands for what the key has left.
			if left, ok := st.take(int64(n)); ok {
				return l.hit(e, left*int64(len(st.cells))), nil
			}
		}
		if left, ok := e.take(int64(n)); ok {
			return l.hit(e, left), nil
		}
		return l.slow(ctx, key, e, n)
	}
	return l.slow(ctx, key, nil, n)
}

// hit is the decision of a request served on the hit path, which left
// about left tokens; it starts a refill at the low watermark.
func (l *Limiter) hit(e *entry, left int64) ratelimit.Decision {
	l.hits.Add(1)
	if left <= int64(e.low.Load()) && e.refilling.CompareAndSwap(false, true) {
		l.startRefill(e)
	}
	return l.allowed(e, left, ratelimit.SourceLocal)
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

// slow is the path of a request that local tokens could not serve. Its
// steps, in order, each of which may decide:
//
//  1. local take: a refill that landed meanwhile may have left tokens,
//     and tokens granted ahead may have fallen due (release);
//  2. remembered denial: no token is due before deniedUntil, by what Redis
//     said or by the schedule of tokens granted ahead;
//  3. degraded: Redis is slow or failing for this key, so the failure
//     policy decides at once, and a refill is retried in the background
//     at most every fallbackHold;
//  4. inline refill: a quiet key (single-token leases, no refill in
//     flight) asks Redis on this goroutine, as the per-request limiter
//     would;
//  5. shared refill: otherwise the caller waits for the key's refill (one
//     per key, deduplicated), at most the maximum wait; then back to 1.
//
// A refill still in flight when the maximum wait ends marks the key
// degraded: Redis is slow, and this caller and those after it get the
// failure policy until a refill succeeds.
func (l *Limiter) slow(ctx context.Context, key string, e *entry, n int) (ratelimit.Decision, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	src := ratelimit.SourceLocal // until this call asks Redis itself
	inlined := false             // at most one inline refill per call
	for {
		if e == nil || e.tokens.Load() < 0 {
			e = l.entry(key)
			if e == nil {
				return l.uncached(ctx, key, n)
			}
		}
		// 1. Local take, the stripes of a hot key gathered first.
		if left, ok := e.take(int64(n)); ok {
			l.stats.allowedSlow[src].Add(1)
			return l.allowed(e, left, src), nil
		}
		if st := e.striped.Load(); st != nil && st.sum() > 0 {
			e.mu.Lock()
			e.gather()
			e.mu.Unlock()
			if left, ok := e.take(int64(n)); ok {
				l.stats.allowedSlow[src].Add(1)
				return l.allowed(e, left, src), nil
			}
		}
		now := l.now()
		if e.sched.Load() > 0 {
			if left, ok, d := l.takeDue(e, n, now); ok {
				l.stats.allowedSlow[ratelimit.SourceLocal].Add(1)
				return l.allowed(e, left, ratelimit.SourceLocal), nil
			} else if d > 0 {
				e.denials.Add(1)
				l.stats.denied[ratelimit.SourceLocal].Add(1)
				return l.denied(e, d, ratelimit.SourceLocal), nil
			}
		}
		// 2. Remembered denial.
		if until := e.deniedUntil.Load(); now < until {
			e.denials.Add(1)
			l.stats.denied[src].Add(1)
			return l.denied(e, time.Duration(until-now), src), nil
		}
		// 3. Degraded.
		if e.degraded.Load() {
			l.probe(e, now)
			return l.fail(e, key, n, l.recentFailure())
		}
		if err := rcall.CallerDone(ctx); err != nil {
			return ratelimit.Decision{}, err
		}
		l.stats.waits.Add(1)
		// 4. Inline refill (not while a charge is owed: only a background
		// refill carries it).
		if !inlined && e.low.Load() == 0 && !e.owes.Load() && e.refilling.CompareAndSwap(false, true) {
			err := l.refillInline(ctx, e, int64(n))
			if err != nil {
				return l.refillFailed(ctx, e, key, n, err)
			}
			src, inlined = ratelimit.SourceRedis, true
			continue
		}
		// 5. Shared refill.
		if timer == nil {
			timer = time.NewTimer(l.cfg.maxWait)
		}
		ch := l.group.DoChan(key, l.refillFunc(e, int64(n)))
		var err error
		select {
		case r := <-ch:
			err = r.Err
		case <-ctx.Done():
			return ratelimit.Decision{}, ctx.Err()
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
		if err == ErrRefillWait {
			if e.refilling.Load() {
				e.degraded.Store(true) // slow: the refill is still out
				return l.fail(e, key, n, err)
			}
			// The refill answered, but other callers spent its tokens
			// first: Redis is fine, this request is over the limit.
			e.denials.Add(1)
			l.stats.denied[ratelimit.SourceRedis].Add(1)
			return l.denied(e, l.lim.DurationFor(n), ratelimit.SourceRedis), nil
		}
		if err != nil {
			return l.refillFailed(ctx, e, key, n, err)
		}
		src = ratelimit.SourceRedis
	}
}

// takeDue releases e's tokens granted ahead that are due at now and takes
// n tokens if that leaves enough. When not, and the tokens still to come
// would make up n, it returns how long until they have (the caller denies
// for that long); 0 when they would not (the caller goes on to Redis). It
// starts a refill when what is left to come is at the low watermark.
func (l *Limiter) takeDue(e *entry, n int, now int64) (left int64, ok bool, wait time.Duration) {
	e.mu.Lock()
	next := e.release(now, l.interval)
	e.gather() // release may have spread the tokens over a hot key's stripes
	ahead := e.sched.Load()
	e.mu.Unlock()
	if left, ok := e.take(int64(n)); ok {
		l.lowAhead(e, ahead, now)
		return left, true, 0
	}
	l.lowAhead(e, ahead, now)
	short := int64(n) - e.held()
	if next == 0 || short > ahead {
		return 0, false, 0
	}
	due := next + int64(float64(short-1)*l.interval)
	e.deniedUntil.Store(next) // callers before then need not lock
	return 0, false, time.Duration(max(due-now, 1))
}

// lowAhead starts a background refill of e when the tokens it still has
// to come, ahead, are at or below its low watermark.
func (l *Limiter) lowAhead(e *entry, ahead, now int64) {
	if ahead+e.held() <= int64(e.low.Load()) &&
		now >= e.refillAfter.Load() && now >= e.deniedUntil.Load() &&
		e.refilling.CompareAndSwap(false, true) {
		l.startRefill(e)
	}
}

// probe starts a background refill of a degraded key, unless one is in
// flight or the last one failed less than fallbackHold ago: the way a key
// finds out that Redis answers again without making its callers wait.
func (l *Limiter) probe(e *entry, now int64) {
	if now < e.probeAt.Load() || !e.refilling.CompareAndSwap(false, true) {
		return
	}
	e.probeAt.Store(now + int64(fallbackHold))
	l.startRefill(e)
}

// refillInline refills e for n tokens on the caller's goroutine, bounded by
// ctx, the maximum wait and Close; the caller has set e.refilling.
func (l *Limiter) refillInline(ctx context.Context, e *entry, n int64) error {
	defer e.refilling.Store(false)
	cctx, cancel := l.callerContext(ctx)
	defer cancel()
	err := l.refill(cctx, e, n, l.cfg.maxWait, false, false)
	if errors.Is(err, context.DeadlineExceeded) && rcall.CallerDone(ctx) == nil {
		return ErrRefillWait // the maximum wait ended it, not the caller
	}
	return err
}

// callerContext returns ctx, also cancelled by Close, for a Redis call made
// on a caller's goroutine.
func (l *Limiter) callerContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(l.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// refillFailed decides a request whose refill did not succeed.
func (l *Limiter) refillFailed(ctx context.Context, e *entry, key string, n int, err error) (ratelimit.Decision, error) {
	cerr := rcall.CallerDone(ctx)
	switch {
	case cerr != nil:
		return ratelimit.Decision{}, cerr
	case l.closed.Load() || errors.Is(err, ratelimit.ErrClosed):
		return ratelimit.Decision{}, ratelimit.ErrClosed
	case !unavailable(err):
		// Redis answered, with an error (a key of the wrong type, a
		// malformed reply): a fault to report, not an outage to ride out.
		return ratelimit.Decision{Limit: l.lim, Source: ratelimit.SourceRedis},
			&ratelimit.StoreError{Op: "lease refill", Key: key, Err: err}
	}
	return l.fail(e, key, n, err)
}

// unavailable reports whether err, from a refill, says Redis could not
// answer (down, too slow, the breaker open) rather than that it answered
// with an error.
func unavailable(err error) bool {
	return errors.Is(err, ratelimit.ErrCircuitOpen) || breaker.IsFailure(err)
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
		l.giveBack(key, int64(g.Granted))
	}
	d.RetryAfter = max(g.RetryAfter, l.earn(int64(n-g.Remaining)))
	l.stats.denied[ratelimit.SourceRedis].Add(1)
	return d, nil
}

// startRefill starts a background refill of e; the caller has set
// e.refilling.
func (l *Limiter) startRefill(e *entry) {
	if l.closed.Load() || !l.enter() {
		e.refilling.Store(false)
		return
	}
	l.stats.prefetches.Add(1)
	ch := l.group.DoChan(e.key, l.refillFunc(e, 0))
	go func() {
		defer l.bg.Done()
		<-ch
		// The function that ran cleared refilling when it ended; but a
		// call that joined one whose function had already returned
		// (singleflight forgets a key only after that) ran none, and
		// would leave the key marked refilling for good.
		e.refilling.Store(false)
	}()
	// Let the refill goroutine send its request now rather than after this
	// goroutine's time slice: on a busy process that is what keeps the
	// refill ahead of the batch running out.
	runtime.Gosched()
}

// refillFunc returns the singleflight function that leases tokens for e,
// at least need of them when Redis has them, in the background under the
// refill timeout. It clears e.refilling when it ends, whoever started it.
func (l *Limiter) refillFunc(e *entry, need int64) func() (any, error) {
	return func() (any, error) {
		defer e.refilling.Store(false)
		if !l.enter() {
			return nil, ratelimit.ErrClosed
		}
		defer l.bg.Done()
		return nil, l.refill(l.ctx, e, need, l.cfg.refillTimeout, l.honorsDeadline, true)
	}
}

// refill leases tokens for e from Redis, at least need of them when Redis
// has them, bounded by ctx and timeout, and charges what e's fallback
// admitted meanwhile. On success Redis is no longer degraded for e; when
// Redis could not answer, e is degraded and tries again after
// fallbackHold.
//
// Only a background refill (settle set) carries the charge: an inline one
// may be abandoned at the maximum wait and still run in Redis later, and a
// charge applied that way would be charged again.
func (l *Limiter) refill(ctx context.Context, e *entry, need int64, timeout time.Duration, honorsDeadline, settle bool) error {
	start := l.now()
	if need == 0 && (start < e.deniedUntil.Load() || start < e.refillAfter.Load()) {
		return nil // a prefetch while Redis said there is nothing more yet
	}
	e.mu.Lock()
	demand := e.demand()
	e.rate = ewma(e.rate, demand-e.lastDemand, time.Duration(start-e.lastRefill))
	e.lastDemand, e.lastRefill = demand, start
	rate := e.rate
	var c algorithms.Charge
	if e.fb != nil && settle {
		c.Tokens, c.Over, c.Seen = e.fb.Owed(start)
	}
	e.mu.Unlock()

	rtt := time.Duration(l.rtt.Load())
	remote := e.remote.Load()
	n := l.sz.size(rate, rtt, remote, need)
	if remote == 0 && l.cfg.ahead {
		// The bucket was empty at the last grant: lease a share of its
		// refill rate ahead, unless this key's demand is too small.
		if c.Ahead = l.sz.ahead(rate, rtt); c.Ahead > 0 {
			n = max(l.sz.demand(rate, rtt), need)
			if e.sched.Load() >= n && need == 0 {
				return nil // enough is on its way already
			}
		}
	}

	g, err := call(l, ctx, timeout, honorsDeadline, func(ctx context.Context) (algorithms.Grant, error) {
		return l.bucket.TakeUpTo(ctx, l.rkey(e.key), l.lim, int(n), c)
	})
	end := l.now()
	if errors.Is(err, ratelimit.ErrCircuitOpen) {
		l.stats.refillErrors.Add(1) // refused without a call: no round trip to learn from
	} else {
		l.observeRTT(time.Duration(end - start))
		l.stats.refills.Add(1)
		if err != nil {
			l.stats.refillErrors.Add(1)
		}
	}
	if err != nil {
		if unavailable(err) && rcall.CallerDone(ctx) == nil {
			l.lastFailure.Store(&err)
			e.probeAt.Store(end + int64(fallbackHold))
			e.degraded.Store(true)
		}
		return err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	e.degraded.Store(false)
	if e.fb != nil {
		e.fb.Charged(c.Tokens)
		l.stats.charged.Add(c.Tokens)
		if owed, _, _ := e.fb.Owed(end); owed == 0 {
			e.fb = nil // Redis answers and nothing is owed: back to leasing
			e.owes.Store(false)
		} else {
			e.fb.Drain(end) // the rest is charged by the next refill
		}
	}
	e.remote.Store(int64(g.Remaining))
	if g.Granted == 0 {
		// Redis ran the script after the call began: counted from then,
		// the retry never ends after a token is due (a late reply on a
		// busy process would otherwise stretch the denial).
		wait := l.sz.denialWait(max(g.RetryAfter, time.Nanosecond), rate, rtt)
		e.deniedUntil.Store(start + int64(wait))
		e.low.Store(0)
		return nil
	}
	granted := int64(g.Granted)
	if e.tokens.Load() < 0 {
		l.giveBack(e.key, granted) // evicted meanwhile
		return nil
	}
	if g.RetryAfter > 0 {
		// Granted ahead: due one per interval from RetryAfter after the
		// reply arrived, which is never before Redis earned them.
		first := end + int64(g.RetryAfter)
		e.schedule(granted, first)
		if granted < n {
			// The window of future tokens is mostly taken: ask again once
			// these are nearly all due, not at once for a few more.
			last := first + int64(float64(granted-1)*l.interval)
			e.refillAfter.Store(last - 2*int64(rtt))
		}
	} else if !e.add(granted, end) {
		l.giveBack(e.key, granted) // evicted meanwhile
		return nil
	}
	e.learnShare(granted, end, l.lim.PerSecondRate())
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
// use. It never puts back more than this instance admitted for key and has
// not been refunded yet, the excess being ignored: tokens a fallback
// admitted are taken off what it owes Redis; tokens served from leases go
// back into this instance's lease up to the accuracy budget (the Redis
// bucket gets them back when the lease expires or is returned), and the
// rest back to Redis, capped at the burst there. A key this instance does
// not track gets them back in Redis at once.
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
	want := int64(n)
	if v, ok := l.entries.Load(key); ok {
		e := v.(*entry)
		e.mu.Lock()
		if e.fb != nil {
			want -= e.fb.Refund(want, float64(l.lim.Burst))
		}
		want = min(want, max(e.refundable(), 0))
		local := min(want, max(l.sz.maxLease-e.held(), 0))
		if remote := e.remote.Load(); 2*remote < int64(l.lim.Burst) && l.sz.quiet(e.rate, time.Duration(l.rtt.Load())) {
			local = 0 // see minBatch: Redis is short, the other instances need it
		}
		if local > 0 && e.add(local, l.now()) {
			e.refunds += local
			want -= local
			l.stats.refunded.Add(local)
		}
		if want > 0 {
			e.refunds += want // refunded to Redis below
		}
		e.mu.Unlock()
		if want == 0 {
			return nil
		}
		e.deniedUntil.Store(0) // Redis gets tokens back: a remembered denial is stale
	}
	cctx, cancel := l.callerContext(ctx)
	defer cancel()
	_, err := call(l, cctx, l.cfg.maxWait, false, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, l.bucket.Return(ctx, l.rkey(key), l.lim, int(want))
	})
	if err != nil {
		if cerr := rcall.CallerDone(ctx); cerr != nil {
			return cerr
		}
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
	_, err := call(l, ctx, 0, l.honorsDeadline, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, l.bucket.Return(ctx, l.rkey(key), l.lim, int(n))
	})
	if err != nil {
		l.stats.giveBackErrors.Add(1)
		l.cfg.logger.Warn("ratelimit: could not give back leased tokens", "tokens", n, "err", err)
		return
	}
	l.stats.returned.Add(n)
}
