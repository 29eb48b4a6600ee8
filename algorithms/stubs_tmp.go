package algorithms

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// TEMPORARY: replaced by the real scripts.
type gcra struct{}
type fixedWindow struct{}
type slidingWindow struct{}

func (gcra) Name() string          { return "gcra" }
func (fixedWindow) Name() string   { return "fixed_window" }
func (slidingWindow) Name() string { return "sliding_window" }
func (gcra) Check(context.Context, redis.Scripter, string, ratelimit.Limit, int) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, errors.New("todo")
}
func (fixedWindow) Check(context.Context, redis.Scripter, string, ratelimit.Limit, int) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, errors.New("todo")
}
func (slidingWindow) Check(context.Context, redis.Scripter, string, ratelimit.Limit, int) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, errors.New("todo")
}
