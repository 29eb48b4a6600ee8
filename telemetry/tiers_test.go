package telemetry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/telemetry"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// plansYAML has a leased and a per-request limit in one tier, and a tier
// of one per-request limit.
const plansYAML = `
default_tier: free
tiers:
  free:
    limits:
      second: {rate: 5, period: 1s, burst: 10, lease: true}
      day:    {rate: 1000, period: 24h, algorithm: fixed_window}
  basic:
    limits:
      minute: {rate: 3, period: 1m}
`

// newPlans returns a tiers.Limiter of plansYAML on a miniredis with a
// stopped clock, made through telemetry.Factory on mp, and the miniredis.
func newPlans(t *testing.T, opts ...telemetry.FactoryOption) (*tiers.Limiter, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	mr.SetTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	cfg, err := tiers.Parse("plans.yaml", []byte(plansYAML))
	if err != nil {
		t.Fatal(err)
	}
	f := tiers.Redis(rdb, []algorithms.Option{algorithms.WithTimeout(5 * time.Second)},
		lease.WithRefillTimeout(5*time.Second), lease.WithMaxWait(5*time.Second))
	plans, err := tiers.New(telemetry.Factory(f, opts...), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plans.Close(context.Background()) })
	return plans, mr
}

// TestFactory checks the metrics of a tiers.Limiter made through
// telemetry.Factory: decisions per tier and limit, counted once; the
// lease metrics and the circuit state for the leased limit only; and
// nothing once the tiers.Limiter is closed.
func TestFactory(t *testing.T) {
	mp, r := newReader(t)
	plans, _ := newPlans(t, telemetry.WithMeterProvider(mp), telemetry.WithSampleEvery(1))
	ctx := context.Background()
	// alice: 12 checks of free (burst 10 on second, so 10 reach day);
	// bob: 5 checks of basic (3 a minute).
	for range 12 {
		if _, err := plans.Check(ctx, "alice", "free", 1); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		if _, err := plans.Check(ctx, "bob", "basic", 1); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, r)
	decisions := ints(t, got["ratelimit.decisions"])
	sum := func(tier, limit, result string) int64 {
		var n int64
		for k, v := range decisions {
			if strings.Contains(k, "ratelimit.limit="+limit+",") && strings.Contains(k, "ratelimit.result="+result+",") &&
				strings.HasSuffix(k, "ratelimit.tier="+tier) {
				n += v
			}
		}
		return n
	}
	for _, c := range []struct {
		tier, limit, result string
		want                int64
	}{
		{"free", "second", "allowed", 10},
		{"free", "second", "denied", 2},
		{"free", "day", "allowed", 10},
		{"free", "day", "denied", 0},
		{"basic", "minute", "allowed", 3},
		{"basic", "minute", "denied", 2},
	} {
		if n := sum(c.tier, c.limit, c.result); n != c.want {
			t.Errorf("%s{tier=%s,limit=%s,result=%s} = %d, want %d; all: %v",
				"ratelimit.decisions", c.tier, c.limit, c.result, n, c.want, decisions)
		}
	}
	const leased = "ratelimit.limit=second,ratelimit.tier=free"
	assertInts(t, got, "ratelimit.circuit.state", map[string]int64{
		"ratelimit.circuit.state=closed," + leased:    1,
		"ratelimit.circuit.state=open," + leased:      0,
		"ratelimit.circuit.state=half-open," + leased: 0,
	})
	if keys := ints(t, got["ratelimit.lease.keys"]); len(keys) != 1 || keys[leased] != 1 {
		t.Errorf("%s = %v, want 1 key of the leased limit only", "ratelimit.lease.keys", keys)
	}
	// The per-request limits are wrapped (sampled times); the leased one
	// is observed, with no wrapper on its hit path.
	for k := range histCounts(t, got["ratelimit.decision.duration"]) {
		if strings.Contains(k, "ratelimit.limit=second,") {
			t.Errorf("the leased limit is timed (%s): it is wrapped", k)
		}
	}
	for _, name := range []string{"ratelimit.fallback.decisions", "ratelimit.lease.fallbacks"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s reported", name)
		}
	}

	if err := plans.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for name := range collect(t, r) {
		if name != "ratelimit.decision.duration" { // a histogram keeps its cumulative counts
			t.Errorf("%s still reported after Close", name)
		}
	}
}

// TestFactoryFallbacksOnce checks that, with Redis gone, every decision of
// the failure policies (FailLocal for the lease, FailClosed for the
// per-request limit) counts once, in ratelimit.decisions with source
// fallback, and nowhere else.
func TestFactoryFallbacksOnce(t *testing.T) {
	mp, r := newReader(t)
	plans, mr := newPlans(t, telemetry.WithMeterProvider(mp))
	mr.Close()
	ctx := context.Background()
	for range 4 {
		res, err := plans.Check(ctx, "alice", "free", 1) // the leased second decides
		if err != nil || res.Decision.Source != ratelimit.SourceFallback {
			t.Fatalf("free: %+v, %v; want a FailLocal decision", res.Decision, err)
		}
	}
	for range 3 {
		// tiers.Check returns the error of a FailClosed denial.
		if _, err := plans.Check(ctx, "bob", "basic", 1); !errors.Is(err, ratelimit.ErrStore) {
			t.Fatalf("basic: %v; want a FailClosed denial", err)
		}
	}
	got := collect(t, r)
	var free, basic int64
	for k, v := range ints(t, got["ratelimit.decisions"]) {
		if v == 0 {
			continue
		}
		if !strings.Contains(k, "ratelimit.source=fallback") {
			t.Errorf("%s{%s} = %d: only fallback decisions were made", "ratelimit.decisions", k, v)
		}
		switch {
		case strings.HasSuffix(k, "ratelimit.tier=free"):
			free += v
		case strings.Contains(k, "ratelimit.result=denied") && strings.HasSuffix(k, "ratelimit.tier=basic"):
			basic += v
		}
	}
	if free != 4 || basic != 3 {
		t.Errorf("fallback decisions: free %d, basic %d denied; want 4 and 3", free, basic)
	}
	for k, v := range ints(t, got["ratelimit.decision.errors"]) {
		if v != 0 {
			t.Errorf("%s{%s} = %d: a FailClosed denial is a decision", "ratelimit.decision.errors", k, v)
		}
	}
	for _, name := range []string{"ratelimit.fallback.decisions", "ratelimit.lease.fallbacks"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s reported", name)
		}
	}
}

// TestFactoryAttributes checks that WithAttributes tells apart two
// tiers.Limiters on one provider, gauges included, and that the package's
// own keys win over the same keys given there.
func TestFactoryAttributes(t *testing.T) {
	mp, r := newReader(t)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		plans, _ := newPlans(t, telemetry.WithMeterProvider(mp),
			telemetry.WithAttributes(attribute.String("instance", id), attribute.String("ratelimit.tier", "ignored")))
		if _, err := plans.Check(ctx, "alice", "free", 1); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, r)
	keys := ints(t, got["ratelimit.lease.keys"])
	for _, id := range []string{"a", "b"} {
		if k := "instance=" + id + ",ratelimit.limit=second,ratelimit.tier=free"; keys[k] != 1 {
			t.Errorf("%s{%s} = %d, want 1; all: %v", "ratelimit.lease.keys", k, keys[k], keys)
		}
	}
	if len(keys) != 2 {
		t.Errorf("%s: %v, want one series per instance", "ratelimit.lease.keys", keys)
	}
}

// TestFactoryErrors checks that a failing Factory's error passes through
// and a nil one stays nil.
func TestFactoryErrors(t *testing.T) {
	if telemetry.Factory(nil) != nil {
		t.Error("Factory(nil) is not nil")
	}
	boom := errors.New("boom")
	f := telemetry.Factory(func(tiers.Spec) (ratelimit.Limiter, error) { return nil, boom })
	if _, err := f(tiers.Spec{}); !errors.Is(err, boom) {
		t.Errorf("err %v, want boom", err)
	}
}

// TestFactoryLeaseHitPathDoesNotAllocate checks that a leased limiter
// from Factory decides from its lease without allocating.
func TestFactoryLeaseHitPathDoesNotAllocate(t *testing.T) {
	mp, _ := newReader(t)
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ks, _ := ratelimit.NewKeyspace("x:")
	f := telemetry.Factory(tiers.Redis(rdb, nil), telemetry.WithMeterProvider(mp))
	l, err := f(tiers.Spec{Tier: "pro", Limit: tiers.Client("second", ratelimit.PerSecond(1<<36).WithBurst(1<<36)).WithLease(true), Keyspace: ks})
	if err != nil {
		t.Fatal(err)
	}
	defer l.(interface{ Close(context.Context) error }).Close(context.Background())
	if _, ok := l.(telemetry.LeaseStats); !ok {
		t.Errorf("%T does not report lease stats", l)
	}
	ctx := context.Background()
	for range 1000 { // warm the lease
		if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
			t.Fatal(d, err)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = l.Allow(ctx, "k") }); n != 0 {
		t.Errorf("%v allocs per hit, want 0", n)
	}
}
