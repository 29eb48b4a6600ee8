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

// An LLM gateway reserves an estimate of a request's tokens, then settles
// the real cost: an under-estimate is charged, into debt if need be, and
// later requests pay it off; Peek shows what is left without spending it,
// and Reset gives the key its whole limit again.
func ExampleLimiter_SettleN() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	// 1,000 model tokens an hour per tenant, at most 1,000 at once.
	l, err := lease.New(rdb, ratelimit.PerHour(1000))
	if err != nil {
		panic(err)
	}
	defer l.Close(context.Background())

	ctx := context.Background()
	const estimate = 100
	if d, err := l.AllowN(ctx, "tenant-7", estimate); err != nil || !d.Allowed {
		panic("not admitted")
	}
	used := 700 // known once the model has answered
	if err := l.SettleN(ctx, "tenant-7", estimate, used); err != nil {
		panic(err)
	}
	d, err := l.Peek(ctx, "tenant-7")
	if err != nil {
		panic(err)
	}
	fmt.Println("left after settling:", d.Remaining)
	d, err = l.AllowN(ctx, "tenant-7", 500)
	if err != nil {
		panic(err)
	}
	fmt.Println("500 more admitted:", d.Allowed)

	if err := l.Reset(ctx, "tenant-7"); err != nil { // an upgrade, a support desk
		panic(err)
	}
	d, err = l.Peek(ctx, "tenant-7")
	if err != nil {
		panic(err)
	}
	fmt.Println("left after a reset:", d.Remaining)
	// Output:
	// left after settling: 300
	// 500 more admitted: false
	// left after a reset: 1000
}
