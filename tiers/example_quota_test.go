package tiers_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit/tiers"
)

// A daily quota reset at midnight in Paris, and a monthly one, from YAML;
// an LLM gateway settles each request's cost once it is known.
func ExampleLimiter_Settle() {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		log.Fatal(err)
	}
	mr.SetTime(time.Date(2025, 3, 30, 0, 30, 0, 0, paris)) // a day of 23 hours
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	cfg, err := tiers.Parse("plans.yaml", []byte(`
default_tier: free
tiers:
  free:
    limits:
      day: {rate: 10000, period: day, timezone: Europe/Paris}
      month: {rate: 100000, period: month, timezone: Europe/Paris}
`))
	if err != nil {
		log.Fatal(err)
	}
	l, err := tiers.New(tiers.Direct(rdb), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close(context.Background())

	ctx := context.Background()
	res, err := l.Check(ctx, "key:42", "", 500) // the estimate
	if err != nil || !res.Decision.Allowed {
		log.Fatal(res, err)
	}
	// The model answered with 2,300 tokens.
	if err := l.Settle(ctx, "key:42", res.Tier, 500, 2300); err != nil {
		log.Fatal(err)
	}
	res, err = l.Inspect(ctx, "key:42", "")
	if err != nil {
		log.Fatal(err)
	}
	for _, lr := range res.Limits {
		fmt.Printf("%s: %d left, resets in %v\n", lr.Name, lr.Decision.Remaining, lr.Decision.ResetAfter)
	}
	// Output:
	// day: 7700 left, resets in 22h30m0s
	// month: 97700 left, resets in 46h30m0s
}
