package algorithms_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// embeddedRedis starts an embedded Redis, which stands in for a real server
// in the examples, with its clock frozen at a known instant. It returns
// the server, a client, and a function that stops both.
func embeddedRedis() (*miniredis.Miniredis, *redis.Client, func()) {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	// The scripts read the server's clock; freezing it makes the output
	// exact.
	mr.SetTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return mr, rdb, func() { rdb.Close(); mr.Close() }
}

func ExampleLimiter_Allow() {
	mr, rdb, stop := embeddedRedis()
	defer stop()

	l, err := algorithms.NewLimiter(rdb, ratelimit.PerMinute(2),
		algorithms.WithAlgorithm(algorithms.SlidingWindow))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	allow := func() {
		d, err := l.Allow(ctx, "user:42")
		switch {
		case err != nil:
			fmt.Println("check failed:", err)
		case d.Allowed:
			fmt.Printf("allowed, %d left\n", d.Remaining)
		default:
			fmt.Printf("denied, retry after %v\n", d.RetryAfter)
		}
	}
	allow()
	allow()
	allow()
	// Half-way through the next minute, the previous minute's two
	// requests weigh one: there is room for one more.
	mr.SetTime(time.Date(2025, 1, 1, 0, 1, 30, 0, time.UTC))
	allow()
	allow()
	// Output:
	// allowed, 1 left
	// allowed, 0 left
	// denied, retry after 1m30s
	// allowed, 0 left
	// denied, retry after 30s
}

func ExampleLimiter_RefundN() {
	_, rdb, stop := embeddedRedis()
	defer stop()

	l, err := algorithms.NewLimiter(rdb, ratelimit.PerHour(10))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	d, err := l.AllowN(ctx, "user:42", 4)
	if err != nil {
		panic(err)
	}
	fmt.Printf("allowed %v, %d left\n", d.Allowed, d.Remaining)
	// The request failed before doing any work: give its tokens back.
	if err := l.RefundN(ctx, "user:42", 4); err != nil {
		panic(err)
	}
	d, err = l.AllowN(ctx, "user:42", 10)
	if err != nil {
		panic(err)
	}
	fmt.Printf("allowed %v, %d left\n", d.Allowed, d.Remaining)
	// Output:
	// allowed true, 6 left
	// allowed true, 0 left
}

func ExampleTakeUpTo() {
	_, rdb, stop := embeddedRedis()
	defer stop()

	// A lease holder takes tokens from a token bucket in batches.
	lim := ratelimit.PerSecond(8)
	rkey, err := ratelimit.Keyspace{}.ClientKey("user:42", algorithms.TokenBucket.Name())
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for range 3 {
		g, err := algorithms.TakeUpTo(ctx, rdb, rkey, lim, 5)
		if err != nil {
			panic(err)
		}
		fmt.Printf("granted %d, %d left, retry after %v\n", g.Granted, g.Remaining, g.RetryAfter)
	}
	// Tokens leased but not served go back.
	left, err := algorithms.ReturnN(ctx, rdb, rkey, lim, 2)
	if err != nil {
		panic(err)
	}
	fmt.Printf("returned 2, %d left\n", left)
	// Output:
	// granted 5, 3 left, retry after 0s
	// granted 3, 0 left, retry after 0s
	// granted 0, 0 left, retry after 125ms
	// returned 2, 2 left
}
