package telemetry_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// newReader returns a meter provider with a manual reader, shut down when
// t ends.
func newReader(t testing.TB) (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, r
}

// collect reads every metric of r, by name.
func collect(t testing.TB, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if _, dup := out[m.Name]; dup {
				t.Errorf("metric %s reported by two scopes", m.Name)
			}
			out[m.Name] = m
		}
	}
	return out
}

// attrs renders a set as "k=v,k=v" in key order.
func attrs(s attribute.Set) string {
	var b strings.Builder
	for i, kv := range s.ToSlice() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(kv.Key) + "=" + kv.Value.String())
	}
	return b.String()
}

// ints returns the points of an int64 sum or gauge by attributes; it fails
// t if m is neither.
func ints(t testing.TB, m metricdata.Metrics) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out[attrs(p.Attributes)] += p.Value
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out[attrs(p.Attributes)] = p.Value
		}
	default:
		t.Fatalf("%s: data %T, want an int64 sum or gauge", m.Name, m.Data)
	}
	return out
}

// histCounts returns the counts of a float64 histogram by attributes.
func histCounts(t testing.TB, m metricdata.Metrics) map[string]uint64 {
	t.Helper()
	d, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s: data %T, want a float64 histogram", m.Name, m.Data)
	}
	out := map[string]uint64{}
	for _, p := range d.DataPoints {
		out[attrs(p.Attributes)] += p.Count
	}
	return out
}

// step is one answer of a fakeLimiter.
type step struct {
	d   ratelimit.Decision
	err error
}

// fakeLimiter answers AllowN with its steps in turn, then with the last one
// forever. It counts calls, refunds and closes.
type fakeLimiter struct {
	mu    sync.Mutex
	steps []step
	i     int

	calls, refunds, closes atomic.Int64
}

func (f *fakeLimiter) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return f.AllowN(ctx, key, 1)
}

func (f *fakeLimiter) AllowN(context.Context, string, int) (ratelimit.Decision, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.steps[min(f.i, len(f.steps)-1)]
	f.i++
	return s.d, s.err
}

// refundingFake is a fakeLimiter that can refund and close.
type refundingFake struct{ fakeLimiter }

func (f *refundingFake) RefundN(context.Context, string, int) error {
	f.refunds.Add(1)
	return nil
}

func (f *refundingFake) Close(context.Context) error {
	f.closes.Add(1)
	return nil
}

// constLimiter always returns the same decision, allocating nothing.
type constLimiter struct{ d ratelimit.Decision }

func (c constLimiter) Allow(context.Context, string) (ratelimit.Decision, error) { return c.d, nil }
func (c constLimiter) AllowN(context.Context, string, int) (ratelimit.Decision, error) {
	return c.d, nil
}

// hiddenLease is a leasing limiter that Wrap cannot tell is one: its Stats
// field hides the lease's Stats method, so it is no LeaseStats. Its other
// methods are the lease's (embedding a pointer as the first field makes
// them jumps, not calls), so wrapping it measures the wrapper around the
// fastest real hit path.
type hiddenLease struct {
	*lease.Limiter
	Stats struct{}
}
