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

func ExampleLimiter_SettleN() {
	_, rdb, stop := embeddedRedis()
	defer stop()

	// An LLM gateway: 1,000 tokens a minute per API key. A request's cost
	// is known only once the model has answered.
	l, err := algorithms.NewLimiter(rdb, ratelimit.PerMinute(1000))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	call := func(estimate, actual int) {
		d, err := l.AllowN(ctx, "key:42", estimate)
		if err != nil {
			panic(err)
		}
		if !d.Allowed {
			fmt.Printf("estimate %d: denied, retry in %v\n", estimate, d.RetryAfter)
			return
		}
		// ... the model answers, using actual tokens ...
		if err := l.SettleN(ctx, "key:42", estimate, actual); err != nil {
			panic(err)
		}
		p, err := l.Peek(ctx, "key:42")
		if err != nil {
			panic(err)
		}
		fmt.Printf("estimate %d, used %d: %d left, next token in %v\n", estimate, actual, p.Remaining, p.RetryAfter)
	}
	call(100, 40)  // over-estimated: 60 come back
	call(100, 350) // under-estimated: 250 more are charged
	call(100, 900) // the key goes into debt: 290 tokens owed
	call(100, 100) // denied until the debt is paid off and 100 are earned
	// Output:
	// estimate 100, used 40: 960 left, next token in 0s
	// estimate 100, used 350: 610 left, next token in 0s
	// estimate 100, used 900: 0 left, next token in 17.46s
	// estimate 100: denied, retry in 23.4s
}
