package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/telemetry"
)

// variants are the telemetry set-ups the benchmarks compare:
//   - off: the bare limiter;
//   - noop: wrapped with the no-op provider (the Limiter only forwards);
//   - global: wrapped with the default, the global provider, with no SDK
//     installed (counting, nothing exported; run with -run='^$' so that no
//     test has installed one);
//   - on: wrapped with the SDK and a reader, one decision in 64 timed;
//   - on/sample=1: the same, every decision timed.

func variants(b *testing.B, inner ratelimit.Limiter) []struct {
	name string
	l    ratelimit.Limiter
} {
	b.Helper()
	mp, _ := newReader(b)
	wrap := func(opts ...telemetry.WrapOption) ratelimit.Limiter {
		l, err := telemetry.Wrap(inner, append([]telemetry.WrapOption{telemetry.WithLimit("bench", "")}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	return []struct {
		name string
		l    ratelimit.Limiter
	}{
		{"telemetry=off", inner},
		{"telemetry=noop", wrap(telemetry.WithMeterProvider(noop.NewMeterProvider()))},
		{"telemetry=global", wrap()},
		{"telemetry=on", wrap(telemetry.WithMeterProvider(mp))},
		{"telemetry=on/sample=1", wrap(telemetry.WithMeterProvider(mp), telemetry.WithSampleEvery(1))},
	}
}

// BenchmarkHitPath measures the leased hit path of one hot key, with a
// limit too high to deny, on a real redis-server: once warm it makes no
// Redis call. Compare telemetry=off with the others for the cost of
// telemetry; run with -cpu 1,2,4 to vary the goroutines.
func BenchmarkHitPath(b *testing.B) {
	l := newLease(b)
	ctx := context.Background()
	if d, err := l.Allow(ctx, "hot"); err != nil || !d.Allowed {
		b.Fatalf("warm-up: %+v, %v", d, err)
	}
	// telemetry=lease: the limiter unwrapped, observed by ObserveLease; it
	// counts its own decisions (always, in telemetry=off too), so this
	// costs the hit path nothing more.
	mp, _ := newReader(b)
	reg, err := telemetry.ObserveLease(l, telemetry.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Unregister()
	// The other variants wrap the lease, hidden (Wrap refuses a leasing
	// limiter), to measure the wrapper around the fastest real hit path.
	all := append(variants(b, hiddenLease{Limiter: l}), struct {
		name string
		l    ratelimit.Limiter
	}{"telemetry=lease", l})
	for _, v := range all {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if d, err := v.l.AllowN(ctx, "hot", 1); err != nil || !d.Allowed {
						b.Errorf("%+v %v", d, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkWrapper measures the Limiter's own cost around a limiter that
// does nothing.
func BenchmarkWrapper(b *testing.B) {
	ctx := context.Background()
	for _, v := range variants(b, constLimiter{allowedLocal}) {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, _ = v.l.AllowN(ctx, "k", 1)
				}
			})
		})
	}
}
