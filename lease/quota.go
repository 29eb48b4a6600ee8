package lease

import (
	"context"
	"math"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/rcall"
)

// Peek reports what key has left now, spending nothing: the Decision of a
// request for one token that is not made. It implements
// [ratelimit.Inspector].
//
// Remaining is what the Redis bucket holds, read in one script, plus the
// leased tokens this instance holds for key, at most the burst. Tokens
// that other instances hold in leases count as spent: the answer is low by
// at most what they hold (each instance at most its lease of the key, see
// [WithAccuracyBudget]), and exact once they are spent or returned, within
// the lease TTL. RetryAfter is zero when a token is left, else Redis's
// time until one is; ResetAfter is the time until the key is full.
//
// It fails with [ratelimit.ErrInvalidKey] for a key AllowN refuses,
// [ratelimit.ErrClosed] after Close, a [*ratelimit.StoreError] when Redis
// fails or the circuit breaker is open, and ctx's error when ctx is done.
// The failure policy does not apply: a peek has nothing to fall back to.
func (l *Limiter) Peek(ctx context.Context, key string) (ratelimit.Decision, error) {
	if err := l.usable(key); err != nil {
		return ratelimit.Decision{}, err
	}
	// Tokens move between Redis and this instance while the peek runs: a
	// refill takes them from Redis into the lease, a return puts them
	// back. Counting the lease before and after the call and keeping the
	// smaller count never counts a moving token twice.
	held := l.heldFor(key)
	cctx, cancel := l.callerContext(ctx)
	defer cancel()
	d, err := call(l, cctx, l.cfg.maxWait, false, func(ctx context.Context) (ratelimit.Decision, error) {
		return l.bucket.Peek(ctx, l.rkey(key), l.lim)
	})
	if err != nil {
		return ratelimit.Decision{}, l.callError(ctx, "lease peek", key, err)
	}
	held = min(held, l.heldFor(key))
	rem := min(int64(max(d.Remaining, 0))+held, int64(l.lim.Burst))
	out := ratelimit.Decision{
		Allowed:    rem >= 1,
		Limit:      l.lim,
		Remaining:  int(rem),
		ResetAfter: l.earn(int64(l.lim.Burst) - rem),
		Source:     ratelimit.SourceRedis,
	}
	if !out.Allowed {
		out.RetryAfter = d.RetryAfter
	}
	return out, nil
}

// Reset gives key its whole burst again. It implements
// [ratelimit.Inspector]. It deletes the key's Redis bucket (a missing
// bucket is full), and this instance drops what it held for key: its
// leased tokens (not returned: they belong to the old bucket), a
// remembered denial, and what its fallback still owed Redis.
//
// Other instances are not told. Each serves at most the tokens it held for
// key when Reset ran, and none of them later than the lease TTL after they
// were granted: by then the janitor has returned them to Redis, where a
// return never raises a bucket above its burst. So after a Reset the key
// admits at most Burst plus what the other instances held then (each at
// most its lease of the key: at most half of what the bucket held, less
// the emptier it was, see docs/accuracy.md), and from the lease TTL on
// exactly what a fresh bucket admits. A remembered denial at another
// instance lasts at most until it ends on its own (until the next token
// was due, for a quiet key).
//
// It fails as Peek does.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if err := l.usable(key); err != nil {
		return err
	}
	cctx, cancel := l.callerContext(ctx)
	defer cancel()
	_, err := call(l, cctx, l.cfg.maxWait, false, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, l.bucket.Reset(ctx, l.rkey(key), l.lim)
	})
	if err != nil {
		// Nothing changed in Redis: what this instance holds and what its
		// fallback owes stay as they were.
		return l.callError(ctx, "lease reset", key, err)
	}
	if e := l.entries.Load(key); e != nil {
		x := e.more()
		e.mu.Lock()
		x.resets++ // a refill in flight took from the old bucket: refill drops its grant
		dropped := e.expire(math.MaxInt64) + x.sched.Swap(0)
		l.stats.removed.Add(dropped) // out of the lease, not served
		x.ahead = nil
		x.refillAfter.Store(0)
		if x.fb != nil {
			x.fb = nil
			x.owes.Store(false)
		}
		e.remote.Store(-1)
		e.mu.Unlock()
		x.deniedUntil.Store(0)
	}
	return nil
}

// SettleN settles the cost of a request that AllowN(ctx, key, reserved)
// admitted, once its actual cost is known. It implements
// [ratelimit.Settler]:
//   - actual < reserved: RefundN(ctx, key, reserved-actual);
//   - actual > reserved: the extra comes out of this instance's leased
//     tokens for key when it holds enough, else it is charged to the
//     Redis bucket at once, into debt down to -Burst that later requests
//     of every instance pay off (their refills find the bucket short).
//
// Debt, and so what under-estimates let through, is bounded as for the
// per-request token bucket (docs/quotas.md): over any span T, what
// requests really cost is at most 2 × Burst + Rate × T / Period, plus the
// extra of settles still to come. A charge that Redis does not take (down,
// slow, the breaker open) is returned as a [*ratelimit.StoreError] and not
// retried: the caller may retry it.
//
// reserved must be between 0 and the burst and actual between 0 and
// [ratelimit.MaxRate], else it fails with [ratelimit.ErrInvalidN]; other
// errors are Peek's.
func (l *Limiter) SettleN(ctx context.Context, key string, reserved, actual int) error {
	if err := l.lim.ValidateSettle(reserved, actual); err != nil {
		return err
	}
	if actual < reserved {
		return l.RefundN(ctx, key, reserved-actual)
	}
	if err := l.usable(key); err != nil || actual == reserved {
		return err
	}
	extra := int64(min(actual-reserved, 2*l.lim.Burst))
	if e := l.entries.Load(key); e != nil {
		e.mu.Lock()
		e.gather()
		_, ok := e.take(extra)
		e.mu.Unlock()
		if ok {
			l.stats.slowTaken.Add(extra) // not an admission: see counters
			return nil
		}
	}
	cctx, cancel := l.callerContext(ctx)
	defer cancel()
	_, err := call(l, cctx, l.cfg.maxWait, false, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, l.bucket.Charge(ctx, l.rkey(key), l.lim, int(extra))
	})
	if err != nil {
		return l.callError(ctx, "lease charge", key, err)
	}
	return nil
}

// heldFor returns the leased tokens this instance holds for key.
func (l *Limiter) heldFor(key string) int64 {
	e := l.entries.Load(key)
	if e == nil {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return max(e.held(), 0)
}

// usable returns the error of a call for key on l: an invalid key, or l
// closed.
func (l *Limiter) usable(key string) error {
	if err := ratelimit.ValidateKey(key); err != nil {
		return err
	}
	if l.closed.Load() {
		return ratelimit.ErrClosed
	}
	return nil
}

// callError is the error of a Redis call for key made on the caller's
// goroutine (op names it) that failed with err: ctx's own when the caller
// ended it, ErrClosed when Close did, else a StoreError.
func (l *Limiter) callError(ctx context.Context, op, key string, err error) error {
	if cerr := rcall.CallerDone(ctx); cerr != nil {
		return cerr
	}
	if l.closed.Load() {
		return ratelimit.ErrClosed
	}
	return &ratelimit.StoreError{Op: op, Key: key, Err: err}
}

// RefundN returns n tokens that an admitted AllowN of key spent but did not
// use. It never puts back more than this instance admitted for key and has
// not been refunded yet, the excess being ignored: tokens a fallback
// admitted are taken off what it owes Redis; tokens served from leases go
// back into this instance's lease up to the accuracy budget (the Redis
// bucket gets them back when the lease expires or is returned), and the
// rest back to Redis, capped at the burst there; a quiet key whose Redis
// bucket is under half full gets them all back in Redis, where the other
// instances find them (see docs/accuracy.md). A key this instance does
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
	if e := l.entries.Load(key); e != nil {
		e.mu.Lock()
		if fb := e.fallbackBucket(); fb != nil {
			want -= fb.Refund(want, float64(l.lim.Burst))
		}
		want = min(want, max(e.refundable(), 0))
		local := min(want, max(l.sz.maxLease-e.held(), 0))
		if remote := e.remote.Load(); 2*remote < int64(l.lim.Burst) && l.sz.quiet(e.rate, time.Duration(l.rtt.Load())) {
			local = 0 // see minBatch: Redis is short, the other instances need it
		}
		if local > 0 && e.add(local, l.now()) {
			e.more().refunds += local
			want -= local
			l.stats.refunded.Add(local)
		}
		if want > 0 {
			e.more().refunds += want // refunded to Redis below
		}
		e.mu.Unlock()
		if want == 0 {
			return nil
		}
		e.forgetDenial() // Redis gets tokens back: a remembered denial is stale
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
