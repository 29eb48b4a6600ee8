package tiers_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// realServer starts a redis-server and returns a client and a base
// keyspace unique to t.
func realServer(t *testing.T) (*redis.Client, ratelimit.Keyspace) {
	t.Helper()
	rdb := redistest.Start(t).Client()
	base, err := ratelimit.NewKeyspace(redistest.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	return rdb, base
}

// tokens reads the whole tokens left in the token bucket of limit of tier
// for key straight from Redis; a missing bucket is full (burst).
func tokens(t *testing.T, rdb *redis.Client, base ratelimit.Keyspace, tier, limit, key string, burst int) int {
	t.Helper()
	ks, err := tiers.LimitKeyspace(base, tier, limit)
	if err != nil {
		t.Fatal(err)
	}
	rkey, err := ks.ClientKey(key, algorithms.TokenBucket.Name())
	if err != nil {
		t.Fatal(err)
	}
	v, err := rdb.HGet(context.Background(), rkey, "t").Float64()
	if err == redis.Nil {
		return burst
	}
	if err != nil {
		t.Fatalf("HGET %s: %v", rkey, err)
	}
	return int(math.Floor(v))
}

func tb(l tiers.Limit) tiers.Limit { return l.WithAlgorithm(algorithms.TokenBucket) }

// testTimeout bounds each Redis call in tests: generous, so that a loaded
// machine under -race never turns a slow reply into a store error.
const testTimeout = 5 * time.Second

// direct is tiers.Direct with testTimeout.
func direct(rdb redis.Scripter) tiers.Factory {
	return tiers.Direct(rdb, algorithms.WithTimeout(testTimeout))
}

// TestAllOrNothingRealServer checks on a real redis-server that the daily
// limit is not charged for requests the short limit denies, whichever is
// checked first. Rates are per minute and per day so that nothing
// refills measurably during the test.
func TestAllOrNothingRealServer(t *testing.T) {
	rdb, base := realServer(t)
	short := ratelimit.PerMinute(2)
	day := ratelimit.Per(100, 24*time.Hour)
	cfg := tiers.Config{Tiers: []tiers.Tier{
		{Name: "short-first", Limits: []tiers.Limit{tb(tiers.Client("short", short)), tb(tiers.Client("day", day))}},
		{Name: "day-first", Limits: []tiers.Limit{tb(tiers.Client("day", day)), tb(tiers.Client("short", short))}},
	}}
	l := newLimiter(t, direct(rdb), cfg, tiers.WithKeyspace(base))
	ctx := context.Background()

	for _, tier := range []string{"short-first", "day-first"} {
		t.Run(tier, func(t *testing.T) {
			const key = "alice"
			type step struct {
				allowed    bool
				short, day int // tokens left in Redis afterwards
			}
			steps := []step{
				{true, 1, 99},
				{true, 0, 98},
				{false, 0, 98}, // short denies: the day keeps its 98
				{false, 0, 98},
				{false, 0, 98},
			}
			for i, s := range steps {
				res, err := l.Check(ctx, key, tier, 1)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if res.Decision.Allowed != s.allowed {
					t.Errorf("step %d: allowed = %v, want %v", i, res.Decision.Allowed, s.allowed)
				}
				gotShort := tokens(t, rdb, base, tier, "short", key, short.Burst)
				gotDay := tokens(t, rdb, base, tier, "day", key, day.Burst)
				if gotShort != s.short || gotDay != s.day {
					t.Errorf("step %d: Redis holds short %d, day %d; want %d, %d", i, gotShort, gotDay, s.short, s.day)
				}
				if !s.allowed {
					if d := res.Decision; d.Limit != short || d.RetryAfter <= 0 {
						t.Errorf("step %d: denial %+v should be the short limit's, with a retry time", i, d)
					}
					if tier == "day-first" && (!res.Limits[0].Refunded || res.Limits[0].Decision.Remaining != 98) {
						t.Errorf("step %d: day limit %+v should be refunded to 98", i, res.Limits[0])
					}
					if tier == "short-first" && res.Limits[1].Checked {
						t.Errorf("step %d: day limit checked after the short limit denied", i)
					}
				}
			}
		})
	}
}

// TestTierWideRealServer: all clients of a tier share its tier-wide
// limit; a request the shared limit denies is not charged to the client's
// own limit.
func TestTierWideRealServer(t *testing.T) {
	rdb, base := realServer(t)
	own := ratelimit.PerMinute(2)
	all := ratelimit.PerMinute(3)
	cfg := tiers.Config{
		Tiers: []tiers.Tier{{Name: "free", Limits: []tiers.Limit{
			tb(tiers.Shared("all", all)), // listed first, checked after the client limit
			tb(tiers.Client("own", own)),
		}}},
		DefaultTier: "free",
	}
	l := newLimiter(t, direct(rdb), cfg, tiers.WithKeyspace(base))
	ctx := context.Background()
	steps := []struct {
		key         string
		allowed     bool
		a, b, share int // tokens left afterwards: a's own, b's own, shared
	}{
		{"a", true, 1, 2, 2},
		{"a", true, 0, 2, 1},
		{"b", true, 0, 1, 0},
		{"b", false, 0, 1, 0}, // the shared limit denies: b's own token comes back
		{"a", false, 0, 1, 0}, // a's own limit denies: the shared one is not asked
	}
	for i, s := range steps {
		d, err := l.Allow(ctx, s.key)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if d.Allowed != s.allowed {
			t.Errorf("step %d (%s): allowed = %v, want %v", i, s.key, d.Allowed, s.allowed)
		}
		a := tokens(t, rdb, base, "free", "own", "a", own.Burst)
		b := tokens(t, rdb, base, "free", "own", "b", own.Burst)
		share := tokens(t, rdb, base, "free", "all", "free", all.Burst) // keyed by the tier name
		if a != s.a || b != s.b || share != s.share {
			t.Errorf("step %d: tokens a %d, b %d, shared %d; want %d, %d, %d", i, a, b, share, s.a, s.b, s.share)
		}
	}
	// The client's state and the shared state have different hash tags, so
	// on Cluster they may live on different nodes: all-or-nothing comes
	// from refunds, not from one script.
	ownKs, _ := tiers.LimitKeyspace(base, "free", "own")
	allKs, _ := tiers.LimitKeyspace(base, "free", "all")
	k1, _ := ownKs.ClientKey("a", "token_bucket")
	k2, _ := allKs.ClientKey("free", "token_bucket")
	if ratelimit.HashTag(k1) == ratelimit.HashTag(k2) {
		t.Errorf("client key %s and shared key %s share a hash tag", k1, k2)
	}
}

// TestReloadAppliesToCurrentWindow: lowering a limit by reload counts the
// usage already spent, because Redis keys depend on names, not numbers.
func TestReloadAppliesToCurrentWindow(t *testing.T) {
	rdb, base := realServer(t)
	cfg := func(rate int) tiers.Config {
		return oneTier(
			tb(tiers.Client("hour", ratelimit.PerHour(rate))),
		)
	}
	l := newLimiter(t, direct(rdb), cfg(10), tiers.WithKeyspace(base))
	ctx := context.Background()
	for i := range 8 {
		if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
			t.Fatalf("request %d under 10/h: %+v, %v", i, d, err)
		}
	}
	if err := l.Reload(cfg(5)); err != nil {
		t.Fatal(err)
	}
	// 2 tokens were left; a fresh key would have allowed 5.
	if allowed := limitertest.Admitted(t, "k", 5, l); allowed != 2 {
		t.Errorf("after lowering 10/h to 5/h with 8 spent: %d more allowed, want 2", allowed)
	}
}

// TestRefundEveryAlgorithmRealServer: whatever algorithm the first limit
// runs, a denial by the second gives its token back. The remaining count
// is read by an independent limiter on the same keys.
func TestRefundEveryAlgorithmRealServer(t *testing.T) {
	rdb, base := realServer(t)
	day := ratelimit.Per(100, 24*time.Hour)
	short := ratelimit.PerMinute(2)
	var cfg tiers.Config
	for _, alg := range algorithms.All {
		cfg.Tiers = append(cfg.Tiers, tiers.Tier{Name: alg.Name(), Limits: []tiers.Limit{
			tiers.Client("day", day).WithAlgorithm(alg),
			tb(tiers.Client("short", short)),
		}})
	}
	l := newLimiter(t, direct(rdb), cfg, tiers.WithKeyspace(base))
	ctx := context.Background()
	for _, alg := range algorithms.All {
		var allowed int
		for range 5 {
			res, err := l.Check(ctx, "alice", alg.Name(), 1)
			if err != nil {
				t.Fatalf("%s: %v", alg.Name(), err)
			}
			if res.Decision.Allowed {
				allowed++
			}
		}
		ks, err := tiers.LimitKeyspace(base, alg.Name(), "day")
		if err != nil {
			t.Fatal(err)
		}
		probe, err := algorithms.NewLimiter(rdb, day, algorithms.WithAlgorithm(alg), algorithms.WithKeyspace(ks))
		if err != nil {
			t.Fatal(err)
		}
		d, err := probe.Allow(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		// 2 admitted, 3 denied by the short limit and refunded, 1 probe.
		// (A fixed or sliding day window that ends mid-test would reset;
		// it ends at midnight UTC, a few milliseconds a day.)
		if allowed != 2 || d.Remaining != 97 {
			t.Errorf("%s: %d admitted, day remaining %d after the probe; want 2 and 97 (the denied requests refunded)",
				alg.Name(), allowed, d.Remaining)
		}
	}
}
