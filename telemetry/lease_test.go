package telemetry_test

import (
	"context"
	"sync"
	"testing"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/telemetry"
)

// newLease returns a leasing limiter with a limit too high to deny, on a
// real redis-server, closed when t ends.
func newLease(t testing.TB, opts ...lease.Option) *lease.Limiter {
	t.Helper()
	srv := redistest.Start(t)
	ks, err := ratelimit.NewKeyspace(redistest.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	lim := ratelimit.PerSecond(1 << 36).WithBurst(1 << 36)
	l, err := lease.New(srv.Client(), lim, append([]lease.Option{lease.WithKeyspace(ks)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

// fakeStats is a LeaseStats whose Stats the test sets.
type fakeStats struct {
	mu     sync.Mutex
	s      lease.Stats
	lim    ratelimit.Limit
	budget float64 // AccuracyBudget
}

func (f *fakeStats) Stats() lease.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *fakeStats) Limit() ratelimit.Limit { return f.lim }

func (f *fakeStats) set(s lease.Stats) {
	f.mu.Lock()
	f.s = s
	f.mu.Unlock()
}

func (f *fakeStats) AccuracyBudget() float64 { return f.budget }

// TestObserveLease checks that every Stats field lands in its metric with
// the tier and limit attributes, that counters never go down, and the
// circuit state gauge.
func TestObserveLease(t *testing.T) {
	mp, r := newReader(t)
	f := &fakeStats{lim: ratelimit.PerSecond(1000), budget: 0.1}
	f.set(lease.Stats{
		TokensLeased: 100, TokensServed: 70, TokensHeld: 20, TokensReturned: 10, TokensExpired: 8,
		Refills: 12, RefillErrors: 2, Prefetches: 9, Waits: 3, DeniedLocal: 4, RedisCalls: 15,
		Keys: 5, Evicted: 6, Overflow: 7, ReturnErrors: 1,
		Breaker: "closed",
	})
	reg, err := telemetry.ObserveLease(f, telemetry.WithMeterProvider(mp), telemetry.WithLimit("free", "per-second"))
	if err != nil {
		t.Fatal(err)
	}
	const a = "ratelimit.limit=per-second,ratelimit.tier=free"
	want := map[string]int64{
		"ratelimit.lease.tokens.leased":   100,
		"ratelimit.lease.tokens.served":   70,
		"ratelimit.lease.tokens.held":     20,
		"ratelimit.lease.tokens.returned": 10,
		"ratelimit.lease.tokens.expired":  8,
		"ratelimit.lease.tokens.budget":   100, // 0.1 × 1000
		"ratelimit.lease.refills":         12,
		"ratelimit.lease.refill.errors":   2,
		"ratelimit.lease.prefetches":      9,
		"ratelimit.lease.waits":           3,
		"ratelimit.lease.local_denials":   4,
		"ratelimit.lease.keys":            5,
		"ratelimit.lease.evictions":       6,
		"ratelimit.lease.overflows":       7,
		"ratelimit.lease.return.errors":   1,
	}
	got := collect(t, r)
	for name, v := range want {
		assertInts(t, got, name, map[string]int64{a: v})
	}
	assertInts(t, got, "ratelimit.circuit.state", map[string]int64{
		"ratelimit.circuit.state=closed," + a:    1,
		"ratelimit.circuit.state=open," + a:      0,
		"ratelimit.circuit.state=half-open," + a: 0,
	})
	// Decisions of the failure policy count in ratelimit.decisions
	// (TestObserveLeaseDecisions), never apart.
	for _, name := range []string{"ratelimit.lease.fallbacks", "ratelimit.fallback.decisions"} {
		if m, ok := got[name]; ok {
			t.Errorf("%s reported: %v", name, ints(t, m))
		}
	}

	// Served dips (Stats derives it from totals read one by one) and held
	// falls: the counter holds, the gauge follows.
	f.set(lease.Stats{TokensLeased: 110, TokensServed: 65, TokensHeld: 3, Breaker: "open"})
	got = collect(t, r)
	assertInts(t, got, "ratelimit.lease.tokens.served", map[string]int64{a: 70})
	assertInts(t, got, "ratelimit.lease.tokens.leased", map[string]int64{a: 110})
	assertInts(t, got, "ratelimit.lease.tokens.held", map[string]int64{a: 3})
	assertInts(t, got, "ratelimit.lease.refills", map[string]int64{a: 12})
	assertInts(t, got, "ratelimit.circuit.state", map[string]int64{
		"ratelimit.circuit.state=closed," + a:    0,
		"ratelimit.circuit.state=open," + a:      1,
		"ratelimit.circuit.state=half-open," + a: 0,
	})

	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if m, ok := collect(t, r)["ratelimit.lease.tokens.leased"]; ok {
		t.Errorf("still reported after Unregister: %v", ints(t, m))
	}
}

// TestLeaseBreakerFromStats checks that the circuit state comes from
// Stats.Breaker.
func TestLeaseBreakerFromStats(t *testing.T) {
	mp, r := newReader(t)
	f := &fakeStats{lim: ratelimit.PerSecond(100), s: lease.Stats{Breaker: "half-open"}}
	if _, err := telemetry.ObserveLease(f, telemetry.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	assertInts(t, collect(t, r), "ratelimit.circuit.state", map[string]int64{
		"ratelimit.circuit.state=closed":    0,
		"ratelimit.circuit.state=open":      0,
		"ratelimit.circuit.state=half-open": 1,
	})
}

// TestLeaseBudget checks where the budget gauge's value comes from: the
// limiter's AccuracyBudget, or the lease package's default when that is
// outside (0, 1]; and that it is at least 1.
func TestLeaseBudget(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    telemetry.LeaseStats
		want int64
	}{
		{"method", &fakeStats{lim: ratelimit.PerSecond(1000), budget: 0.2}, 200},
		{"zero", &fakeStats{lim: ratelimit.PerSecond(1000)}, 50},
		{"over one", &fakeStats{lim: ratelimit.PerSecond(1000), budget: 2}, 50},
		{"floor", &fakeStats{lim: ratelimit.PerSecond(30)}, 1}, // 0.05 × 30 = 1.5
		{"at least one", &fakeStats{lim: ratelimit.PerSecond(10)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mp, r := newReader(t)
			if _, err := telemetry.ObserveLease(tc.l, telemetry.WithMeterProvider(mp)); err != nil {
				t.Fatal(err)
			}
			got := collect(t, r)
			assertInts(t, got, "ratelimit.lease.tokens.budget", map[string]int64{"": tc.want})
			if _, ok := got["ratelimit.circuit.state"]; ok {
				t.Error("circuit state reported though Stats does not know it")
			}
		})
	}
	if _, err := telemetry.ObserveLease(nil); err == nil {
		t.Error("ObserveLease(nil) succeeded")
	}
}

// TestObserveRealLease observes a leasing limiter on a real redis-server
// after a known number of admissions.
func TestObserveRealLease(t *testing.T) {
	mp, r := newReader(t)
	l := newLease(t)
	if _, err := telemetry.ObserveLease(l, telemetry.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 100 {
		if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
			t.Fatalf("Allow %d: %+v, %v", i, d, err)
		}
	}
	got := collect(t, r)
	leased := ints(t, got["ratelimit.lease.tokens.leased"])[""]
	served := ints(t, got["ratelimit.lease.tokens.served"])[""]
	held := ints(t, got["ratelimit.lease.tokens.held"])[""]
	keys := ints(t, got["ratelimit.lease.keys"])[""]
	refills := ints(t, got["ratelimit.lease.refills"])[""]
	if served != 100 || leased < served || held != leased-served || keys != 1 || refills < 1 {
		t.Errorf("leased %d, served %d, held %d, keys %d, refills %d; want 100 served of the leased, the rest held, 1 key, a refill",
			leased, served, held, keys, refills)
	}
	if st := ints(t, got["ratelimit.circuit.state"]); st["ratelimit.circuit.state=closed"] != 1 || st["ratelimit.circuit.state=open"] != 0 {
		t.Errorf("circuit state %v, want the lease breaker's: closed", st)
	}
	budget := ints(t, got["ratelimit.lease.tokens.budget"])[""]
	if want := int64(lease.DefaultAccuracyBudget * float64(l.Limit().Burst)); budget != want {
		t.Errorf("budget %d, want %d", budget, want)
	}
}

// TestObserveLeaseDecisions checks that ObserveLease reports a leasing
// limiter's decisions from its own counts, by result and source.
func TestObserveLeaseDecisions(t *testing.T) {
	mp, r := newReader(t)
	f := &fakeStats{lim: ratelimit.PerSecond(1000)}
	f.set(lease.Stats{AllowedLocal: 900, AllowedRedis: 50, AllowedFallback: 3, DeniedLocal: 40, DeniedRedis: 6, DeniedFallback: 1})
	if _, err := telemetry.ObserveLease(f, telemetry.WithMeterProvider(mp), telemetry.WithLimit("pro", "")); err != nil {
		t.Fatal(err)
	}
	got := ints(t, collect(t, r)["ratelimit.decisions"])
	const tier = ",ratelimit.tier=pro"
	want := map[string]int64{
		"ratelimit.result=allowed,ratelimit.source=local" + tier:    900,
		"ratelimit.result=allowed,ratelimit.source=redis" + tier:    50,
		"ratelimit.result=allowed,ratelimit.source=fallback" + tier: 3,
		"ratelimit.result=denied,ratelimit.source=local" + tier:     40,
		"ratelimit.result=denied,ratelimit.source=redis" + tier:     6,
		"ratelimit.result=denied,ratelimit.source=fallback" + tier:  1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s{%s} = %d, want %d (all: %v)", "ratelimit.decisions", k, got[k], v, got)
		}
	}
}
