package algorithms

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// An Inspector is an [Algorithm] that can tell what a key has left without
// spending it, and give a key its full limit again. Every Algorithm of
// this package is an Inspector; [Limiter.Peek] and [Limiter.Reset] call
// it.
type Inspector interface {
	// Peek returns what the key rkey has left under lim now, by the Redis
	// server's clock, and writes nothing. The Decision is that of a
	// request for one token that spends nothing: Allowed reports whether
	// one token is available; Remaining is the whole tokens left (0 in
	// debt); RetryAfter the time until one token is available, zero if
	// Allowed; ResetAfter the time until the key has its whole burst
	// again (zero if it has it). lim must already be valid. Errors are
	// Redis failures or replies of the wrong shape
	// ([ratelimit.ErrBadReply]).
	Peek(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit) (ratelimit.Decision, error)

	// Reset gives the key rkey its whole burst again, by deleting its
	// state (a missing key is full). Errors are Redis failures.
	Reset(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit) error
}

var (
	_ Inspector = scripted{}
	_ Inspector = CalendarWindow{}

	_ ratelimit.Inspector = (*Limiter)(nil)
)

// runPeek runs a peek script and returns its decision.
func runPeek(ctx context.Context, s *redis.Script, rdb redis.Scripter, rkey string, lim ratelimit.Limit) (ratelimit.Decision, error) {
	return runCheck(ctx, s, rdb, rkey, lim, 1)
}

// resetKey runs reset.lua on rkey.
func resetKey(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit) error {
	_, err := run(ctx, resetScript, rdb, rkey, lim, 1)
	return err
}

// Peek needs no window bounds: a key that holds no window of now has
// spent nothing in the current one.
func (CalendarWindow) Peek(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit) (ratelimit.Decision, error) {
	return runPeek(ctx, calendarWindowPeekScript, rdb, rkey, lim)
}

func (CalendarWindow) Reset(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit) error {
	return resetKey(ctx, rdb, rkey, lim)
}

// Peek reports what key has left now, spending nothing: the Decision of
// a request for one token that is not made (see [Inspector] for each
// field). It implements [ratelimit.Inspector]. The answer comes from
// Redis alone, in one script, and is exact at the instant the script
// runs; other instances may spend from the key the moment after.
//
// It fails with [ratelimit.ErrInvalidKey] for a key that AllowN refuses,
// a [*ratelimit.StoreError] (matching [ratelimit.ErrStore]) when Redis
// fails or its circuit breaker is open, ctx's error when ctx is done, and
// [errors.ErrUnsupported] when the Algorithm is not an [Inspector]. The
// failure policy does not apply: a peek has nothing to fall back to.
func (l *Limiter) Peek(ctx context.Context, key string) (ratelimit.Decision, error) {
	in, rkey, err := l.inspector(key)
	if err != nil {
		return ratelimit.Decision{}, err
	}
	return call(l, ctx, "peek", key, func(ctx context.Context) (ratelimit.Decision, error) {
		return in.Peek(ctx, l.rdb, rkey, l.lim)
	})
}

// Reset gives key its whole limit again: a full bucket, an empty window.
// It implements [ratelimit.Inspector]. Requests that other instances
// admitted before it stay admitted; every check after it finds the key
// full. It fails as Peek does.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	in, rkey, err := l.inspector(key)
	if err != nil {
		return err
	}
	_, err = call(l, ctx, "reset", key, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, in.Reset(ctx, l.rdb, rkey, l.lim)
	})
	return err
}

// inspector returns the Limiter's Algorithm as an Inspector and key's
// Redis key.
func (l *Limiter) inspector(key string) (Inspector, string, error) {
	in, ok := l.alg.(Inspector)
	if !ok {
		return nil, "", fmt.Errorf("%w: algorithm %q cannot peek or reset", errors.ErrUnsupported, l.alg.Name())
	}
	rkey, err := l.ks.ClientKey(key, l.alg.Name())
	return in, rkey, err
}
