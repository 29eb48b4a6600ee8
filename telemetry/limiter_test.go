package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/telemetry"
)

var (
	allowedLocal    = ratelimit.Decision{Allowed: true, Source: ratelimit.SourceLocal}
	allowedRedis    = ratelimit.Decision{Allowed: true, Source: ratelimit.SourceRedis}
	allowedFallback = ratelimit.Decision{Allowed: true, Source: ratelimit.SourceFallback}
	deniedLocal     = ratelimit.Decision{Source: ratelimit.SourceLocal}
	deniedRedis     = ratelimit.Decision{Source: ratelimit.SourceRedis}
	deniedFallback  = ratelimit.Decision{Source: ratelimit.SourceFallback}
)

// TestDecisions runs a known sequence of decisions, shadowings and
// failures through a wrapped fake and checks every series of the decision
// metrics.
func TestDecisions(t *testing.T) {
	mp, r := newReader(t)
	storeErr := &ratelimit.StoreError{Op: "gcra", Key: "k", Err: errors.New("connection refused")}
	steps := []struct {
		s      step
		times  int
		shadow bool // the caller shadows the denial
	}{
		{s: step{d: allowedLocal}, times: 5},
		{s: step{d: allowedRedis}, times: 2},
		{s: step{d: deniedLocal}, times: 4},
		{s: step{d: deniedLocal}, times: 3, shadow: true},
		{s: step{d: deniedRedis}, times: 1},
		{s: step{d: deniedRedis}, times: 2, shadow: true},
		{s: step{d: allowedFallback}, times: 6},
		{s: step{d: deniedFallback}, times: 5},
		{s: step{d: deniedFallback, err: storeErr}, times: 2}, // FailClosed: a decision, not a failed check
		{s: step{d: deniedRedis, err: storeErr}, times: 1},    // Redis answered with an error
		{s: step{err: storeErr}, times: 1},
		{s: step{err: fmt.Errorf("lease refill: %w", context.DeadlineExceeded)}, times: 3},
		{s: step{err: &ratelimit.StoreError{Op: "lease refill", Key: "k", Err: lease.ErrRefillWait}}, times: 1},
		{s: step{err: context.Canceled}, times: 1},
		{s: step{err: ratelimit.ErrInvalidKey}, times: 1},
		{s: step{err: ratelimit.ErrInvalidN}, times: 1},
		{s: step{err: ratelimit.ErrClosed}, times: 2},
		{s: step{err: errors.New("boom")}, times: 1},
	}
	var f fakeLimiter
	for _, s := range steps {
		for range s.times {
			f.steps = append(f.steps, s.s)
		}
	}
	tl, err := telemetry.Wrap(&f, telemetry.WithMeterProvider(mp), telemetry.WithLimit("free", ""), telemetry.WithSampleEvery(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := 0
	for _, s := range steps {
		for range s.times {
			calls++
			d, err := tl.AllowN(ctx, "client-1", 1)
			if d != s.s.d || !errors.Is(err, s.s.err) {
				t.Fatalf("AllowN = %+v, %v; want the inner limiter's %+v, %v", d, err, s.s.d, s.s.err)
			}
			if s.shadow {
				tl.RecordShadowed(d)
			}
		}
	}
	tl.RecordShadowed(allowedLocal) // ignored: not a denial

	got := collect(t, r)
	const tier = "ratelimit.tier=free"
	wantDecisions := map[string]int64{
		"ratelimit.result=allowed,ratelimit.source=local," + tier:     5,
		"ratelimit.result=allowed,ratelimit.source=redis," + tier:     2,
		"ratelimit.result=allowed,ratelimit.source=fallback," + tier:  6,
		"ratelimit.result=denied,ratelimit.source=local," + tier:      4,
		"ratelimit.result=denied,ratelimit.source=redis," + tier:      1,
		"ratelimit.result=denied,ratelimit.source=fallback," + tier:   7,
		"ratelimit.result=shadowed,ratelimit.source=local," + tier:    3,
		"ratelimit.result=shadowed,ratelimit.source=redis," + tier:    2,
		"ratelimit.result=shadowed,ratelimit.source=fallback," + tier: 0,
	}
	assertInts(t, got, "ratelimit.decisions", wantDecisions)
	assertInts(t, got, "ratelimit.decision.errors", map[string]int64{
		"error.type=store," + tier:    2,
		"error.type=timeout," + tier:  4,
		"error.type=canceled," + tier: 1,
		"error.type=invalid," + tier:  2,
		"error.type=closed," + tier:   2,
		"error.type=other," + tier:    1,
	})
	// The failure policy's decisions count once: in ratelimit.decisions.
	if m, ok := got["ratelimit.fallback.decisions"]; ok {
		t.Errorf("%s reported: %v", "ratelimit.fallback.decisions", ints(t, m))
	}

	// Every call was timed (WithSampleEvery(1)), shadowing aside: the
	// histogram counts the calls by what the decision was at the time.
	h := histCounts(t, got["ratelimit.decision.duration"])
	var total uint64
	for _, n := range h {
		total += n
	}
	if total != uint64(calls) {
		t.Errorf("%s counts %d decisions, want %d: %v", "ratelimit.decision.duration", total, calls, h)
	}
	if n := h["ratelimit.result=denied,ratelimit.source=local,"+tier]; n != 7 {
		t.Errorf("histogram count of local denials = %d, want 7 (4 denied + 3 shadowed later)", n)
	}
	if n := h["error.type=timeout,"+tier]; n != 4 {
		t.Errorf("histogram count of timeouts = %d, want 4", n)
	}
	hd := got["ratelimit.decision.duration"].Data.(metricdata.Histogram[float64])
	for _, p := range hd.DataPoints {
		if p.Bounds[0] != 100e-9 || p.Bounds[len(p.Bounds)-1] != 1 {
			t.Errorf("histogram bounds %v, want 100ns … 1s", p.Bounds)
			break
		}
	}
}

// assertInts checks that metric name has exactly the points want.
func assertInts(t *testing.T, got map[string]metricdata.Metrics, name string, want map[string]int64) {
	t.Helper()
	m, ok := got[name]
	if !ok {
		t.Errorf("metric %s not reported", name)
		return
	}
	pts := ints(t, m)
	for k, v := range want {
		if g, ok := pts[k]; !ok || g != v {
			t.Errorf("%s{%s} = %d (reported %v), want %d", name, k, g, ok, v)
		}
	}
	for k, v := range pts {
		if _, ok := want[k]; !ok {
			t.Errorf("%s{%s} = %d reported, want no such series", name, k, v)
		}
	}
}

// TestNoTierAttribute checks that without WithLimit the
// attributes are left out, and that WithLimit sets ratelimit.limit.
func TestNoTierAttribute(t *testing.T) {
	mp, r := newReader(t)
	a, err := telemetry.Wrap(constLimiter{allowedLocal}, telemetry.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	b, err := telemetry.Wrap(constLimiter{allowedRedis}, telemetry.WithMeterProvider(mp),
		telemetry.WithLimit("pro", "per-second"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = a.Allow(context.Background(), "k")
	_, _ = b.Allow(context.Background(), "k")
	pts := ints(t, collect(t, r)["ratelimit.decisions"])
	if v := pts["ratelimit.result=allowed,ratelimit.source=local"]; v != 1 {
		t.Errorf("untiered allowed/local = %d, want 1 (points %v)", v, pts)
	}
	if v := pts["ratelimit.limit=per-second,ratelimit.result=allowed,ratelimit.source=redis,ratelimit.tier=pro"]; v != 1 {
		t.Errorf("pro per-second allowed/redis = %d, want 1 (points %v)", v, pts)
	}
}

// TestSameTierTwice checks that two Limiters with the same attributes add
// up rather than overwrite each other.
func TestSameTierTwice(t *testing.T) {
	mp, r := newReader(t)
	var ls []*telemetry.Limiter
	for range 2 {
		l, err := telemetry.Wrap(constLimiter{deniedRedis}, telemetry.WithMeterProvider(mp), telemetry.WithLimit("free", ""))
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	for i := range 5 {
		_, _ = ls[i%2].Allow(context.Background(), "k")
	}
	pts := ints(t, collect(t, r)["ratelimit.decisions"])
	if v := pts["ratelimit.result=denied,ratelimit.source=redis,ratelimit.tier=free"]; v != 5 {
		t.Errorf("denied/redis = %d, want 5 from two limiters (points %v)", v, pts)
	}
}

// TestSampling checks that WithSampleEvery(n) times about one decision in
// n (n rounded up to a power of two), that zero keeps the default (64)
// and that a negative n times none.
func TestSampling(t *testing.T) {
	for _, tc := range []struct {
		every    int
		calls    int
		min, max uint64
	}{
		{every: 0, calls: 64000, min: 850, max: 1150},
		{every: -1, calls: 1000, min: 0, max: 0},
		{every: 1, calls: 1000, min: 1000, max: 1000},
		{every: 4, calls: 4000, min: 850, max: 1150},
		{every: 64, calls: 64000, min: 850, max: 1150},
		{every: 100, calls: 12800, min: 90, max: 110}, // rounded up to 128
	} {
		t.Run(fmt.Sprintf("every=%d", tc.every), func(t *testing.T) {
			mp, r := newReader(t)
			l, err := telemetry.Wrap(constLimiter{allowedLocal}, telemetry.WithMeterProvider(mp), telemetry.WithSampleEvery(tc.every))
			if err != nil {
				t.Fatal(err)
			}
			for range tc.calls {
				_, _ = l.Allow(context.Background(), "k")
			}
			got := collect(t, r)
			var n uint64
			if m, ok := got["ratelimit.decision.duration"]; ok {
				for _, c := range histCounts(t, m) {
					n += c
				}
			}
			if n < tc.min || n > tc.max {
				t.Errorf("%d of %d decisions timed, want %d to %d", n, tc.calls, tc.min, tc.max)
			}
			if v := ints(t, got["ratelimit.decisions"])["ratelimit.result=allowed,ratelimit.source=local"]; v != int64(tc.calls) {
				t.Errorf("counted %d decisions, want all %d whatever the sampling", v, tc.calls)
			}
		})
	}
}

// TestShadowedMonotonic checks that shadowing after a collection never
// makes the reported denied count go down, and that the counts settle on
// the partition once new denials arrive.
func TestShadowedMonotonic(t *testing.T) {
	mp, r := newReader(t)
	l, err := telemetry.Wrap(constLimiter{deniedLocal}, telemetry.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	const denied, shadowed = "ratelimit.result=denied,ratelimit.source=local", "ratelimit.result=shadowed,ratelimit.source=local"
	ctx := context.Background()
	var ds []ratelimit.Decision
	for range 3 {
		d, _ := l.Allow(ctx, "k")
		ds = append(ds, d)
	}
	steps := []struct {
		do                   func()
		wantDenied, wantShad int64
	}{
		{func() {}, 3, 0},
		// Shadowed after being reported as denied: denied holds at 3.
		{func() { l.RecordShadowed(ds[0]); l.RecordShadowed(ds[1]) }, 3, 2},
		// One new denial: 4 denials of which 2 shadowed, but denied
		// cannot fall to 2; it stays at 3 until the count catches up.
		{func() { _, _ = l.Allow(ctx, "k") }, 3, 2},
		{func() { _, _ = l.Allow(ctx, "k"); _, _ = l.Allow(ctx, "k") }, 4, 2},
		{func() { l.RecordShadowed(ds[2]) }, 4, 3},
	}
	for i, s := range steps {
		s.do()
		pts := ints(t, collect(t, r)["ratelimit.decisions"])
		if pts[denied] != s.wantDenied || pts[shadowed] != s.wantShad {
			t.Errorf("step %d: denied %d, shadowed %d; want %d, %d", i, pts[denied], pts[shadowed], s.wantDenied, s.wantShad)
		}
	}
}

// TestConcurrent decides from many goroutines while collecting, and
// checks that nothing is lost and counters never decrease.
func TestConcurrent(t *testing.T) {
	mp, r := newReader(t)
	l, err := telemetry.Wrap(constLimiter{deniedRedis}, telemetry.WithMeterProvider(mp), telemetry.WithSampleEvery(8))
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 2000
	const denied, shadowed = "ratelimit.result=denied,ratelimit.source=redis", "ratelimit.result=shadowed,ratelimit.source=redis"
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range each {
				d, _ := l.Allow(context.Background(), "k")
				if i%4 == 0 {
					l.RecordShadowed(d)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var lastD, lastS int64
collecting:
	for range 1000 {
		select {
		case <-done:
			break collecting
		default:
		}
		pts := ints(t, collect(t, r)["ratelimit.decisions"])
		if pts[denied] < lastD || pts[shadowed] < lastS {
			t.Fatalf("counts went down: denied %d → %d, shadowed %d → %d", lastD, pts[denied], lastS, pts[shadowed])
		}
		lastD, lastS = pts[denied], pts[shadowed]
	}
	<-done
	pts := ints(t, collect(t, r)["ratelimit.decisions"])
	const total, shad = goroutines * each, goroutines * each / 4
	if pts[shadowed] != shad || pts[denied] != total-shad {
		t.Errorf("denied %d, shadowed %d; want %d, %d", pts[denied], pts[shadowed], total-shad, shad)
	}
}

// TestNoopProvider checks that with the no-op provider the Limiter only
// forwards, allocating nothing.
func TestNoopProvider(t *testing.T) {
	f := &fakeLimiter{steps: []step{{d: allowedLocal}}}
	l, err := telemetry.Wrap(f, telemetry.WithMeterProvider(noop.NewMeterProvider()))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := l.Allow(context.Background(), "k"); err != nil || d != allowedLocal || f.calls.Load() != 1 {
		t.Errorf("Allow = %+v, %v after %d inner calls; want the inner decision after 1", d, err, f.calls.Load())
	}
	l.RecordShadowed(deniedLocal)
	c := constLimiter{allowedLocal}
	nl, _ := telemetry.Wrap(c, telemetry.WithMeterProvider(noop.NewMeterProvider()))
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = nl.Allow(ctx, "k") }); n != 0 {
		t.Errorf("no-op Allow allocates %v times per call, want 0", n)
	}
}

// TestAllocs checks that a decision allocates nothing with the SDK
// recording, even when every decision is timed.
func TestAllocs(t *testing.T) {
	mp, _ := newReader(t)
	ctx := context.Background()
	for _, every := range []int{1, 64} {
		l, err := telemetry.Wrap(constLimiter{allowedLocal}, telemetry.WithMeterProvider(mp), telemetry.WithSampleEvery(every))
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() { _, _ = l.Allow(ctx, "k") }); n != 0 {
			t.Errorf("sample every %d: Allow allocates %v times per call, want 0", every, n)
		}
		if n := testing.AllocsPerRun(1000, func() { l.RecordShadowed(deniedLocal) }); n != 0 {
			t.Errorf("RecordShadowed allocates %v times per call, want 0", n)
		}
	}
}

// TestRefundAndClose checks forwarding of RefundN and Close, and that a
// closed Limiter stops reporting.
func TestRefundAndClose(t *testing.T) {
	mp, r := newReader(t)
	ctx := context.Background()

	rf := &refundingFake{fakeLimiter{steps: []step{{d: allowedLocal}}}}
	l, err := telemetry.Wrap(rf, telemetry.WithMeterProvider(mp), telemetry.WithLimit("a", ""))
	if err != nil {
		t.Fatal(err)
	}
	if !l.CanRefund() || l.RefundN(ctx, "k", 1) != nil || rf.refunds.Load() != 1 {
		t.Errorf("CanRefund %v, refunds %d; want a forwarded refund", l.CanRefund(), rf.refunds.Load())
	}
	if l.Unwrap() != ratelimit.Limiter(rf) {
		t.Errorf("Unwrap returned %v, want the wrapped limiter", l.Unwrap())
	}

	nr, err := telemetry.Wrap(constLimiter{allowedLocal}, telemetry.WithMeterProvider(mp), telemetry.WithLimit("b", ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := nr.RefundN(ctx, "k", 1); nr.CanRefund() || !errors.Is(err, algorithms.ErrRefundUnsupported) {
		t.Errorf("refund through a non-refunder: CanRefund %v, err %v; want false and ErrRefundUnsupported", nr.CanRefund(), err)
	}

	_, _ = l.Allow(ctx, "k")
	_, _ = nr.Allow(ctx, "k")
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil || rf.closes.Load() != 1 {
		t.Errorf("second Close: %v, inner closed %d times; want nil and once", err, rf.closes.Load())
	}
	if err := nr.Close(ctx); err != nil {
		t.Errorf("Close of a limiter without Close: %v", err)
	}
	if m, ok := collect(t, r)["ratelimit.decisions"]; ok {
		t.Errorf("closed limiters still report: %v", ints(t, m))
	}
	if _, err := telemetry.Wrap(nil); err == nil {
		t.Error("Wrap(nil) succeeded")
	}
}

// TestLeaseHitPath checks that Wrap refuses a leasing limiter, whose
// decisions ObserveLease counts; and, wrapping one hidden from it, that
// the lease's hit path with the wrapper still allocates nothing and is
// counted as local.
func TestLeaseHitPath(t *testing.T) {
	mp, r := newReader(t)
	l := newLease(t)
	if tl, err := telemetry.Wrap(l, telemetry.WithMeterProvider(mp)); err == nil || tl != nil {
		t.Fatalf("Wrap of a *lease.Limiter: %v, %v; want an error", tl, err)
	}
	tl, err := telemetry.Wrap(hiddenLease{Limiter: l}, telemetry.WithMeterProvider(mp), telemetry.WithLimit("free", ""), telemetry.WithSampleEvery(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if d, err := tl.Allow(ctx, "hot"); err != nil || !d.Allowed {
		t.Fatalf("warm-up: %+v, %v", d, err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = tl.Allow(ctx, "hot") }); n != 0 {
		t.Errorf("leased hit path with telemetry allocates %v times per call, want 0", n)
	}
	// 1,002 calls: the warm-up, AllocsPerRun's own warm-up and 1,000 runs.
	// While the lease's size ramps up a few wait for a refill (Source
	// redis); the rest are hits.
	pts := ints(t, collect(t, r)["ratelimit.decisions"])
	local := pts["ratelimit.result=allowed,ratelimit.source=local,ratelimit.tier=free"]
	redis := pts["ratelimit.result=allowed,ratelimit.source=redis,ratelimit.tier=free"]
	if local+redis != 1002 || local < 950 {
		t.Errorf("allowed: %d local + %d redis, want 1,002 with at least 950 hits (points %v)", local, redis, pts)
	}
}

// blockingLimiter answers each AllowN with the step it receives.
type blockingLimiter struct{ next chan step }

func (b blockingLimiter) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return b.AllowN(ctx, key, 1)
}

func (b blockingLimiter) AllowN(context.Context, string, int) (ratelimit.Decision, error) {
	s := <-b.next
	return s.d, s.err
}

// TestInFlight checks what a check in progress counts as: allowed and
// local (it is counted before the call), and that when it ends otherwise
// the allowed count holds rather than decreases, until new admissions make
// up for it.
func TestInFlight(t *testing.T) {
	mp, r := newReader(t)
	in := blockingLimiter{next: make(chan step)}
	l, err := telemetry.Wrap(in, telemetry.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const local, denied = "ratelimit.result=allowed,ratelimit.source=local", "ratelimit.result=denied,ratelimit.source=redis"
	check := func(when string, wantLocal, wantDenied int64) {
		t.Helper()
		pts := ints(t, collect(t, r)["ratelimit.decisions"])
		if pts[local] != wantLocal || pts[denied] != wantDenied {
			t.Errorf("%s: allowed/local %d, denied/redis %d; want %d, %d", when, pts[local], pts[denied], wantLocal, wantDenied)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = l.AllowN(ctx, "k", 1)
	}()
	// Wait until the check has been counted, bounded.
	for i := 0; i < 500; i++ {
		if ints(t, collect(t, r)["ratelimit.decisions"])[local] == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	check("in progress", 1, 0)
	in.next <- step{d: deniedRedis}
	<-done
	check("ended denied", 1, 1)
	go func() { in.next <- step{d: allowedLocal} }()
	_, _ = l.AllowN(ctx, "k", 1)
	check("one admission later", 1, 1)
	go func() { in.next <- step{d: allowedLocal} }()
	_, _ = l.AllowN(ctx, "k", 1)
	check("two admissions later", 2, 1)
}
