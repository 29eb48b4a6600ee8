package algorithms

import (
	"context"
	_ "embed"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

var (
	//go:embed lua/fixed_window.lua
	fixedWindowSrc    string
	fixedWindowScript = redis.NewScript(fixedWindowSrc)

	//go:embed lua/fixed_window_refund.lua
	fixedWindowRefundSrc    string
	fixedWindowRefundScript = redis.NewScript(fixedWindowRefundSrc)
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
