package algorithms

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

var (
	fixedWindowScript       = newScript("fixed_window")
	fixedWindowRefundScript = newScript("fixed_window_refund")
)

type fixedWindow struct{}

func (fixedWindow) Name() string { return "fixed_window" }

func (fixedWindow) Check(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (ratelimit.Decision, error) {
	return runCheck(ctx, fixedWindowScript, rdb, rkey, lim, n)
}

func (fixedWindow) Refund(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) error {
	_, err := runRefund(ctx, fixedWindowRefundScript, rdb, rkey, lim, n)
	return err
}
