package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// Each tenant's limit comes from its plan, looked up when the tenant is
// checked. An upgrade applies to the tenant's bucket in Redis as it is:
// under a fixed window, the requests it already made this minute count
// against the new limit too.
func ExampleDynamic() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	mr.SetTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)) // the minute does not end
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()

	// The plans, as a database would hold them.
	var mu sync.Mutex
	plans := map[string]ratelimit.Limit{"acme": ratelimit.PerMinute(2)}
	limitOf := func(ctx context.Context, tenant string) (ratelimit.Limit, error) {
		mu.Lock()
		defer mu.Unlock()
		lim, ok := plans[tenant]
		if !ok {
			return ratelimit.Limit{}, fmt.Errorf("no plan for %q", tenant)
		}
		return lim, nil
	}
	limiter := ratelimit.NewDynamic(limitOf, func(lim ratelimit.Limit) (*algorithms.Limiter, error) {
		return algorithms.NewLimiter(rdb, lim, algorithms.WithAlgorithm(algorithms.FixedWindow),
			algorithms.WithTimeout(time.Minute))
	})
	defer limiter.Close(ctx)

	check := func(n int) {
		for range n {
			d, err := limiter.Allow(ctx, "acme")
			if err != nil {
				panic(err)
			}
			fmt.Printf("allowed %-5v remaining %d of %d\n", d.Allowed, d.Remaining, d.Limit.Burst)
		}
	}
	check(3)

	fmt.Println("acme upgrades to 5 a minute")
	mu.Lock()
	plans["acme"] = ratelimit.PerMinute(5)
	mu.Unlock()
	limiter.Invalidate("acme") // on every instance; or wait for the cache TTL
	check(4)

	_, err = limiter.Allow(ctx, "nobody")
	fmt.Println(errors.Is(err, ratelimit.ErrLimitLookup), err)
	// Output:
	// allowed true  remaining 1 of 2
	// allowed true  remaining 0 of 2
	// allowed false remaining 0 of 2
	// acme upgrades to 5 a minute
	// allowed true  remaining 2 of 5
	// allowed true  remaining 1 of 5
	// allowed true  remaining 0 of 5
	// allowed false remaining 0 of 5
	// true ratelimit: limit of key "nobody": no plan for "nobody"
}
