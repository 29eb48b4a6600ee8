package algorithms

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// A Charge is a count of tokens spent without asking Redis: a fallback
// admitted them over the last Over while Redis could not answer. Charging
// them to the bucket when Redis answers again shifts those admissions in
// time instead of adding to them.
//
// The zero Charge charges nothing. A Charge is a plain value.
type Charge struct {
	// Tokens is how many tokens were spent. Zero or negative charges
	// nothing.
	Tokens int64
	// Over is the span in which they were spent, ending now. The bucket's
	// earnings over that span are not capped at the burst before the
	// charge is paid, since the fallback spent them as they came.
	Over time.Duration
}

// chargeArgs returns the charge and window ARGV of token_bucket_take_up_to.lua
// for c: the tokens, at most ratelimit.MaxRate, and the window in µs, cut to
// the span that earns tokens + burst (a longer window changes nothing, since
// the script caps the result at the burst) and to ratelimit.MaxPeriod.
func (c Charge) args(lim ratelimit.Limit) (tokens, windowUS int64) {
	if c.Tokens <= 0 {
		return 0, 0
	}
	tokens = min(c.Tokens, ratelimit.MaxRate)
	rate, period, burst := limitArgs(lim)
	useful := math.Ceil((float64(tokens) + burst) * period / rate)
	windowUS = min(c.Over.Microseconds(), int64(min(useful, float64(ratelimit.MaxPeriod.Microseconds()))))
	return tokens, max(windowUS, 0)
}

// ChargeTakeUpTo charges c to the token bucket at rkey, then takes as many
// tokens as it holds, up to n, in one atomic script. The charge may leave
// the bucket in debt (at most one burst), which later requests pay off; it
// is applied even when nothing is granted. A zero c makes it [TakeUpTo].
// rkey must be a [TokenBucket] key; n must be positive.
func ChargeTakeUpTo(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int, c Charge) (Grant, error) {
	if n <= 0 {
		return Grant{}, fmt.Errorf("%w: n %d must be positive", ratelimit.ErrInvalidN, n)
	}
	tokens, window := c.args(lim)
	argv := args(lim, n)
	if tokens > 0 {
		argv = append(argv, tokens, window)
	}
	r, err := parseReply(tokenBucketTakeUpToScript.Run(ctx, rdb, []string{rkey}, argv...))
	if err != nil {
		return Grant{}, err
	}
	if r[0] > int64(n) {
		return Grant{}, fmt.Errorf("%w: granted %d of %d", ratelimit.ErrBadReply, r[0], n)
	}
	return r.grant(), nil
}

// ChargeTakeUpTo charges c to the bucket s at nowUS, then takes as many
// whole tokens as it holds, up to n, as [ChargeTakeUpTo] does, and returns
// the new state and the grant. n must be positive.
func (m TokenBucketModel) ChargeTakeUpTo(s TokenBucketState, nowUS int64, n int, c Charge) (TokenBucketState, Grant) {
	s, r := m.chargeTakeUpTo(s, nowUS, n, c)
	return s, r.grant()
}

func (m TokenBucketModel) chargeTakeUpTo(s TokenBucketState, nowUS int64, n int, c Charge) (TokenBucketState, reply) {
	rate, period, burst := limitArgs(m.Limit)
	charge, window := c.args(m.Limit)
	fcharge := float64(charge)
	var tokens float64
	switch {
	case s.TS == 0 && charge > 0:
		tokens = float64(float64(window) * rate / period) // empty at the window's start
	case s.TS == 0:
		tokens = burst
	case charge > 0:
		tokens = s.Tokens
		t0 := max(s.TS, nowUS-window)
		if t0 > s.TS {
			tokens = math.Min(tokens+float64(float64(t0-s.TS)*rate/period), burst)
		}
		if nowUS > t0 {
			tokens = tokens + float64(float64(nowUS-t0)*rate/period)
		}
	default:
		tokens = m.tokens(s, nowUS)
	}
	if charge > 0 {
		tokens = math.Max(tokens-fcharge, -burst)
	}
	if tokens > burst {
		tokens = burst
	}
	granted := max(math.Min(float64(n), math.Floor(tokens)), 0)
	tokens = tokens - granted
	next, reset := m.store(tokens, nowUS)
	if granted == 0 && charge == 0 {
		next = s // nothing to write
	}
	var retry int64
	if granted == 0 {
		retry = ceilInt((1 - tokens) * period / rate)
	}
	return next, reply{int64(granted), max(floorInt(tokens), 0), retry, reset}
}
