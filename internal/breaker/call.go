package breaker

import (
	"context"
	"errors"

	"github.com/distributedratelimiter/ratelimit"
)

// Call runs fn if b lets a call through, and hands the ticket back with
// fn's outcome as the package documentation describes: a cancelled
// context is not counted, other errors count as IsFailure says. When b
// refuses, Call returns ratelimit.ErrCircuitOpen without running fn. A nil
// b always runs fn.
func Call[T any](b *Breaker, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	tk, ok := b.Allow()
	if !ok {
		var zero T
		return zero, ratelimit.ErrCircuitOpen
	}
	v, err := fn(ctx)
	if errors.Is(err, context.Canceled) {
		b.Cancel(tk)
	} else {
		b.Done(tk, !IsFailure(err))
	}
	return v, err
}
