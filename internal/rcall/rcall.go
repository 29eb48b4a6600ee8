// Package rcall bounds calls to Redis by a deadline, whatever the client's
// options say.
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
	"time"

	"github.com/redis/go-redis/v9"
)

// HonorsContext reports whether rdb bounds its socket I/O by the context's
// deadline, so a call can run on the caller's goroutine.
func HonorsContext(rdb redis.Scripter) bool {
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
// ctx alone). When direct is true, fn runs on the calling goroutine and is
// trusted to return by the deadline. Otherwise fn runs on its own goroutine
// and Do returns the context's error at the deadline even if fn is still
// blocked; fn's late result is dropped.
func Do[T any](ctx context.Context, timeout time.Duration, direct bool, fn func(context.Context) (T, error)) (T, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	if direct {
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
