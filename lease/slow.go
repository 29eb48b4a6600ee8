package lease

import (
	"context"
	"errors"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
	"github.com/distributedratelimiter/ratelimit/internal/rcall"
)

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
	answered := false            // a shared refill this call waited for answered
	for {
		if e == nil || e.tokens.Load() < 0 {
			e = l.entry(key)
			if e == nil {
				return l.uncached(ctx, key, n)
			}
		}
		// 1. Local take; a hot key's stripes spread again, or gathered.
		if left, ok := e.take(int64(n)); ok {
			l.stats.tookSlow(src, n)
			return l.allowed(e, left, src), nil
		}
		if st := e.striped.Load(); st != nil && e.held() >= int64(n) {
			// Under mu: a rebalance by the janitor or another caller
			// holds it while it moves the tokens, when they seem gone.
			// Not when the stripes hold too few in all: a key over its
			// limit would lock and sweep every stripe per request.
			e.mu.Lock()
			e.rebalance()
			e.mu.Unlock()
			if left, ok := st.take(int64(n)); ok {
				l.stats.tookSlow(src, n)
				return l.allowed(e, left*int64(len(st.cells)), src), nil
			}
			e.mu.Lock()
			e.gather() // for more than one stripe holds
			e.mu.Unlock()
			if left, ok := e.take(int64(n)); ok {
				l.stats.tookSlow(src, n)
				return l.allowed(e, left, src), nil
			}
		}
		now := l.now()
		if e.scheduled() > 0 {
			if due := e.dueAt(); n == 1 && now < due {
				// No token granted ahead falls due before then (takeDue
				// found it so; a new grant clears it): deny, as takeDue
				// would, without its lock.
				return l.denied(e, time.Duration(due-now), ratelimit.SourceLocal), nil
			}
			if left, ok, d := l.takeDue(e, n, now); ok {
				l.stats.tookSlow(ratelimit.SourceLocal, n)
				return l.allowed(e, left, ratelimit.SourceLocal), nil
			} else if d > 0 {
				return l.denied(e, d, ratelimit.SourceLocal), nil
			}
		}
		// 2. Remembered denial.
		if until := e.deniedUntil(); now < until {
			return l.denied(e, time.Duration(until-now), src), nil
		}
		// 3. Degraded.
		if e.degraded() {
			l.probe(e, now)
			return l.fail(e, key, n, l.recentFailure())
		}
		if err := rcall.CallerDone(ctx); err != nil {
			return ratelimit.Decision{}, err
		}
		l.stats.waits.Add(1)
		// 4. Inline refill (not while a charge is owed: only a background
		// refill carries it).
		if !inlined && e.low.Load() == 0 && !e.owes() && e.refilling.CompareAndSwap(false, true) {
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
			if !answered || e.refilling.Load() {
				// Slow: no refill this call waited for has answered, or
				// a background one is still out.
				e.more().degraded.Store(true)
				return l.fail(e, key, n, err)
			}
			// Refills answered, but other callers spent their tokens
			// first: Redis is fine, this request is over the limit.
			return l.denied(e, l.lim.DurationFor(n), ratelimit.SourceRedis), nil
		}
		if err != nil {
			return l.refillFailed(ctx, e, key, n, err)
		}
		src, answered = ratelimit.SourceRedis, true
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
	ahead := e.scheduled()
	e.x.Load().dueAt.Store(next) // scheduled made it
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
	e.more().deniedUntil.Store(next) // callers before then need not lock
	return 0, false, time.Duration(max(due-now, 1))
}

// lowAhead starts a background refill of e when the tokens it still has
// to come, ahead, are at or below its low watermark.
func (l *Limiter) lowAhead(e *entry, ahead, now int64) {
	if ahead+e.held() <= int64(e.low.Load()) &&
		now >= e.refillAfter() && now >= e.deniedUntil() &&
		e.refilling.CompareAndSwap(false, true) {
		l.startRefill(e)
	}
}

// probe starts a background refill of a degraded key, unless one is in
// flight or the last one failed less than fallbackHold ago: the way a key
// finds out that Redis answers again without making its callers wait.
func (l *Limiter) probe(e *entry, now int64) {
	x := e.more() // degraded made it
	if now < x.probeAt.Load() || !e.refilling.CompareAndSwap(false, true) {
		return
	}
	x.probeAt.Store(now + int64(fallbackHold))
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
