package lease_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/lease"
)

func ExampleLimiter_Allow() {
	mr, err := miniredis.Run() // a real deployment passes its Redis client
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	// 10 requests per minute per key, shared by every instance using rdb.
	l, err := lease.New(rdb, ratelimit.PerMinute(10))
	if err != nil {
		panic(err)
	}
	defer l.Close(context.Background())

	ctx := context.Background()
	admitted := 0
	for i := 0; i < 15; i++ {
		d, err := l.Allow(ctx, "api-key-42")
		if err != nil {
			panic(err)
		}
		if d.Allowed {
			admitted++
		} else if i == 14 {
			fmt.Println("denied, retry in about", d.RetryAfter.Round(time.Second))
		}
	}
	fmt.Println("admitted", admitted, "of 15")
	// Output:
	// denied, retry in about 6s
	// admitted 10 of 15
}
