package algorithms

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// reply is the shape every script returns: an array of four integers.
// Check scripts return {allowed (0|1), remaining, retry_after_us,
// reset_after_us}; take_up_to returns {granted, remaining, retry_after_us,
// reset_after_us}; token_bucket_return and the refund scripts return
// {remaining, 0, 0, reset_after_us}.
type reply [4]int64

// parseReply reads a script's reply. A reply of any other shape, nil
// included, is an error wrapping ratelimit.ErrBadReply, never a panic.
func parseReply(cmd *redis.Cmd) (reply, error) {
	var r reply
	if err := cmd.Err(); err != nil {
		if errors.Is(err, redis.Nil) {
			// go-redis reports a nil reply as an error; to a script that
			// always replies four integers it is a reply of the wrong
			// shape.
			return r, fmt.Errorf("%w: nil reply (%w)", ratelimit.ErrBadReply, err)
		}
		return r, err
	}
	vals, err := cmd.Int64Slice()
	if err != nil {
		return r, fmt.Errorf("%w: %v", ratelimit.ErrBadReply, err)
	}
	if len(vals) != len(r) {
		return r, fmt.Errorf("%w: want %d integers, got %d", ratelimit.ErrBadReply, len(r), len(vals))
	}
	copy(r[:], vals)
	for i, v := range r {
		if v < 0 {
			return r, fmt.Errorf("%w: field %d is negative (%d)", ratelimit.ErrBadReply, i, v)
		}
	}
	return r, nil
}

// usToDuration converts microseconds to a Duration, saturating at the
// largest Duration (about 292 years) instead of overflowing: a limit of one
// token a year with a large burst can reply with longer waits.
func usToDuration(us int64) time.Duration {
	if us > math.MaxInt64/int64(time.Microsecond) {
		return math.MaxInt64
	}
	return time.Duration(us) * time.Microsecond
}

// decision turns a check reply, whose allowed flag is 0 or 1, into a
// Decision.
func (r reply) decision(lim ratelimit.Limit) ratelimit.Decision {
	d := ratelimit.Decision{
		Allowed:    r[0] == 1,
		Limit:      lim,
		Remaining:  int(r[1]),
		RetryAfter: usToDuration(r[2]),
		ResetAfter: usToDuration(r[3]),
		Source:     ratelimit.SourceRedis,
	}
	if d.Allowed {
		d.RetryAfter = 0
	}
	return d
}

// grant turns a take_up_to reply into a Grant.
func (r reply) grant() Grant {
	return Grant{
		Granted:    int(r[0]),
		Remaining:  int(r[1]),
		RetryAfter: usToDuration(r[2]),
		ResetAfter: usToDuration(r[3]),
	}
}

// args returns the ARGV every script takes: rate, period in microseconds,
// burst, n.
func args(lim ratelimit.Limit, n int) []any {
	return []any{lim.Rate, lim.Period.Microseconds(), lim.Burst, n}
}

// run runs one of the scripts on the key rkey for n tokens of lim and
// parses its reply.
func run(ctx context.Context, s *redis.Script, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (reply, error) {
	return parseReply(s.Run(ctx, rdb, []string{rkey}, args(lim, n)...))
}

// runCheck runs a check script and returns its decision.
func runCheck(ctx context.Context, s *redis.Script, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (ratelimit.Decision, error) {
	r, err := run(ctx, s, rdb, rkey, lim, n)
	if err != nil {
		return ratelimit.Decision{}, err
	}
	if r[0] > 1 {
		return ratelimit.Decision{}, fmt.Errorf("%w: allowed flag is %d", ratelimit.ErrBadReply, r[0])
	}
	return r.decision(lim), nil
}

// runRefund runs a token_bucket_return or refund script and returns the
// whole tokens the key then has.
func runRefund(ctx context.Context, s *redis.Script, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (int, error) {
	r, err := run(ctx, s, rdb, rkey, lim, n)
	if err != nil {
		return 0, err
	}
	return int(r[0]), nil
}
