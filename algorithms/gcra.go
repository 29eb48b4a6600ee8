package algorithms

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

var (
	gcraScript       = newScript("gcra")
	gcraRefundScript = newScript("gcra_refund")
)

type gcra struct{}

func (gcra) Name() string { return "gcra" }

func (gcra) Check(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (ratelimit.Decision, error) {
	return runCheck(ctx, gcraScript, rdb, rkey, lim, n)
}

func (gcra) Refund(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) error {
	_, err := runRefund(ctx, gcraRefundScript, rdb, rkey, lim, n)
	return err
}
