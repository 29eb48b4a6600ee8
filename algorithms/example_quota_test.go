package algorithms_test

import (
	"context"
	"fmt"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

func ExampleCalendarWindow() {
	mr, rdb, stop := embeddedRedis()
	defer stop()

	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err)
	}
	// Two requests a day, reset at midnight in Paris.
	daily := algorithms.CalendarWindow{Period: algorithms.Day, Location: paris}
	l, err := algorithms.NewLimiter(rdb, daily.Limit(2), algorithms.WithAlgorithm(daily))
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
			fmt.Printf("allowed, %d left, resets in %v\n", d.Remaining, d.ResetAfter)
		default:
			fmt.Printf("denied, retry in %v\n", d.RetryAfter)
		}
	}
	// 2025-03-30 has 23 hours in Paris: at 02:00 the clocks go to 03:00.
	// (The server's clock says 2025, the Limiter's says today: the script
	// tells the Limiter, which computes the windows from the server's time.)
	mr.SetTime(time.Date(2025, 3, 30, 0, 30, 0, 0, paris))
	allow()
	mr.SetTime(time.Date(2025, 3, 30, 12, 0, 0, 0, paris))
	allow()
	allow()
	mr.SetTime(time.Date(2025, 3, 31, 0, 0, 0, 0, paris))
	allow()
	// Output:
	// allowed, 1 left, resets in 22h30m0s
	// allowed, 0 left, resets in 12h0m0s
	// denied, retry in 12h0m0s
	// allowed, 1 left, resets in 24h0m0s
}

func ExampleLimiter_Peek() {
	_, rdb, stop := embeddedRedis()
	defer stop()

	l, err := algorithms.NewLimiter(rdb, ratelimit.PerHour(10))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if _, err := l.AllowN(ctx, "user:42", 10); err != nil {
		panic(err)
	}
	// A support desk looks at the key: Peek spends nothing.
	d, err := l.Peek(ctx, "user:42")
	if err != nil {
		panic(err)
	}
	fmt.Printf("available %v, %d left, next in %v, full in %v\n", d.Allowed, d.Remaining, d.RetryAfter, d.ResetAfter)
	// The customer upgraded: give the key its whole limit again.
	if err := l.Reset(ctx, "user:42"); err != nil {
		panic(err)
	}
	d, err = l.Peek(ctx, "user:42")
	if err != nil {
		panic(err)
	}
	fmt.Printf("available %v, %d left, next in %v, full in %v\n", d.Allowed, d.Remaining, d.RetryAfter, d.ResetAfter)
	// Output:
	// available false, 0 left, next in 6m0s, full in 1h0m0s
	// available true, 10 left, next in 0s, full in 0s
}
