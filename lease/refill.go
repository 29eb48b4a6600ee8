package lease

import (
	"context"
	"errors"
	"math"
	"runtime"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/rcall"
)

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
	if need == 0 && (start < e.deniedUntil() || start < e.refillAfter()) {
		return nil // a prefetch while Redis said there is nothing more yet
	}
	rtt := time.Duration(l.rtt.Load())
	e.mu.Lock()
	resets := e.resets()
	demand := e.demand()
	gap := time.Duration(start - e.lastRefill)
	e.rate = ewma(e.rate, demand-e.lastDemand, gap)
	// The demand this refill sizes its lease for, and decides quiet or
	// busy by: the larger of the estimate and
	//   - the estimate without its bias towards the zero it starts from
	//     (see unbiased), once the key has seen minBatch requests (fewer
	//     say too little: two requests a millisecond apart are not a rate);
	//   - the rate since the last refill, if that was at least a span ago.
	// The estimate alone takes about a second to rise to a new demand: a
	// new hot key would be sized, and decided quiet, by a fraction of its
	// demand, at the cost of a round trip per request or per handful.
	rate := e.rate
	if demand >= minBatch {
		rate = max(rate, unbiased(e.rate, time.Duration(start-e.born)))
	}
	if gap >= l.sz.span(rtt) {
		rate = max(rate, float64(demand-e.lastDemand)/gap.Seconds())
	}
	e.lastDemand, e.lastRefill = demand, start
	var c algorithms.Charge
	if fb := e.fallbackBucket(); fb != nil && settle {
		c.Tokens, c.Over, c.Seen = fb.Owed(start)
	}
	e.mu.Unlock()

	remote := e.remote.Load()
	if need == 0 && remote >= 0 && 2*remote < l.sz.burst && l.sz.quiet(rate, rtt) &&
		!e.degraded() && !e.owes() {
		// A quiet key whose bucket is under half full leases one token
		// when a caller needs it, never ahead (see minBatch): a prefetch
		// would lease that token only to wait here. But a degraded key's
		// probe, or a refill that carries what the fallback owes, must
		// reach Redis: it is how the key learns that Redis answers again.
		e.low.Store(0)
		return nil
	}
	n, short := l.sz.size(rate, rtt, remote, need)
	c.Short = short
	if remote == 0 && l.cfg.ahead && !l.sz.quiet(rate, rtt) {
		// The bucket was empty at the last grant: lease a share of its
		// refill rate ahead, unless this key is quiet (see minBatch).
		if c.Ahead = l.sz.ahead(rate, rtt); c.Ahead > 0 {
			n, c.Short = max(l.sz.demand(rate, rtt), need), 0
			if e.scheduled() >= n && need == 0 {
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
			x := e.more()
			x.probeAt.Store(end + int64(fallbackHold))
			x.degraded.Store(true)
		}
		return err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.x.Load(); x != nil {
		x.degraded.Store(false)
		if x.fb != nil {
			x.fb.Charged(c.Tokens)
			l.stats.charged.Add(c.Tokens)
			if owed, _, _ := x.fb.Owed(end); owed == 0 {
				x.fb = nil // Redis answers and nothing is owed: back to leasing
				x.owes.Store(false)
			} else {
				x.fb.Drain(end) // the rest is charged by the next refill
			}
		}
	}
	if e.resets() != resets {
		return nil // the key was reset meanwhile: the reply is of the old bucket
	}
	e.remote.Store(int64(g.Remaining))
	if g.Granted == 0 {
		// Redis ran the script after the call began: counted from then,
		// the retry never ends after a token is due (a late reply on a
		// busy process would otherwise stretch the denial).
		wait := l.sz.denialWait(max(g.RetryAfter, time.Nanosecond), rate, rtt)
		e.more().deniedUntil.Store(start + int64(wait))
		e.low.Store(0)
		return nil
	}
	granted := int64(g.Granted)
	if e.tokens.Load() < 0 {
		l.returnTokens(e.key, granted) // evicted meanwhile
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
			e.more().refillAfter.Store(last - 2*int64(rtt)) // schedule made it
		}
	} else if !e.add(granted, end) {
		l.returnTokens(e.key, granted) // evicted meanwhile
		return nil
	} else {
		l.cacheHot(e)
	}
	e.learnShare(granted, end, l.lim.PerSecondRate())
	l.stats.leased.Add(granted)
	e.forgetDenial()
	e.low.Store(int32(min(l.sz.lowWatermark(granted, rate, rtt), math.MaxInt32)))
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

// returnTokens returns n tokens to the Redis bucket of key, bounded by the
// refill timeout; a failure is logged and counted, since the tokens then
// come back by the bucket's own refill.
func (l *Limiter) returnTokens(key string, n int64) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.refillTimeout)
	defer cancel()
	_, err := call(l, ctx, 0, l.honorsDeadline, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, l.bucket.Return(ctx, l.rkey(key), l.lim, int(n))
	})
	if err != nil {
		l.stats.returnErrors.Add(1)
		l.cfg.logger.Warn("lease: could not return leased tokens", "tokens", n, "err", err)
		return
	}
	l.stats.returned.Add(n)
}
