package algorithms

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

var (
	slidingWindowScript       = newScript("sliding_window")
	slidingWindowRefundScript = newScript("sliding_window_refund")
)

type slidingWindow struct{}

func (slidingWindow) Name() string { return "sliding_window" }

func (slidingWindow) Check(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (ratelimit.Decision, error) {
	return runCheck(ctx, slidingWindowScript, rdb, rkey, lim, n)
}

func (slidingWindow) Refund(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) error {
	_, err := runRefund(ctx, slidingWindowRefundScript, rdb, rkey, lim, n)
	return err
}
