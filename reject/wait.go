package reject

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// minRetry is the shortest pause between two checks of a waiting request,
// so that a limiter reporting no RetryAfter is not polled in a busy loop.
const minRetry = 5 * time.Millisecond

// giveBackTimeout bounds the refund of tokens taken for a caller that has
// gone.
const giveBackTimeout = time.Second

// Wait returns the Strategy that blocks until the limiter admits the
// request, checking again after each denial's RetryAfter (at least 5 ms
// apart, so that a limiter that reports no RetryAfter is not polled in a
// busy loop). It is the module's one waiting loop: [Enforce] with Wait
// checks and waits in one call, and [Queue] waits through it. It refuses
// with an [*ratelimit.ExceededError], without sleeping in vain, as soon as
// the next retry would come after [WithMaxWait] (default 5 s) from the
// start or after ctx's deadline; it returns ctx's error if ctx ends while it
// sleeps. If ctx ends while the limiter is admitting the request, the
// tokens are given back (when the limiter is a [ratelimit.Refunder]).
//
// Waiting requests are not ordered: each retries on its own. Use [Queue]
// for arrival order.
func Wait(opts ...Option) Strategy {
	return waitStrategy{maxWait: newConfig(opts, Option.applyWait).maxWait}
}

type waitStrategy struct {
	maxWait time.Duration
}

func (s waitStrategy) Handle(ctx context.Context, r Request) (ratelimit.Decision, error) {
	var deadline time.Time
	if s.maxWait > 0 {
		deadline = time.Now().Add(s.maxWait)
	}
	return retry(ctx, r, deadline, nil, false)
}

// errStopped is returned by retry when stop is closed.
var errStopped = errors.New("reject: stopped")

// retry checks r again until its limiter admits it, sleeping for each
// denial's RetryAfter in between, starting with r.Decision's unless now is
// set. It gives up when the next retry would come after deadline (zero:
// none) or ctx's deadline, or when ctx ends or stop is closed.
func retry(ctx context.Context, r Request, deadline time.Time, stop <-chan struct{}, now bool) (ratelimit.Decision, error) {
	d := r.Decision
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for i := 0; ; i++ {
		if i > 0 || !now {
			wait := max(d.RetryAfter, minRetry)
			at := time.Now().Add(wait)
			if !deadline.IsZero() && at.After(deadline) {
				return d, exceeded(r.Key, d)
			}
			if dl, ok := ctx.Deadline(); ok && at.After(dl) {
				return d, exceeded(r.Key, d)
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-ctx.Done():
				return d, ctx.Err()
			case <-stop:
				return d, errStopped
			case <-timer.C:
			}
		}
		nd, err := r.Limiter.AllowN(ctx, r.Key, r.N)
		if err != nil {
			return d, err
		}
		d = nd
		if !d.Allowed {
			continue
		}
		if err := ctx.Err(); err != nil {
			// Admitted for a caller that has gone: give the tokens back.
			d.Allowed = false
			return d, errors.Join(err, giveBack(ctx, r))
		}
		return d, nil
	}
}

// giveBack refunds r's tokens, if its limiter can, even though ctx is done.
func giveBack(ctx context.Context, r Request) error {
	rf, ok := r.Limiter.(ratelimit.Refunder)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveBackTimeout)
	defer cancel()
	if err := rf.RefundN(ctx, r.Key, r.N); err != nil {
		return fmt.Errorf("reject: give back %d tokens: %w", r.N, err)
	}
	return nil
}
