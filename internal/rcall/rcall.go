// Package rcall is the one guarded Redis call of the limiters: a deadline
// whatever the client's options say, the circuit breaker, and the line
// between a caller that gave up and a Redis that failed.
//
// go-redis honours a context's deadline on socket reads only when the
// client was built with ContextTimeoutEnabled; otherwise a call blocks
// until the client's ReadTimeout (3 s by default). Limiters promise never
// to hold a caller past its context or their own timeout, so for such
// clients the call runs in its own goroutine and the caller stops waiting
// at the deadline.
package rcall

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
)

// Call runs fn once through b, bounded by ctx and timeout (see Do), and
// returns:
//   - the caller's own context error (see CallerDone) when the caller's
//     deadline passed or it was cancelled, whatever fn returned: that says
//     nothing about Redis, so b does not count it, and the caller must not
//     take it for a store failure;
//   - ratelimit.ErrCircuitOpen, without running fn, when b refuses;
//   - otherwise fn's result, its error counted by b as breaker.IsFailure
//     says (the call's own timeout expiring is a failure: Redis was too
//     slow).
//
// A nil b always runs fn.
func Call[T any](ctx context.Context, b *breaker.Breaker, timeout time.Duration, honorsDeadline bool, fn func(context.Context) (T, error)) (T, error) {
	tk, ok := b.Allow()
	if !ok {
		var zero T
		return zero, ratelimit.ErrCircuitOpen
	}
	v, err := Do(ctx, timeout, honorsDeadline, fn)
	if err != nil {
		if cerr := CallerDone(ctx); cerr != nil {
			b.Cancel(tk)
			return v, cerr
		}
		if errors.Is(err, context.Canceled) {
			b.Cancel(tk) // a limiter's own cancellation (Close)
			return v, err
		}
	}
	b.Done(tk, !breaker.IsFailure(err))
	return v, err
}

// CallerDone returns ctx's error, or context.DeadlineExceeded once ctx's
// deadline has passed although ctx has not noticed yet (a socket deadline
// set from it can fire a moment earlier); nil while the caller still waits.
func CallerDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// HonorsDeadline reports whether rdb bounds its socket I/O by the context's
// deadline, so a call can run on the caller's goroutine.
func HonorsDeadline(rdb redis.Scripter) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// Do runs fn with a context bounded by ctx and timeout (timeout <= 0 means
// ctx alone). When honorsDeadline is true (the client bounds its I/O by
// the context's deadline: see HonorsDeadline), fn runs on the calling
// goroutine and is trusted to return by the deadline. Otherwise fn runs on
// its own goroutine and Do returns the context's error at the deadline
// even if fn is still blocked; fn's late result is dropped.
func Do[T any](ctx context.Context, timeout time.Duration, honorsDeadline bool, fn func(context.Context) (T, error)) (T, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	if honorsDeadline {
		v, err := fn(ctx)
		if err != nil {
			// Report the deadline rather than the socket error it caused;
			// the socket's deadline can fire a moment before ctx's.
			if cerr := ctx.Err(); cerr != nil {
				return v, cerr
			}
			if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
				return v, context.DeadlineExceeded
			}
		}
		return v, err
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1) // buffered: a late fn never blocks
	go func() {
		v, err := fn(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
