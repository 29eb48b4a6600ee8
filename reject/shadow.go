package reject

import (
	"context"
	"sync/atomic"

	"github.com/distributedratelimiter/ratelimit"
)

// Shadow is the Strategy that admits every request over its limit but
// records that it would have been limited: it counts it, and calls the
// function given to [NewShadow] if any. Use it to try a limit out on real
// traffic before enforcing it. A request it admits has spent no tokens.
//
// A Shadow is safe for concurrent use. The zero value counts and calls
// nothing back.
type Shadow struct {
	onLimit func(context.Context, Request)
	count   atomic.Int64
}

// NewShadow returns a Shadow that calls onLimit, on the request's
// goroutine, for every request it admits over the limit. A nil onLimit
// calls nothing.
func NewShadow(onLimit func(ctx context.Context, r Request)) *Shadow {
	return &Shadow{onLimit: onLimit}
}

// Handle counts r, calls the onLimit function, and admits r: it
// returns r.Decision (a denial) with a nil error.
func (s *Shadow) Handle(ctx context.Context, r Request) (ratelimit.Decision, error) {
	s.count.Add(1)
	if s.onLimit != nil {
		s.onLimit(ctx, r)
	}
	return r.Decision, nil
}

// Count returns how many requests s has admitted over their limit.
func (s *Shadow) Count() int64 { return s.count.Load() }
