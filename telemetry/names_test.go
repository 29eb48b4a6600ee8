package telemetry_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/telemetry"
)

// TestMetricNames pins the name, unit and kind of every metric: dashboards
// and alerts depend on them. A change here is a breaking change, to be
// made together with docs/metrics.md.
func TestMetricNames(t *testing.T) {
	const (
		counter   = "counter"   // monotonic int64 sum
		gauge     = "gauge"     // int64 gauge
		histogram = "histogram" // float64 histogram
	)
	want := map[string]struct{ unit, kind string }{
		"ratelimit.decisions":             {"{decision}", counter},
		"ratelimit.decision.duration":     {"s", histogram},
		"ratelimit.decision.errors":       {"{error}", counter},
		"ratelimit.redis.calls":           {"{call}", counter},
		"ratelimit.redis.duration":        {"s", histogram},
		"ratelimit.lease.tokens.leased":   {"{token}", counter},
		"ratelimit.lease.tokens.served":   {"{token}", counter},
		"ratelimit.lease.tokens.returned": {"{token}", counter},
		"ratelimit.lease.tokens.expired":  {"{token}", counter},
		"ratelimit.lease.tokens.held":     {"{token}", gauge},
		"ratelimit.lease.tokens.budget":   {"{token}", gauge},
		"ratelimit.lease.refills":         {"{refill}", counter},
		"ratelimit.lease.prefetches":      {"{refill}", counter},
		"ratelimit.lease.refill.errors":   {"{refill}", counter},
		"ratelimit.lease.waits":           {"{wait}", counter},
		"ratelimit.lease.local_denials":   {"{decision}", counter},
		"ratelimit.lease.keys":            {"{key}", gauge},
		"ratelimit.lease.evictions":       {"{key}", counter},
		"ratelimit.lease.overflows":       {"{request}", counter},
		"ratelimit.lease.return.errors":   {"{call}", counter},
		"ratelimit.circuit.state":         {"{state}", gauge},
	}

	if telemetry.ScopeName != "github.com/distributedratelimiter/ratelimit" {
		t.Errorf("ScopeName %q, want the module path", telemetry.ScopeName)
	}
	mp, r := newReader(t)
	ctx := context.Background()
	l, err := telemetry.Wrap(constLimiter{allowedLocal}, telemetry.WithMeterProvider(mp), telemetry.WithSampleEvery(1))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = l.Allow(ctx, "k")
	f := &fakeStats{lim: ratelimit.PerSecond(100), s: lease.Stats{TokensLeased: 1, Breaker: "closed"}}
	if _, err := telemetry.ObserveLease(f, telemetry.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	hook, err := telemetry.NewRedisHook(telemetry.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	process := hook.ProcessHook(func(context.Context, redis.Cmder) error { return nil })
	_ = process(ctx, redis.NewCmd(ctx, "evalsha", scriptSHA(t, "gcra"), 1, "k"))

	var rm metricdata.ResourceMetrics
	if err := r.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/distributedratelimiter/ratelimit" {
			t.Errorf("scope %q, want the module path", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			seen[m.Name] = true
			w, ok := want[m.Name]
			if !ok {
				t.Errorf("metric %s is not pinned by this test (and docs/metrics.md?)", m.Name)
				continue
			}
			if m.Unit != w.unit {
				t.Errorf("%s: unit %q, want %q", m.Name, m.Unit, w.unit)
			}
			if m.Description == "" {
				t.Errorf("%s has no description", m.Name)
			}
			var kind string
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if d.IsMonotonic && d.Temporality == metricdata.CumulativeTemporality {
					kind = counter
				}
			case metricdata.Gauge[int64]:
				kind = gauge
			case metricdata.Histogram[float64]:
				kind = histogram
			}
			if kind != w.kind {
				t.Errorf("%s: data %T, want a %s", m.Name, m.Data, w.kind)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("metric %s was not reported", name)
		}
	}
}
