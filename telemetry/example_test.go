package telemetry_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/reject"
	"github.com/distributedratelimiter/ratelimit/telemetry"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// printMetrics collects reader's metrics and prints the non-zero data
// points of the int64 counters and gauges named, one a line, sorted.
func printMetrics(reader *sdkmetric.ManualReader, names ...string) {
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	var lines []string
	add := func(name string, attrs attribute.Set, v int64) {
		if v == 0 {
			return
		}
		var kvs []string
		for _, kv := range attrs.ToSlice() { // sorted by key
			kvs = append(kvs, string(kv.Key)+"="+kv.Value.String())
		}
		lines = append(lines, fmt.Sprintf("%s{%s} %d", name, strings.Join(kvs, ","), v))
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if !slices.Contains(names, m.Name) {
				continue
			}
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range data.DataPoints {
					add(m.Name, p.Attributes, p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range data.DataPoints {
					add(m.Name, p.Attributes, p.Value)
				}
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
}

// redisLimiter returns a limiter of 3 requests a minute on an embedded
// Redis whose clock is stopped, and a function that closes both.
func redisLimiter() (ratelimit.Limiter, func()) {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	mr.SetTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	l, err := algorithms.NewLimiter(rdb, ratelimit.PerMinute(3))
	if err != nil {
		panic(err)
	}
	return l, func() { rdb.Close(); mr.Close() }
}

// Wrap counts the decisions of a limiter by result and source. Here the
// OpenTelemetry SDK's manual reader collects them; an application installs
// an exporter (Prometheus, OTLP) instead.
func ExampleWrap() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	lim, closeRedis := redisLimiter() // 3 requests a minute
	defer closeRedis()
	tl, err := telemetry.Wrap(lim, telemetry.WithMeterProvider(mp), telemetry.WithLimit("free", ""))
	if err != nil {
		panic(err)
	}
	defer tl.Close(context.Background())

	ctx := context.Background()
	for range 5 { // 3 admitted, 2 denied, all by Redis
		if _, err := tl.Allow(ctx, "user:42"); err != nil {
			panic(err)
		}
	}
	printMetrics(reader, "ratelimit.decisions")
	// Output:
	// ratelimit.decisions{ratelimit.result=allowed,ratelimit.source=redis,ratelimit.tier=free} 3
	// ratelimit.decisions{ratelimit.result=denied,ratelimit.source=redis,ratelimit.tier=free} 2
}

// With reject.Shadow, the requests admitted over the limit count as
// shadowed rather than denied.
func ExampleLimiter_RecordShadowed() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	lim, closeRedis := redisLimiter() // 3 requests a minute
	defer closeRedis()
	tl, err := telemetry.Wrap(lim, telemetry.WithMeterProvider(mp), telemetry.WithLimit("free", ""))
	if err != nil {
		panic(err)
	}
	defer tl.Close(context.Background())
	shadow := reject.NewShadow(func(_ context.Context, r reject.Request) {
		tl.RecordShadowed(r.Decision)
	})

	ctx := context.Background()
	for range 5 {
		d, err := tl.Allow(ctx, "user:42")
		if err != nil {
			panic(err)
		}
		if !d.Allowed {
			if _, err := shadow.Handle(ctx, reject.Request{Limiter: tl, Key: "user:42", N: 1, Decision: d}); err != nil {
				panic(err)
			}
		}
	}
	printMetrics(reader, "ratelimit.decisions")
	// Output:
	// ratelimit.decisions{ratelimit.result=allowed,ratelimit.source=redis,ratelimit.tier=free} 3
	// ratelimit.decisions{ratelimit.result=shadowed,ratelimit.source=redis,ratelimit.tier=free} 2
}

// fakeLease stands in for a *lease.Limiter, whose counts depend on when
// its refills run: it reports fixed totals.
type fakeLease struct{ stats lease.Stats }

func (f fakeLease) Stats() lease.Stats      { return f.stats }
func (f fakeLease) Limit() ratelimit.Limit  { return ratelimit.PerSecond(100).WithBurst(200) }
func (f fakeLease) AccuracyBudget() float64 { return 0.05 }

// ObserveLease reports a leasing limiter's own totals, ratelimit.decisions
// included, so that the limiter needs no Wrap.
func ExampleObserveLease() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	// 1,000 decisions, nearly all from leased tokens; 3 keys hold 24
	// tokens, each at most the budget of 10 (5 % of the burst of 200).
	l := fakeLease{lease.Stats{
		AllowedLocal: 950, AllowedRedis: 40, DeniedLocal: 8, DeniedRedis: 2,
		TokensHeld: 24, Keys: 3, Breaker: "closed",
	}}
	reg, err := telemetry.ObserveLease(l, telemetry.WithMeterProvider(mp),
		telemetry.WithLimit("pro", ""))
	if err != nil {
		panic(err)
	}
	defer reg.Unregister()

	printMetrics(reader, "ratelimit.decisions",
		"ratelimit.lease.tokens.held", "ratelimit.lease.tokens.budget")
	// Output:
	// ratelimit.decisions{ratelimit.result=allowed,ratelimit.source=local,ratelimit.tier=pro} 950
	// ratelimit.decisions{ratelimit.result=allowed,ratelimit.source=redis,ratelimit.tier=pro} 40
	// ratelimit.decisions{ratelimit.result=denied,ratelimit.source=local,ratelimit.tier=pro} 8
	// ratelimit.decisions{ratelimit.result=denied,ratelimit.source=redis,ratelimit.tier=pro} 2
	// ratelimit.lease.tokens.budget{ratelimit.tier=pro} 10
	// ratelimit.lease.tokens.held{ratelimit.tier=pro} 24
}

// Factory reports the metrics of every limiter of a tiers.Limiter, named
// by tier and limit: here a leased per-second limit and a per-request
// daily quota (an embedded Redis with a stopped clock stands in for a
// real one, so that nothing refills).
func ExampleFactory() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	mr.SetTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	cfg, err := tiers.Parse("plans.yaml", []byte(`
default_tier: free
tiers:
  free:
    limits:
      second: {rate: 5, period: 1s, burst: 10, lease: true}
      day:    {rate: 1000, period: 24h, algorithm: fixed_window}
`))
	if err != nil {
		panic(err)
	}
	// Redis calls bounded by a second, for a busy test machine.
	factory := tiers.Redis(rdb, []algorithms.Option{algorithms.WithTimeout(time.Second)}, lease.WithMaxWait(time.Second))
	plans, err := tiers.New(telemetry.Factory(factory, telemetry.WithMeterProvider(mp)), cfg)
	if err != nil {
		panic(err)
	}
	defer plans.Close(context.Background())

	ctx := context.Background()
	for range 12 { // a burst of 10 passes "second", and then "day"
		if _, err := plans.Allow(ctx, "alice"); err != nil {
			panic(err)
		}
	}
	// Decisions summed over ratelimit.source (leased or from Redis).
	printMetrics(reader, "ratelimit.circuit.state")
	printTotals(reader, "ratelimit.decisions", attribute.Key("ratelimit.source"))
	// Output:
	// ratelimit.circuit.state{ratelimit.circuit.state=closed,ratelimit.limit=second,ratelimit.tier=free} 1
	// ratelimit.decisions{ratelimit.limit=day,ratelimit.result=allowed,ratelimit.tier=free} 10
	// ratelimit.decisions{ratelimit.limit=second,ratelimit.result=allowed,ratelimit.tier=free} 10
	// ratelimit.decisions{ratelimit.limit=second,ratelimit.result=denied,ratelimit.tier=free} 2
}

// printTotals collects reader's metrics and prints the non-zero totals of
// the int64 counter name, summed over the attribute drop, one a line,
// sorted.
func printTotals(reader *sdkmetric.ManualReader, name string, drop attribute.Key) {
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	totals := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			data, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
			for _, p := range data.DataPoints {
				var kvs []string
				for _, kv := range p.Attributes.ToSlice() {
					if kv.Key != drop {
						kvs = append(kvs, string(kv.Key)+"="+kv.Value.String())
					}
				}
				totals[fmt.Sprintf("%s{%s}", name, strings.Join(kvs, ","))] += p.Value
			}
		}
	}
	var lines []string
	for k, v := range totals {
		if v != 0 {
			lines = append(lines, fmt.Sprintf("%s %d", k, v))
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
}
