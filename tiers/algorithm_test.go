package tiers_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// TestResultNamesAlgorithm: each LimitResult says which algorithm ran the
// limit (what the HTTP middleware needs to describe it truthfully): the
// one the limiter reports (the Factory's default included), else the
// limit's own, and nil for a limiter that does not say and either leases
// or was given none.
func TestResultNamesAlgorithm(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	direct := tiers.Direct(rdb, algorithms.WithTimeout(5*time.Second))
	factory := func(s tiers.Spec) (ratelimit.Limiter, error) {
		if s.Limit.Name != "default" && s.Limit.Name != "window" {
			return &fake{spec: s}, nil // reports no algorithm, and may lease
		}
		return direct(s)
	}
	cfg := oneTier(
		tiers.Client("default", ratelimit.PerSecond(10)),
		tiers.Client("window", ratelimit.PerMinute(10)).WithAlgorithm(algorithms.FixedWindow),
		tiers.Client("wrapped", ratelimit.PerMinute(10)).WithAlgorithm(algorithms.SlidingWindow),
		tiers.Client("leased", ratelimit.PerMinute(10)).WithAlgorithm(algorithms.FixedWindow).WithLease(true),
		tiers.Shared("custom", ratelimit.PerMinute(100)),
	)
	l := newLimiter(t, factory, cfg)
	res, err := l.Check(context.Background(), "k", "", 1)
	if err != nil || !res.Decision.Allowed {
		t.Fatalf("Check: %+v, %v", res, err)
	}
	want := []algorithms.Algorithm{algorithms.GCRA, algorithms.FixedWindow, algorithms.SlidingWindow, nil, nil}
	for i, lr := range res.Limits {
		if lr.Algorithm != want[i] {
			t.Errorf("limit %q: Algorithm %v, want %v", lr.Name, lr.Algorithm, want[i])
		}
	}
}
