package algorithms

import (
	"context"
	_ "embed"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

var (
	//go:embed lua/gcra.lua
	gcraSrc    string
	gcraScript = redis.NewScript(gcraSrc)

	//go:embed lua/gcra_refund.lua
	gcraRefundSrc    string
	gcraRefundScript = redis.NewScript(gcraRefundSrc)
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
