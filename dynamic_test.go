package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// plans is a LimitFunc over a map that the test changes, counting its
// calls per key.
type plans struct {
	mu    sync.Mutex
	of    map[string]ratelimit.Limit
	err   map[string]error
	calls map[string]int
}

func newPlans(of map[string]ratelimit.Limit) *plans {
	return &plans{of: of, err: map[string]error{}, calls: map[string]int{}}
}

func (p *plans) limit(_ context.Context, key string) (ratelimit.Limit, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[key]++
	if err := p.err[key]; err != nil {
		return ratelimit.Limit{}, err
	}
	lim, ok := p.of[key]
	if !ok {
		return ratelimit.Limit{}, fmt.Errorf("no plan for %q", key)
	}
	return lim, nil
}

func (p *plans) set(key string, lim ratelimit.Limit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.of[key] = lim
}

func (p *plans) callsOf(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[key]
}

// TestDynamicPlanChangeRealRedis: a key whose plan changes keeps its
// Redis state, which each algorithm reads under the new limit: the
// windows keep their count (a larger burst admits the difference at
// once), the token bucket its tokens (capped at a smaller burst), GCRA
// the time until the key is full (so a level in tokens of the new
// interval). Two instances share the server; limits of a year per period
// keep the real clock out of it.
func TestDynamicPlanChangeRealRedis(t *testing.T) {
	srv := redistest.Start(t)
	small, large := ratelimit.Per(5, ratelimit.MaxPeriod), ratelimit.Per(10, ratelimit.MaxPeriod)
	cases := []struct {
		name         string
		from, to     ratelimit.Limit
		spent        int
		afterChange  map[string]int // by algorithm: admitted under the new limit
		pastTheLimit bool           // spent is the whole burst of from
	}{
		{"burst grows after spending all 5 of 5", small, large, 5, map[string]int{
			"token_bucket": 0, "gcra": 0, "fixed_window": 5, "sliding_window": 5}, true},
		{"burst shrinks after spending 3 of 10", large, small, 3, map[string]int{
			"token_bucket": 5, "gcra": 3, "fixed_window": 2, "sliding_window": 2}, false},
	}
	for _, alg := range algorithms.All {
		t.Run(alg.Name(), func(t *testing.T) {
			prefix := redistest.Prefix(t)
			ks, err := ratelimit.NewKeyspace(prefix)
			if err != nil {
				t.Fatal(err)
			}
			p := newPlans(map[string]ratelimit.Limit{})
			var ds [2]*ratelimit.Dynamic[*algorithms.Limiter]
			for i := range ds {
				rdb := srv.Client()
				t.Cleanup(func() { rdb.Close() })
				ds[i] = ratelimit.NewDynamic(p.limit, func(lim ratelimit.Limit) (*algorithms.Limiter, error) {
					return algorithms.NewLimiter(rdb, lim, algorithms.WithAlgorithm(alg), algorithms.WithKeyspace(ks),
						algorithms.WithTimeout(time.Minute))
				})
			}
			ctx := t.Context()
			admit := func(key string, from int) int {
				t.Helper()
				n := 0
				for i := range 20 {
					d, err := ds[(from+i)%2].Allow(ctx, key)
					if err != nil {
						t.Fatal(err)
					}
					if !d.Allowed {
						// The other instance agrees.
						if d, err := ds[(from+i+1)%2].Allow(ctx, key); err != nil || d.Allowed {
							t.Fatalf("the other instance: %+v %v, want a denial", d, err)
						}
						return n
					}
					n++
				}
				return n
			}
			for ci, c := range cases {
				key := fmt.Sprintf("tenant-%d", ci)
				p.set(key, c.from)
				for i := range c.spent {
					if d, err := ds[i%2].Allow(ctx, key); err != nil || !d.Allowed || d.Limit != c.from {
						t.Fatalf("%s: request %d: %+v %v", c.name, i, d, err)
					}
				}
				p.set(key, c.to)
				if c.pastTheLimit {
					// Cached: the old plan still applies until invalidated.
					if d, err := ds[0].Allow(ctx, key); err != nil || d.Allowed || d.Limit != c.from {
						t.Fatalf("%s: before Invalidate: %+v %v, want the old limit's denial", c.name, d, err)
					}
				}
				calls := p.callsOf(key)
				for _, d := range ds {
					d.Invalidate(key)
				}
				if got, want := admit(key, 1), c.afterChange[alg.Name()]; got != want {
					t.Errorf("%s: %d admitted under %v, want %d", c.name, got, c.to, want)
				}
				if got := p.callsOf(key) - calls; got != 2 {
					t.Errorf("%s: %d plan lookups after Invalidate on 2 instances, want 2", c.name, got)
				}
			}
			// One Redis key per client key: the plan change reused it.
			keys, err := srv.Client().Keys(ctx, prefix+"*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(cases) {
				t.Errorf("Redis keys %v, want one per tenant", keys)
			}
		})
	}
}

// fake is a limiter that admits everything and reports its limit.
type fake struct {
	lim    ratelimit.Limit
	closed atomic.Int64
}

func (f *fake) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return f.AllowN(ctx, key, 1)
}

func (f *fake) AllowN(context.Context, string, int) (ratelimit.Decision, error) {
	return ratelimit.Decision{Allowed: true, Limit: f.lim, Remaining: f.lim.Burst - 1}, nil
}

func (f *fake) RefundN(context.Context, string, int) error      { return nil }
func (f *fake) SettleN(context.Context, string, int, int) error { return nil }
func (f *fake) Peek(context.Context, string) (ratelimit.Decision, error) {
	return ratelimit.Decision{Allowed: true, Limit: f.lim, Remaining: f.lim.Burst}, nil
}
func (f *fake) Reset(context.Context, string) error { return nil }
func (f *fake) Close(context.Context) error {
	if f.closed.Add(1) > 1 {
		return errors.New("closed twice")
	}
	return nil
}

// builder builds fakes, counting them.
type builder struct {
	mu    sync.Mutex
	built []*fake
	err   error
}

func (b *builder) build(lim ratelimit.Limit) (*fake, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return nil, b.err
	}
	f := &fake{lim: lim}
	b.built = append(b.built, f)
	return f, nil
}

func (b *builder) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.built)
}

// TestDynamicCache: limits are cached per key, for the TTL, at most the
// cache size of them, least recently used forgotten first, until
// invalidated; one limiter is built per distinct limit.
func TestDynamicCache(t *testing.T) {
	free, pro := ratelimit.PerMinute(10), ratelimit.PerMinute(100)
	p := newPlans(map[string]ratelimit.Limit{"a": free, "b": free, "c": pro, "d": free})
	var b builder
	clk := limitertest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	d := ratelimit.NewDynamic(p.limit, b.build, ratelimit.WithCache(3, time.Minute),
		ratelimit.WithCacheClock(clk), nil)
	ctx := t.Context()
	allow := func(key string) ratelimit.Limit {
		t.Helper()
		dec, err := d.Allow(ctx, key)
		if err != nil || !dec.Allowed {
			t.Fatalf("%s: %+v %v", key, dec, err)
		}
		return dec.Limit
	}
	checkedUnder := func(key string, want ratelimit.Limit) {
		t.Helper()
		if got := allow(key); got != want {
			t.Errorf("%s: checked under %v, want %v", key, got, want)
		}
	}
	calls := func() string {
		return fmt.Sprintf("a=%d b=%d c=%d d=%d", p.callsOf("a"), p.callsOf("b"), p.callsOf("c"), p.callsOf("d"))
	}
	steps := []struct {
		do    func()
		calls string
	}{
		{func() { allow("a"); allow("a"); allow("b"); allow("c") }, "a=1 b=1 c=1 d=0"},
		{func() { allow("a"); allow("d") }, "a=1 b=1 c=1 d=1"}, // b, least recently used, is forgotten
		{func() { allow("b") }, "a=1 b=2 c=1 d=1"},             // and c in its turn
		{func() { allow("a"); allow("d"); allow("b") }, "a=1 b=2 c=1 d=1"},
		{func() { clk.Advance(59 * time.Second); allow("a") }, "a=1 b=2 c=1 d=1"},
		{func() { clk.Advance(time.Second); allow("a"); allow("a") }, "a=2 b=2 c=1 d=1"}, // expired
		{func() { d.Invalidate("a"); allow("a"); allow("a") }, "a=3 b=2 c=1 d=1"},
		{func() { d.InvalidateAll(); allow("a"); allow("b"); allow("d") }, "a=4 b=3 c=1 d=2"},
		{func() { p.set("a", pro); checkedUnder("a", free) }, "a=4 b=3 c=1 d=2"}, // cached: the old plan
		{func() { d.Invalidate("a"); checkedUnder("a", pro); checkedUnder("b", free) }, "a=5 b=3 c=1 d=2"},
	}
	for i, s := range steps {
		s.do()
		if got := calls(); got != s.calls {
			t.Errorf("step %d: lookups %s, want %s", i, got, s.calls)
		}
	}
	if b.count() != 2 {
		t.Errorf("%d limiters built for 2 distinct limits", b.count())
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, f := range b.built {
		if f.closed.Load() != 1 {
			t.Errorf("limiter of %v closed %d times, want 1", f.lim, f.closed.Load())
		}
	}
	if _, err := d.Allow(ctx, "a"); !errors.Is(err, ratelimit.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

// onlyCheck is a limiter that can only check.
type onlyCheck struct{ f fake }

func (o *onlyCheck) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return o.f.Allow(ctx, key)
}

func (o *onlyCheck) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	return o.f.AllowN(ctx, key, n)
}

// TestDynamicErrors: a key whose limit cannot be had is refused with a
// LimitLookupError that unwraps to the cause, and nothing is cached.
func TestDynamicErrors(t *testing.T) {
	ctx := t.Context()
	down := errors.New("plans database down")
	p := newPlans(map[string]ratelimit.Limit{"ok": ratelimit.PerMinute(10), "bad": {Rate: 10}})
	p.err["down"] = down
	p.err["store"] = &ratelimit.StoreError{Op: "plan", Key: "store", Err: errors.New("timeout")}
	var b builder
	d := ratelimit.NewDynamic(p.limit, b.build)
	tests := []struct {
		key  string
		want []error
	}{
		{"down", []error{ratelimit.ErrLimitLookup, down}},
		{"store", []error{ratelimit.ErrLimitLookup, ratelimit.ErrStore}},
		{"unknown", []error{ratelimit.ErrLimitLookup}},
		{"bad", []error{ratelimit.ErrLimitLookup, ratelimit.ErrInvalidLimit}},
		{"", []error{ratelimit.ErrInvalidKey}},
	}
	for _, tt := range tests {
		for range 2 {
			dec, err := d.Allow(ctx, tt.key)
			if dec.Allowed || dec != (ratelimit.Decision{}) {
				t.Errorf("%q: decision %+v, want the zero denial", tt.key, dec)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("%q: %v, want it to match %v", tt.key, err, w)
				}
			}
			var le *ratelimit.LimitLookupError
			if errors.As(err, &le) && le.Key != tt.key {
				t.Errorf("%q: LimitLookupError of key %q", tt.key, le.Key)
			}
			if err := d.RefundN(ctx, tt.key, 1); !errors.Is(err, tt.want[0]) {
				t.Errorf("%q: RefundN: %v", tt.key, err)
			}
		}
		if want := 4; tt.key != "" && p.callsOf(tt.key) != want {
			t.Errorf("%q: %d lookups for 4 calls, want %d: failures are not cached", tt.key, p.callsOf(tt.key), want)
		}
	}
	if p.callsOf("") != 0 {
		t.Error("an invalid key was looked up")
	}
	// The constructor fails.
	b.err = errors.New("no such algorithm")
	p.set("new", ratelimit.PerHour(7))
	if _, err := d.Allow(ctx, "new"); !errors.Is(err, ratelimit.ErrLimitLookup) || !errors.Is(err, b.err) {
		t.Errorf("constructor failing: %v", err)
	}
	b.err = nil
	// A limiter that cannot refund, settle, peek or reset.
	dc := ratelimit.NewDynamic(p.limit, func(lim ratelimit.Limit) (*onlyCheck, error) { return &onlyCheck{fake{lim: lim}}, nil })
	for name, err := range map[string]error{
		"RefundN": dc.RefundN(ctx, "ok", 1),
		"SettleN": dc.SettleN(ctx, "ok", 1, 2),
		"Reset":   dc.Reset(ctx, "ok"),
	} {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s of a limiter that cannot: %v", name, err)
		}
	}
	if _, err := dc.Peek(ctx, "ok"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Peek of a limiter that cannot: %v", err)
	}
	if dec, err := dc.Allow(ctx, "ok"); err != nil || !dec.Allowed {
		t.Errorf("Allow: %+v %v", dec, err)
	}
	// Delegation when the limiter can.
	if err := d.SettleN(ctx, "ok", 1, 2); err != nil {
		t.Error(err)
	}
	if dec, err := d.Peek(ctx, "ok"); err != nil || dec.Remaining != 10 {
		t.Errorf("Peek: %+v %v", dec, err)
	}
	if err := d.Reset(ctx, "ok"); err != nil {
		t.Error(err)
	}
}

// TestDynamicLookupShared: the requests of a key that miss the cache
// together share one LimitFunc call; one that gives up returns its
// context's error without cancelling the call; a call in flight when the
// key is invalidated is not cached.
func TestDynamicLookupShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		var calls atomic.Int64
		limitOf := func(ctx context.Context, key string) (ratelimit.Limit, error) {
			calls.Add(1)
			select {
			case <-gate:
				return ratelimit.PerMinute(10), nil
			case <-ctx.Done():
				return ratelimit.Limit{}, ctx.Err()
			}
		}
		var b builder
		d := ratelimit.NewDynamic(limitOf, b.build, ratelimit.WithLookupTimeout(time.Hour))
		ctx := context.Background()
		var wg sync.WaitGroup
		var admitted atomic.Int64
		for range 50 {
			wg.Go(func() {
				if dec, err := d.Allow(ctx, "k"); err == nil && dec.Allowed {
					admitted.Add(1)
				}
			})
		}
		gone, cancel := context.WithCancel(ctx)
		var goneErr error
		wg.Go(func() { _, goneErr = d.Allow(gone, "k") })
		synctest.Wait()
		cancel()
		synctest.Wait()
		if !errors.Is(goneErr, context.Canceled) {
			t.Errorf("a caller that gave up: %v, want context.Canceled", goneErr)
		}
		d.Invalidate("k") // while the call is in flight
		close(gate)
		wg.Wait()
		if calls.Load() != 1 || admitted.Load() != 50 {
			t.Errorf("%d lookups, %d admitted; want 1, 50", calls.Load(), admitted.Load())
		}
		if _, err := d.Allow(ctx, "k"); err != nil || calls.Load() != 2 {
			t.Errorf("after an invalidation during the lookup: %v, %d lookups, want 2", err, calls.Load())
		}
		if _, err := d.Allow(ctx, "k"); err != nil || calls.Load() != 2 {
			t.Errorf("then cached: %v, %d lookups, want 2", err, calls.Load())
		}

		// The lookup timeout bounds a LimitFunc that hangs.
		slow := ratelimit.NewDynamic(func(ctx context.Context, _ string) (ratelimit.Limit, error) {
			<-ctx.Done()
			return ratelimit.Limit{}, ctx.Err()
		}, b.build, ratelimit.WithLookupTimeout(time.Second))
		start := time.Now()
		if _, err := slow.Allow(ctx, "k"); !errors.Is(err, ratelimit.ErrLimitLookup) || !errors.Is(err, context.DeadlineExceeded) ||
			time.Since(start) != time.Second {
			t.Errorf("a hanging LimitFunc: %v after %v", err, time.Since(start))
		}
	})
}

// TestDynamicConcurrent: concurrent checks, plan changes and
// invalidations (run with -race); every decision is made under a limit
// the key had, and once the plans stop changing and are invalidated,
// under the current one.
func TestDynamicConcurrent(t *testing.T) {
	limits := []ratelimit.Limit{ratelimit.PerMinute(1), ratelimit.PerMinute(2), ratelimit.PerMinute(3)}
	keys := []string{"k0", "k1", "k2", "k3", "k4"}
	p := newPlans(map[string]ratelimit.Limit{})
	for _, k := range keys {
		p.set(k, limits[0])
	}
	var b builder
	d := ratelimit.NewDynamic(p.limit, b.build, ratelimit.WithCache(3, 0))
	ctx := t.Context()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := keys[(g+i)%len(keys)]
				switch i % 50 {
				case 0:
					p.set(key, limits[(g+i)%len(limits)])
					d.Invalidate(key)
				case 25:
					d.InvalidateAll()
				}
				dec, err := d.Allow(ctx, key)
				if err != nil || !dec.Allowed || dec.Limit.Rate < 1 || dec.Limit.Rate > 3 {
					t.Errorf("%s: %+v %v", key, dec, err)
					return
				}
			}
		})
	}
	wg.Wait()
	d.InvalidateAll()
	for _, k := range keys {
		dec, err := d.Allow(ctx, k)
		p.mu.Lock()
		want := p.of[k]
		p.mu.Unlock()
		if err != nil || dec.Limit != want {
			t.Errorf("%s after the changes: %v %v, want %v", k, dec.Limit, err, want)
		}
	}
	if b.count() > len(limits) {
		t.Errorf("%d limiters built for %d limits", b.count(), len(limits))
	}
}

// TestDynamicLease: the leasing limiter is built per limit like any
// other, and closed with the Dynamic.
func TestDynamicLease(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	p := newPlans(map[string]ratelimit.Limit{"a": ratelimit.PerMinute(100), "b": ratelimit.PerMinute(1000)})
	var built []*lease.Limiter
	d := ratelimit.NewDynamic(p.limit, func(lim ratelimit.Limit) (*lease.Limiter, error) {
		l, err := lease.New(rdb, lim)
		if err == nil {
			built = append(built, l)
		}
		return l, err
	})
	ctx := t.Context()
	for _, key := range []string{"a", "b", "a"} {
		if dec, err := d.Allow(ctx, key); err != nil || !dec.Allowed || dec.Limit != p.of[key] {
			t.Fatalf("%s: %+v %v", key, dec, err)
		}
	}
	if len(built) != 2 {
		t.Fatalf("%d leasing limiters for 2 limits", len(built))
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, l := range built {
		if _, err := l.Allow(ctx, "a"); !errors.Is(err, ratelimit.ErrClosed) {
			t.Errorf("a leasing limiter after the Dynamic's Close: %v, want ErrClosed", err)
		}
	}
}

// TestDynamicHitAllocs: a check whose key's limit is cached allocates
// nothing beyond what its limiter does.
func TestDynamicHitAllocs(t *testing.T) {
	p := newPlans(map[string]ratelimit.Limit{"a": ratelimit.PerMinute(10)})
	var b builder
	d := ratelimit.NewDynamic(p.limit, b.build)
	ctx := context.Background()
	if _, err := d.Allow(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = d.Allow(ctx, "a") }); n != 0 {
		t.Errorf("%v allocations per cached check, want 0", n)
	}
}
