package algorithms

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// TakeUpTo takes as many tokens as the token bucket at rkey holds, up to n,
// in one atomic script: the leasing primitive. A grant of zero is not an
// error. rkey must be a [TokenBucket] key; n must be positive.
func TakeUpTo(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (Grant, error) {
	if n <= 0 {
		return Grant{}, fmt.Errorf("%w: n %d must be positive", ratelimit.ErrInvalidN, n)
	}
	r, err := run(ctx, tokenBucketTakeUpToScript, rdb, rkey, lim, n)
	if err != nil {
		return Grant{}, err
	}
	if r[0] > int64(n) {
		return Grant{}, fmt.Errorf("%w: granted %d of %d", ratelimit.ErrBadReply, r[0], n)
	}
	return r.grant(), nil
}

// ReturnN returns n leased but unspent tokens to the token bucket at rkey,
// capped at its burst, and reports the whole tokens it then holds. n must
// be positive.
func ReturnN(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("%w: n %d must be positive", ratelimit.ErrInvalidN, n)
	}
	return runRefund(ctx, tokenBucketReturnScript, rdb, rkey, lim, n)
}
