package algorithms

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// A Charge is what a refill settles besides taking tokens: tokens spent
// without asking Redis (a fallback admitted them while Redis could not
// answer), and how far ahead of what the bucket holds it may grant.
// Charging the spent tokens when Redis answers again shifts those
// admissions in time instead of adding to them.
//
// The zero Charge charges nothing and grants nothing ahead. A Charge is a
// plain value.
type Charge struct {
	// Tokens is how many tokens were spent without Redis. They are taken
	// from the bucket, which may go into debt, down to minus one burst.
	// Zero or negative charges nothing.
	Tokens int64
	// Over is the span the tokens were spent in, ending now: what the
	// bucket earned over it is not capped at the burst before the charge
	// is paid, since the fallback spent it as it came. Seen is what the
	// caller last saw the bucket hold before that span began (a Grant's
	// Remaining; negative for nothing seen): when the key is missing
	// (Redis lost its state, or the key expired), the bucket is rebuilt as
	// holding Seen + what it earned over Over; with nothing seen it is full
	// and nothing is charged.
	Over time.Duration
	Seen int64
	// Ahead allows a grant ahead: when the bucket holds less than one
	// whole token, up to Ahead tokens not yet earned may be granted, in
	// debt. The Grant's RetryAfter then says when the first of them is
	// earned; one more is earned every limit interval after that, and none
	// may be served earlier. Zero grants only tokens available now.
	Ahead int64
	// Short, when positive, makes the take a long lease: n is what the
	// caller would like and Short what it needs. Up to Short tokens are
	// granted as for any take; more, up to n, only from a bucket at least
	// a quarter full, and at most half of what it holds. The script
	// decides from the level it finds, not from one the caller saw
	// earlier. Zero (or Short ≥ n) grants up to n whatever the level.
	Short int64
}

// tokens returns the charge ARGV for c: at most ratelimit.MaxRate.
func (c Charge) tokens() int64 { return min(max(c.Tokens, 0), ratelimit.MaxRate) }

// rebuild returns the since_us and hint ARGV for c: Over in µs, cut to the
// span that earns the charge plus two bursts (a longer one changes
// nothing, the result being capped at the burst) and to MaxPeriod, and
// Seen, at most the burst, or -1 for none.
func (c Charge) rebuild(lim ratelimit.Limit) (sinceUS, seen int64) {
	useful := lim.DurationFor(int(min(c.tokens()+2*int64(lim.Burst), ratelimit.MaxRate))).Microseconds() + 1
	sinceUS = min(max(c.Over.Microseconds(), 0), useful, ratelimit.MaxPeriod.Microseconds())
	if c.Seen < 0 {
		return sinceUS, -1
	}
	return sinceUS, min(c.Seen, int64(lim.Burst))
}

// ahead returns the ahead ARGV for c: at most one burst.
func (c Charge) ahead(lim ratelimit.Limit) int64 { return min(max(c.Ahead, 0), int64(lim.Burst)) }

// short returns the short ARGV for c and a take of n: 0 (no long lease)
// unless it is between 1 and n-1.
func (c Charge) short(n int) int64 {
	if c.Short <= 0 || c.Short >= int64(n) {
		return 0
	}
	return c.Short
}

// ChargeTakeUpTo charges c to the token bucket at rkey, then takes as many
// tokens as it holds, up to n (or, with c.Ahead, tokens not yet earned;
// see Charge), in one atomic script. The charge may leave
// the bucket in debt (at most one burst), which later requests pay off; it
// is applied even when nothing is granted. A missing key is not charged:
// it lost its state (a restart, a flush) or expired full, and is a full
// bucket, as for any take. A zero c makes it [TakeUpTo].
// rkey must be a [TokenBucket] key; n must be positive.
func ChargeTakeUpTo(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int, c Charge) (Grant, error) {
	if n <= 0 {
		return Grant{}, fmt.Errorf("%w: n %d must be positive", ratelimit.ErrInvalidN, n)
	}
	argv := args(lim, n)
	if tokens, ahead, short := c.tokens(), c.ahead(lim), c.short(n); tokens > 0 || ahead > 0 || short > 0 {
		since, seen := c.rebuild(lim)
		argv = append(argv, tokens, ahead, since, seen, short)
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
	charge := c.tokens()
	since, seen := c.rebuild(m.Limit)
	var tokens float64
	switch {
	case s.TS != 0 && charge > 0:
		tokens = s.Tokens
		t0 := max(s.TS, nowUS-since)
		if t0 > s.TS {
			tokens = math.Min(tokens+float64(float64(t0-s.TS)*rate/period), burst)
		}
		if nowUS > t0 {
			tokens = tokens + float64(float64(nowUS-t0)*rate/period)
		}
	case s.TS != 0:
		tokens = m.current(s, nowUS)
	case charge > 0 && seen >= 0:
		tokens = float64(seen) + float64(float64(since)*rate/period)
	default:
		tokens, charge = burst, 0 // lost or expired, nothing to rebuild from
	}
	if charge > 0 {
		tokens = math.Max(tokens-float64(charge), -burst)
	}
	if tokens > burst {
		tokens = burst
	}
	want := float64(n)
	if short := c.short(n); short > 0 {
		var long float64
		if 4*tokens >= burst {
			long = math.Floor(tokens / 2)
		}
		want = math.Min(want, math.Max(float64(short), long))
	}
	ahead := float64(c.ahead(m.Limit))
	granted := math.Min(want, math.Floor(tokens))
	var due int64
	if granted < 1 && ahead > 0 {
		granted = math.Min(want, math.Floor(tokens+ahead))
		if granted > 0 {
			due = ceilInt((1 - tokens) * period / rate)
		}
	}
	granted = max(granted, 0)
	tokens = tokens - granted
	next, reset := m.store(tokens, nowUS)
	if granted == 0 && charge == 0 {
		next = s // nothing to write
	}
	retry := due
	if granted == 0 {
		if ahead > 0 {
			retry = ceilInt((1 - ahead - tokens) * period / rate)
		} else {
			retry = ceilInt((1 - tokens) * period / rate)
		}
	}
	return next, reply{int64(granted), max(floorInt(tokens), 0), retry, reset}
}
