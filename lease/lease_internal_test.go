package lease

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
)

// newFakeClock returns a settable ratelimit.Clock.
func newFakeClock() *limitertest.Clock { return limitertest.NewClock(time.Unix(1_700_000_000, 0)) }

// fakeBucket is an in-memory Bucket that never refills by itself: tokens
// change only by takes and returns, so tests can count exactly.
type fakeBucket struct {
	mu       sync.Mutex
	tokens   int
	retry    time.Duration
	ahead    time.Duration // when set, what TakeUpTo grants is granted ahead: due from then after the reply
	err      error         // returned by every call when set
	block    chan struct{} // when set, calls wait for it to close or ctx
	takes    []int         // n of each TakeUpTo
	charged  int64         // tokens charged by TakeUpTo and Charge
	returned int
}

func (b *fakeBucket) wait(ctx context.Context) error {
	b.mu.Lock()
	block, err := b.block, b.err
	b.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (b *fakeBucket) TakeUpTo(ctx context.Context, _ string, lim ratelimit.Limit, n int, c algorithms.Charge) (algorithms.Grant, error) {
	if err := b.wait(ctx); err != nil {
		return algorithms.Grant{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.takes = append(b.takes, n)
	if c.Tokens > 0 {
		b.charged += c.Tokens
		b.tokens = max(b.tokens-int(c.Tokens), -lim.Burst)
	}
	g := max(min(n, b.tokens), 0)
	b.tokens -= g
	r := algorithms.Grant{Granted: g, Remaining: max(b.tokens, 0)}
	if g == 0 {
		r.RetryAfter = b.retry
	} else if b.ahead > 0 {
		r.RetryAfter = b.ahead
	}
	return r, nil
}

func (b *fakeBucket) Return(ctx context.Context, _ string, lim ratelimit.Limit, n int) error {
	if err := b.wait(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.tokens+n, lim.Burst)
	b.returned += n
	return nil
}

func (b *fakeBucket) Peek(ctx context.Context, _ string, lim ratelimit.Limit) (ratelimit.Decision, error) {
	if err := b.wait(ctx); err != nil {
		return ratelimit.Decision{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return ratelimit.Decision{Allowed: b.tokens >= 1, Limit: lim, Remaining: max(b.tokens, 0), Source: ratelimit.SourceRedis}, nil
}

func (b *fakeBucket) Charge(ctx context.Context, _ string, lim ratelimit.Limit, n int) error {
	if err := b.wait(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = max(b.tokens-n, -lim.Burst)
	b.charged += int64(n)
	return nil
}

func (b *fakeBucket) Reset(ctx context.Context, _ string, lim ratelimit.Limit) error {
	if err := b.wait(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = lim.Burst
	return nil
}

func (b *fakeBucket) state() (tokens, returned int, takes []int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tokens, b.returned, append([]int(nil), b.takes...)
}

func newTestLimiter(t *testing.T, b *fakeBucket, lim ratelimit.Limit, opts ...Option) (*Limiter, *limitertest.Clock) {
	t.Helper()
	clk := newFakeClock()
	// A long TTL keeps the background janitor out of the way: tests call
	// sweep themselves after moving the fake clock.
	opts = append([]Option{withBucket(b), WithClock(clk), WithLeaseTTL(time.Hour)}, opts...)
	l, err := New(nil, lim, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l, clk
}

func TestAllowNValidation(t *testing.T) {
	l, _ := newTestLimiter(t, &fakeBucket{tokens: 10}, ratelimit.PerSecond(10))
	ctx := context.Background()
	long := string(make([]byte, ratelimit.MaxKeyLen+1))
	cases := []struct {
		name string
		key  string
		n    int
		want error
	}{
		{"empty key", "", 1, ratelimit.ErrInvalidKey},
		{"oversized key", long, 1, ratelimit.ErrInvalidKey},
		{"zero n", "k", 0, ratelimit.ErrInvalidN},
		{"negative n", "k", -1, ratelimit.ErrInvalidN},
		{"n above burst", "k", 11, ratelimit.ErrInvalidN},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := l.AllowN(ctx, c.key, c.n); !errors.Is(err, c.want) {
				t.Fatalf("AllowN(%q, %d) error = %v, want %v", c.key, c.n, err, c.want)
			}
			if err := l.RefundN(ctx, c.key, c.n); !errors.Is(err, c.want) {
				t.Fatalf("RefundN(%q, %d) error = %v, want %v", c.key, c.n, err, c.want)
			}
		})
	}
	if _, err := New(nil, ratelimit.Limit{}, withBucket(&fakeBucket{})); !errors.Is(err, ratelimit.ErrInvalidLimit) {
		t.Fatalf("New with zero limit: %v, want ErrInvalidLimit", err)
	}
	if _, err := New(nil, ratelimit.PerSecond(1)); err == nil {
		t.Fatal("New with neither client nor bucket succeeded")
	}
}

func TestServesOnlyWhatRedisGranted(t *testing.T) {
	b := &fakeBucket{tokens: 25, retry: time.Second}
	l, _ := newTestLimiter(t, b, ratelimit.PerSecond(1000).WithBurst(1000))
	ctx := context.Background()
	admitted := 0
	for i := 0; i < 100; i++ {
		d, err := l.Allow(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			admitted++
		}
	}
	if admitted != 25 {
		t.Fatalf("admitted %d, want exactly the 25 tokens the bucket held", admitted)
	}
	if s := l.Stats(); s.TokensServed != 25 || s.TokensLeased != 25 || s.TokensHeld != 0 {
		t.Fatalf("stats %+v: want 25 leased, 25 served, 0 held", s)
	}
}

func TestDenialRememberedUntilRetry(t *testing.T) {
	b := &fakeBucket{tokens: 1, retry: 200 * time.Millisecond}
	l, clk := newTestLimiter(t, b, ratelimit.PerSecond(5))
	ctx := context.Background()
	if d, _ := l.Allow(ctx, "k"); !d.Allowed {
		t.Fatal("first request denied")
	}
	d, err := l.Allow(ctx, "k")
	if err != nil || d.Allowed {
		t.Fatalf("second request: %+v, %v; want a denial", d, err)
	}
	if d.RetryAfter < 200*time.Millisecond {
		t.Fatalf("RetryAfter %v, want at least the script's 200ms", d.RetryAfter)
	}
	calls := l.Stats().RedisCalls
	for i := 0; i < 50; i++ {
		d, err := l.Allow(ctx, "k")
		if err != nil || d.Allowed || d.Source != ratelimit.SourceLocal {
			t.Fatalf("request %d during remembered denial: %+v, %v", i, d, err)
		}
	}
	if got := l.Stats().RedisCalls; got != calls {
		t.Fatalf("remembered denials made %d Redis calls, want 0", got-calls)
	}
	b.mu.Lock()
	b.tokens = 1
	b.mu.Unlock()
	clk.Advance(d.RetryAfter)
	if d, _ := l.Allow(ctx, "k"); !d.Allowed {
		t.Fatalf("after RetryAfter the request is still denied: %+v", d)
	}
}

func TestLowTrafficKeyLeasesOneToken(t *testing.T) {
	b := &fakeBucket{tokens: 100, retry: time.Second}
	l, clk := newTestLimiter(t, b, ratelimit.PerSecond(100))
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		clk.Advance(time.Second) // one request per second
		if d, err := l.Allow(ctx, "slow"); err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v, %v", i, d, err)
		}
		if held := l.Stats().TokensHeld; held != 0 {
			t.Fatalf("after request %d this instance holds %d tokens, want 0", i, held)
		}
	}
	_, _, takes := b.state()
	for i, n := range takes {
		if n != 1 {
			t.Fatalf("lease %d asked for %d tokens, want 1: %v", i, n, takes)
		}
	}
}

func TestQuietKeyRefillsOnCallerGoroutine(t *testing.T) {
	b := &fakeBucket{tokens: 3, retry: time.Second}
	l, clk := newTestLimiter(t, b, ratelimit.PerSecond(100))
	l.honorsDeadline = true // the fake bucket honours contexts, like a ContextTimeoutEnabled client
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		clk.Advance(time.Second)
		d, err := l.Allow(ctx, "quiet")
		if err != nil || d.Allowed != (i < 3) {
			t.Fatalf("request %d: %+v, %v; want the 3 tokens, then denials", i, d, err)
		}
	}
	// Each request a second apart asked Redis: 3 grants, then 2 denials.
	if s := l.Stats(); s.Refills != 5 || s.Prefetches != 0 || s.TokensHeld != 0 || s.DeniedLocal != 0 {
		t.Fatalf("stats %+v: want 5 inline refills, no prefetch, nothing held, no local denial", s)
	}
	// At once again: the denial is remembered, with no Redis call.
	if d, err := l.Allow(ctx, "quiet"); err != nil || d.Allowed || d.Source != ratelimit.SourceLocal {
		t.Fatalf("%+v, %v: want a local denial", d, err)
	}
	if s := l.Stats(); s.Refills != 5 || s.DeniedLocal != 1 {
		t.Fatalf("stats %+v: want no new refill and one local denial", s)
	}
	// A caller whose context is already done makes no call.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	clk.Advance(time.Hour)
	if _, err := l.Allow(cctx, "quiet"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
}

func TestDecisionCounts(t *testing.T) {
	b := &fakeBucket{tokens: 3, retry: time.Second}
	l, _ := newTestLimiter(t, b, ratelimit.PerSecond(100), WithFailurePolicy(ratelimit.FailOpen))
	ctx := context.Background()
	for i := 0; i < 5; i++ { // 3 grants from Redis, its denial, then a remembered one
		_, _ = l.Allow(ctx, "k")
	}
	b.mu.Lock()
	b.err = errors.New("down")
	b.mu.Unlock()
	_, _ = l.Allow(ctx, "other") // fail open
	s := l.Stats()
	got := [...]int64{s.AllowedLocal, s.AllowedRedis, s.DeniedLocal, s.DeniedRedis, s.AllowedFallback, s.DeniedFallback}
	if want := [...]int64{0, 3, 1, 1, 1, 0}; got != want {
		t.Fatalf("decisions {local, redis, local denials, redis denials, fallback allowed, fallback denied} = %v, want %v", got, want)
	}

	hot, _ := newTestLimiter(t, &fakeBucket{tokens: 1 << 20}, ratelimit.PerSecond(1<<20), WithClock(ratelimit.SystemClock{}))
	for i := 0; i < 10_000; i++ {
		_, _ = hot.Allow(ctx, "hot")
	}
	waitRefills(t, hot)
	if s := hot.Stats(); s.AllowedLocal+s.AllowedRedis != 10_000 || s.AllowedLocal < 9_000 {
		t.Fatalf("hot key: %d local + %d redis admissions, want 10,000, nearly all local", s.AllowedLocal, s.AllowedRedis)
	}
	// Hit-path admissions are derived from the tokens taken (see
	// counters.hitAdmissions): requests of 3 tokens count once each, and
	// the extra cost SettleN takes from the lease is no admission.
	for i := 0; i < 100; i++ {
		if d, err := hot.AllowN(ctx, "hot", 3); err != nil || !d.Allowed {
			t.Fatalf("AllowN(3): %+v, %v", d, err)
		}
	}
	if err := hot.SettleN(ctx, "hot", 1, 6); err != nil {
		t.Fatal(err)
	}
	waitRefills(t, hot)
	if s := hot.Stats(); s.AllowedLocal+s.AllowedRedis != 10_100 || s.TokensServed != 10_305 {
		t.Fatalf("hot key after 100 × AllowN(3) and a settle of 5 more: %d local + %d redis admissions, %d tokens served; want 10,100 and 10,305",
			s.AllowedLocal, s.AllowedRedis, s.TokensServed)
	}
}

// TestSizeStaysInRange: lease sizes stay between what the caller needs and
// the burst, the short part within the long, for bursts up to MaxRate,
// where burst × budget × remote overflows int64 arithmetic.
func TestSizeStaysInRange(t *testing.T) {
	for _, burst := range []int{1, 5, 40, 1000, 1 << 36, ratelimit.MaxRate} {
		lim := ratelimit.PerSecond(ratelimit.MaxRate).WithBurst(burst)
		s := newSizer(burst, DefaultAccuracyBudget, DefaultHorizon, DefaultLeaseTTL, float64(lim.Period)/float64(lim.Rate))
		for _, remote := range []int64{-1, 0, 1, int64(burst) / 3, int64(burst)/2 - 1, int64(burst)} {
			for _, rate := range []float64{0, 1, 1e3, 1e9, 1e15} {
				n, short := s.size(rate, time.Millisecond, remote, 1)
				if short < 1 || short > n || n > int64(burst) {
					t.Fatalf("burst %d, remote %d, rate %g: size = %d, short %d; want 1 <= short <= n <= burst", burst, remote, rate, n, short)
				}
			}
		}
	}
}

func TestHotKeyLeasesGrowAndPrefetch(t *testing.T) {
	b := &fakeBucket{tokens: 1 << 30}
	l, _ := newTestLimiter(t, b, ratelimit.PerSecond(1<<30).WithBurst(1<<30), WithClock(ratelimit.SystemClock{}))
	ctx := context.Background()
	const requests = 200_000
	for i := 0; i < requests; i++ {
		if d, err := l.Allow(ctx, "hot"); err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v, %v", i, d, err)
		}
	}
	s := l.Stats()
	if s.RedisCalls*1000 > requests*10 {
		t.Fatalf("%d Redis calls for %d requests: want at most 10 per 1000", s.RedisCalls, requests)
	}
	if s.TokensServed != requests {
		t.Fatalf("served %d, want %d", s.TokensServed, requests)
	}
}

func TestHitPathDoesNotAllocate(t *testing.T) {
	b := &fakeBucket{tokens: 1 << 30}
	l, _ := newTestLimiter(t, b, ratelimit.PerSecond(1<<30).WithBurst(1<<30), WithClock(ratelimit.SystemClock{}))
	ctx := context.Background()
	for i := 0; i < 10_000; i++ {
		_, _ = l.Allow(ctx, "hot")
	}
	allocs := testing.AllocsPerRun(10_000, func() {
		if d, _ := l.Allow(ctx, "hot"); !d.Allowed {
			t.Fatal("denied on the hit path")
		}
	})
	if allocs != 0 {
		t.Fatalf("hit path allocates %v times per call, want 0", allocs)
	}
}

func TestExpiredLeaseIsGivenBack(t *testing.T) {
	b := &fakeBucket{tokens: 1000}
	l, clk := newTestLimiter(t, b, ratelimit.PerSecond(1000), WithAccuracyBudget(0.5))
	ctx := context.Background()
	// Build up demand so that leases grow beyond one token.
	for i := 0; i < 300; i++ {
		clk.Advance(time.Millisecond)
		if _, err := l.Allow(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	waitRefills(t, l)
	held := l.Stats().TokensHeld
	if held == 0 {
		t.Fatal("no tokens held after steady demand; the test needs some")
	}
	before, _, _ := b.state()
	clk.Advance(time.Hour) // the TTL: older than TTL - tick
	l.sweep()
	after, returned, _ := b.state()
	s := l.Stats()
	if s.TokensHeld != 0 || s.TokensExpired != held || returned != int(held) || after != before+int(held) {
		t.Fatalf("held %d before sweep; after: stats %+v, bucket %d→%d, returned %d", held, s, before, after, returned)
	}
}

func TestExpiryKeepsFreshGrants(t *testing.T) {
	e := newEntry("k", 0)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.add(10, 0)  // old grant
	e.add(5, 100) // fresh grant
	e.take(12)    // spends the 10 old tokens and 2 fresh ones
	got := e.expire(50)
	if got != 0 || e.tokens.Load() != 3 {
		t.Fatalf("expire took %d, left %d: want 0 and 3 (old grant fully spent)", got, e.tokens.Load())
	}
	e.add(4, 200)
	if got := e.expire(150); got != 3 || e.tokens.Load() != 4 {
		t.Fatalf("expire took %d, left %d: want the 3 unspent of the grant at 100, keep 4", got, e.tokens.Load())
	}
}

func TestIdleKeysEvictedAndCapped(t *testing.T) {
	b := &fakeBucket{tokens: 1 << 20}
	l, clk := newTestLimiter(t, b, ratelimit.PerSecond(1000), WithMaxKeys(10), withIdleTimeout(time.Hour))
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		key := string(rune('a'+i%26)) + string(rune('0'+i/26%10)) + string(rune('A'+i/260))
		if d, err := l.Allow(ctx, key); err != nil || !d.Allowed {
			t.Fatalf("key %q: %+v, %v", key, d, err)
		}
	}
	s := l.Stats()
	if s.Keys != 10 || s.Overflow == 0 {
		t.Fatalf("stats %+v: want 10 keys tracked and the rest overflowed", s)
	}
	l.sweep() // records activity
	clk.Advance(time.Hour)
	l.sweep()
	if s := l.Stats(); s.Keys != 0 || s.Evicted != 10 || s.TokensHeld != 0 {
		t.Fatalf("after idle timeout: %+v, want all 10 keys evicted and no tokens held", s)
	}
}

func TestRefillErrorAndWaitBounds(t *testing.T) {
	ctx := context.Background()
	t.Run("fail closed", func(t *testing.T) {
		b := &fakeBucket{err: errors.New("connection refused")}
		l, _ := newTestLimiter(t, b, ratelimit.PerSecond(10), WithFailurePolicy(ratelimit.FailClosed))
		d, err := l.Allow(ctx, "k")
		var se *ratelimit.StoreError
		if !errors.Is(err, ratelimit.ErrStore) || !errors.As(err, &se) || se.Key != "k" {
			t.Fatalf("error %v: want a StoreError for key k", err)
		}
		if d.Allowed || d.Source != ratelimit.SourceFallback {
			t.Fatalf("decision %+v: want a fallback denial", d)
		}
		if s := l.Stats(); s.DeniedFallback != 1 || s.RefillErrors != 1 {
			t.Fatalf("stats %+v: want one fail-closed decision after one refill error", s)
		}
	})
	t.Run("fail open", func(t *testing.T) {
		b := &fakeBucket{err: errors.New("connection refused")}
		l, _ := newTestLimiter(t, b, ratelimit.PerSecond(10), WithFailurePolicy(ratelimit.FailOpen))
		for i := 0; i < 50; i++ {
			d, err := l.Allow(ctx, "k")
			if err != nil || !d.Allowed || d.Source != ratelimit.SourceFallback {
				t.Fatalf("request %d: %+v, %v; want a fallback admission", i, d, err)
			}
		}
		if s := l.Stats(); s.AllowedFallback != 50 {
			t.Fatalf("stats %+v: want 50 fail-open decisions", s)
		}
	})
	t.Run("fail local", func(t *testing.T) {
		b := &fakeBucket{err: errors.New("connection refused")}
		// The default policy: 4 instances share 100/s burst 40 and this
		// key has no history, so this instance admits 25/s with a burst of
		// 10, starting empty: a fallback never invents a burst.
		l, clk := newTestLimiter(t, b, ratelimit.PerSecond(100).WithBurst(40), WithInstances(4))
		admitted := 0
		for i := 0; i < 50; i++ {
			d, err := l.Allow(ctx, "k")
			if err != nil || d.Source != ratelimit.SourceFallback {
				t.Fatalf("request %d: %+v, %v; want a fallback decision", i, d, err)
			}
			if d.Allowed {
				admitted++
			}
		}
		if admitted != 0 {
			t.Fatalf("admitted %d at once while Redis is down, want 0: the local bucket starts empty", admitted)
		}
		clk.Advance(time.Second)
		admitted = 0
		for i := 0; i < 50; i++ {
			if d, _ := l.Allow(ctx, "k"); d.Allowed {
				admitted++
			}
		}
		if admitted != 10 { // 25 tokens accrued, capped at the share's burst
			t.Fatalf("admitted %d one second later, want 10", admitted)
		}
	})
	t.Run("breaker opens", func(t *testing.T) {
		b := &fakeBucket{err: errors.New("connection refused")}
		l, clk := newTestLimiter(t, b, ratelimit.PerSecond(10), WithFailurePolicy(ratelimit.FailOpen))
		for i := 0; i < 10; i++ {
			// Past each key's fallback hold, within the breaker's cool-down.
			clk.Advance(150 * time.Millisecond)
			_, _ = l.Allow(ctx, "k")
			waitRefills(t, l) // the degraded key's background retry
		}
		// Five failures spanning more than the breaker's minimum span open
		// it; in the 0.75 s that follow, at most three probes (cool-down
		// 0.2 s to 0.3 s, every other call) reach Redis.
		s := l.Stats()
		// A retry may join the previous one in singleflight instead of
		// making its own call: 8 to 10 refill errors.
		if s.Breaker != "open" || s.RefillErrors < 8 || s.RefillErrors > 10 || s.RedisCalls < 5 || s.RedisCalls > 8 {
			t.Fatalf("stats %+v: want the breaker open and refused refills making no Redis call", s)
		}
	})
	t.Run("caller context", func(t *testing.T) {
		b := &fakeBucket{block: make(chan struct{})}
		defer close(b.block)
		l, _ := newTestLimiter(t, b, ratelimit.PerSecond(10), WithRefillTimeout(time.Minute), WithMaxWait(time.Minute))
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := l.Allow(cctx, "k")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want DeadlineExceeded", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("returned after %v with a 20ms deadline", el)
		}
	})
	t.Run("max wait", func(t *testing.T) {
		b := &fakeBucket{block: make(chan struct{})}
		defer close(b.block)
		l, _ := newTestLimiter(t, b, ratelimit.PerSecond(10), WithRefillTimeout(time.Minute),
			WithMaxWait(20*time.Millisecond), WithFailurePolicy(ratelimit.FailClosed))
		_, err := l.Allow(ctx, "k")
		if !errors.Is(err, ErrRefillWait) || !errors.Is(err, ratelimit.ErrStore) {
			t.Fatalf("error %v, want ErrRefillWait in a StoreError", err)
		}
	})
}

// TestRefundDestination: a refund stays in this instance's lease while
// the Redis bucket has plenty; a quiet key whose bucket is short gets it
// back in Redis, where the other instances find it (see minBatch); an
// unknown key's refund goes straight back to Redis.
func TestRefundDestination(t *testing.T) {
	for _, tc := range []struct {
		name           string
		redis          int // tokens in the bucket before the first Allow
		returned, held int // after the refund
	}{
		{"plenty", 100, 0, 1},
		{"short", 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBucket{tokens: tc.redis}
			l, _ := newTestLimiter(t, b, ratelimit.PerSecond(10))
			ctx := context.Background()
			if d, _ := l.Allow(ctx, "k"); !d.Allowed {
				t.Fatal("denied")
			}
			if err := l.RefundN(ctx, "k", 1); err != nil {
				t.Fatal(err)
			}
			if _, returned, _ := b.state(); returned != tc.returned {
				t.Fatalf("returned %d tokens to the bucket, want %d", returned, tc.returned)
			}
			if held := l.Stats().TokensHeld; held != int64(tc.held) {
				t.Fatalf("the instance holds %d tokens after the refund, want %d", held, tc.held)
			}
			if tc.held == 1 {
				if d, _ := l.Allow(ctx, "k"); !d.Allowed {
					t.Fatal("refunded token was not served")
				}
			}
			if err := l.RefundN(ctx, "other", 1); err != nil {
				t.Fatal(err)
			}
			if _, returned, _ := b.state(); returned != tc.returned+1 {
				t.Fatalf("an unknown key's refund: %d returned in all, want %d", returned, tc.returned+1)
			}
		})
	}
}

func TestCloseGivesBackAndIsIdempotent(t *testing.T) {
	b := &fakeBucket{tokens: 1000}
	clk := newFakeClock()
	l, err := New(nil, ratelimit.PerSecond(1000), withBucket(b), WithClock(clk), WithAccuracyBudget(0.5))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 300; i++ {
		clk.Advance(time.Millisecond)
		_, _ = l.Allow(ctx, "k")
	}
	waitRefills(t, l)
	served := l.Stats().TokensServed
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if tokens, _, _ := b.state(); int64(tokens) != 1000-served {
		t.Fatalf("bucket holds %d after Close, want 1000 - %d served", tokens, served)
	}
	if _, err := l.Allow(ctx, "k"); !errors.Is(err, ratelimit.ErrClosed) {
		t.Fatalf("Allow after Close: %v, want ErrClosed", err)
	}
}

// TestLongOutageKeepsTheBoundAndTheKey: Redis down for 70 s under
// FailLocal, 20 requests/s on a PerHour(100) key that spent its burst
// first: admitted in all at most burst + rate × T, and the key stays
// tracked through the janitor's passes (it is in use), so it never comes
// back with a fresh fallback bucket.
func TestLongOutageKeepsTheBoundAndTheKey(t *testing.T) {
	lim := ratelimit.PerHour(100)
	b := &fakeBucket{tokens: lim.Burst}
	l, clk := newTestLimiter(t, b, lim, WithLeaseTTL(time.Second))
	ctx := context.Background()
	admitted := 0
	allow := func() {
		clk.Advance(50 * time.Millisecond)
		if d, err := l.Allow(ctx, "k"); err != nil {
			t.Fatal(err)
		} else if d.Allowed {
			admitted++
		}
		waitRefills(t, l)
	}
	for i := 0; i < 200; i++ { // 10 s healthy: the burst, then denials
		allow()
	}
	b.mu.Lock()
	b.err = errors.New("connection refused")
	b.mu.Unlock()
	const outage = 70 * time.Second
	for i := 0; i < int(outage/(50*time.Millisecond)); i++ {
		allow()
		if i%20 == 0 {
			l.sweep() // the janitor, once a second
		}
	}
	total := 80 * time.Second
	bound := lim.Burst + int(lim.PerSecondRate()*total.Seconds()) + 1
	s := l.Stats()
	t.Logf("admitted %d in %v (bound %d); stats %+v", admitted, total, bound, s)
	if admitted > bound {
		t.Fatalf("admitted %d, above burst + rate × T = %d", admitted, bound)
	}
	if s.Evicted != 0 || s.Keys != 1 {
		t.Fatalf("stats %+v: the key in use was evicted during the outage", s)
	}
	if s.AllowedFallback+s.DeniedFallback == 0 {
		t.Fatal("the failure policy decided nothing")
	}
}

// modelBucket is an exact in-memory Bucket: algorithms.TokenBucketModel on
// the test's fake clock, as Redis would run the scripts.
type modelBucket struct {
	clk *limitertest.Clock
	mu  sync.Mutex
	s   algorithms.TokenBucketState
}

func (b *modelBucket) nowUS() int64 { return b.clk.Now().UnixMicro() }

func (b *modelBucket) TakeUpTo(_ context.Context, _ string, lim ratelimit.Limit, n int, c algorithms.Charge) (algorithms.Grant, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var g algorithms.Grant
	b.s, g = algorithms.TokenBucketModel{Limit: lim}.ChargeTakeUpTo(b.s, b.nowUS(), n, c)
	return g, nil
}

func (b *modelBucket) Peek(_ context.Context, _ string, lim ratelimit.Limit) (ratelimit.Decision, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return algorithms.TokenBucketModel{Limit: lim}.Peek(b.s, b.nowUS()), nil
}

func (b *modelBucket) Charge(_ context.Context, _ string, lim ratelimit.Limit, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s, _ = algorithms.TokenBucketModel{Limit: lim}.Charge(b.s, b.nowUS(), n)
	return nil
}

func (b *modelBucket) Reset(context.Context, string, ratelimit.Limit) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s = algorithms.TokenBucketState{}
	return nil
}

func (b *modelBucket) Return(_ context.Context, _ string, lim ratelimit.Limit, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s, _ = algorithms.TokenBucketModel{Limit: lim}.Refund(b.s, b.nowUS(), n)
	return nil
}

// TestQuietKeyMatchesXTimeRate replays golang.org/x/time/rate's
// TestLimiterBurst1 and TestLimiterBurst3 step tables (10 tokens/s, steps
// 100 ms apart) through one leasing limiter on an exact bucket and a fake
// clock: a key with little traffic must get exactly the decisions of one
// token bucket. x/time answers false for n above the burst, which AllowN
// rejects as ErrInvalidN; n = 0 is left out (AllowN rejects it).
func TestQuietKeyMatchesXTimeRate(t *testing.T) {
	type allow struct {
		t  int // in steps of 100 ms
		n  int
		ok bool
	}
	for _, tc := range []struct {
		name  string
		burst int
		steps []allow
	}{
		{"burst1", 1, []allow{
			{0, 1, true}, {0, 1, false}, {0, 1, false},
			{1, 1, true}, {1, 1, false}, {1, 1, false},
			{2, 2, false}, {2, 1, true}, {2, 1, false},
		}},
		{"burst3", 3, []allow{
			{0, 2, true}, {0, 2, false}, {0, 1, true}, {0, 1, false},
			{1, 4, false},
			{2, 1, true}, {3, 1, true},
			{4, 1, true}, {4, 1, true}, {4, 1, false}, {4, 1, false},
			{9, 3, true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := ratelimit.PerSecond(10).WithBurst(tc.burst)
			clk := newFakeClock()
			b := &modelBucket{clk: clk}
			l, err := New(nil, lim, withBucket(b), WithClock(clk), WithLeaseTTL(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close(context.Background()) })
			start := clk.Now()
			for i, s := range tc.steps {
				clk.Advance(start.Add(time.Duration(s.t) * 100 * time.Millisecond).Sub(clk.Now()))
				d, err := l.AllowN(context.Background(), "k", s.n)
				if s.n > tc.burst {
					if !errors.Is(err, ratelimit.ErrInvalidN) {
						t.Fatalf("step %d: AllowN(t%d, %d) = %+v, %v; want ErrInvalidN", i, s.t, s.n, d, err)
					}
					continue
				}
				if err != nil || d.Allowed != s.ok {
					t.Fatalf("step %d: AllowN(t%d, %d) = %+v, %v; want allowed=%v", i, s.t, s.n, d, err, s.ok)
				}
				waitRefills(t, l)
			}
		})
	}
}

// TestDenialAfterPartialGrantReleasesTheToken (issue 11, item 8): 3 per
// hour, AllowN 2, 2, 1: allowed, denied, allowed, as the per-request
// limiter decides. The second call leased the last token and was denied
// for lack of a second; that token must serve the third call.
func TestDenialAfterPartialGrantReleasesTheToken(t *testing.T) {
	clk := newFakeClock()
	b := &modelBucket{clk: clk}
	l, err := New(nil, ratelimit.PerHour(3), withBucket(b), WithClock(clk), WithLeaseTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	for i, s := range []struct {
		n  int
		ok bool
	}{{2, true}, {2, false}, {1, true}} {
		d, err := l.AllowN(context.Background(), "k", s.n)
		if err != nil || d.Allowed != s.ok {
			t.Fatalf("call %d: AllowN(%d) = %+v, %v; want allowed=%v", i, s.n, d, err, s.ok)
		}
		waitRefills(t, l)
	}
	if held := l.Stats().TokensHeld; held != 0 {
		t.Fatalf("%d tokens held after the third call, want 0", held)
	}
}

// TestRememberedDenialEndsWhenTokensGoBack (issue 11, item 9): 3 per hour:
// AllowN 2 allowed, AllowN 2 denied (it leased the last token), then the
// janitor gives that token back to Redis: AllowN 1 must be admitted, as the
// per-request limiter would, not denied by the remembered denial.
func TestRememberedDenialEndsWhenTokensGoBack(t *testing.T) {
	clk := newFakeClock()
	b := &modelBucket{clk: clk}
	l, err := New(nil, ratelimit.PerHour(3), withBucket(b), WithClock(clk), WithLeaseTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	ctx := context.Background()
	if d, err := l.AllowN(ctx, "k", 2); err != nil || !d.Allowed {
		t.Fatalf("first AllowN(2): %+v, %v", d, err)
	}
	if d, err := l.AllowN(ctx, "k", 2); err != nil || d.Allowed {
		t.Fatalf("second AllowN(2): %+v, %v; want denied", d, err)
	}
	waitRefills(t, l)
	clk.Advance(1500 * time.Millisecond)
	l.sweep() // the lease outlived its TTL: its token goes back to Redis
	if s := l.Stats(); s.TokensHeld != 0 || s.TokensReturned != 1 {
		t.Fatalf("stats %+v: want the leased token returned", s)
	}
	if d, err := l.AllowN(ctx, "k", 1); err != nil || !d.Allowed {
		t.Fatalf("AllowN(1) after the token went back to Redis: %+v, %v; want allowed", d, err)
	}
}

// TestRefundIsCappedByWhatWasAdmitted (issue 11, item 5): one admission,
// then 100 refunds of 10 tokens on a PerHour(10) key: only the one token
// admitted comes back, so 2,000 requests then get the burst and no more.
func TestRefundIsCappedByWhatWasAdmitted(t *testing.T) {
	clk := newFakeClock()
	b := &modelBucket{clk: clk}
	lim := ratelimit.PerHour(10)
	l, err := New(nil, lim, withBucket(b), WithClock(clk), WithLeaseTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	ctx := context.Background()
	if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
		t.Fatalf("first Allow: %+v, %v", d, err)
	}
	for i := 0; i < 100; i++ {
		if err := l.RefundN(ctx, "k", 10); err != nil {
			t.Fatalf("refund %d: %v", i, err)
		}
	}
	admitted := 0
	for i := 0; i < 2000; i++ {
		if d, err := l.Allow(ctx, "k"); err != nil {
			t.Fatal(err)
		} else if d.Allowed {
			admitted++
		}
	}
	if admitted != lim.Burst {
		t.Fatalf("admitted %d after the refunds, want the burst %d: a refund put back more than was admitted", admitted, lim.Burst)
	}
}

// TestStripesConserveTokens: a hot key's tokens split over stripes are
// taken concurrently by many goroutines, gathered by the slow path, taken
// back by expiry and by eviction, and every token is accounted exactly
// once: served + held + removed == granted, and no more than was granted
// is ever admitted.
func TestStripesConserveTokens(t *testing.T) {
	e := newEntry("k", 0)
	e.mu.Lock()
	e.add(1000, 0) // a hot grant: striped
	e.mu.Unlock()
	if e.striped.Load() == nil {
		t.Fatal("a grant of 1,000 tokens did not stripe the key")
	}
	var served atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				n := int64(1 + i%3)
				if st := e.striped.Load(); st != nil {
					if _, ok := st.take(n); ok {
						served.Add(n)
						continue
					}
				}
				if _, ok := e.take(n); ok {
					served.Add(n)
					continue
				}
				e.mu.Lock()
				e.gather()
				e.mu.Unlock()
				if _, ok := e.take(n); ok {
					served.Add(n)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // refills and expiry while callers take
		defer wg.Done()
		for i := 1; i <= 50; i++ {
			e.mu.Lock()
			e.add(100, int64(i))
			e.expire(int64(i - 10))
			e.mu.Unlock()
		}
	}()
	wg.Wait()
	e.mu.Lock()
	left := e.kill()
	got, granted, removed := served.Load(), e.granted, e.removed
	e.mu.Unlock()
	if granted != 1000+50*100 {
		t.Fatalf("granted %d, want %d", granted, 1000+50*100)
	}
	if got+removed != granted {
		t.Fatalf("served %d + removed %d (of which %d by eviction) = %d, want granted %d", got, removed, left, got+removed, granted)
	}
	if _, ok := e.striped.Load().take(1); ok || e.held() != 0 {
		t.Fatalf("a dead entry served a token or holds %d", e.held())
	}
}

// TestLostRaceChangesSalt: two goroutines that take from one cell at once
// lose compare-and-swaps to each other, and a lost one changes the salt
// that deals cells (so that on a key with several cells they would part);
// no token is lost or made on the way. The stripes have one cell, so the
// two always meet; they take until the salt changed, at most 10 s and
// 20,000,000 takes each.
func TestLostRaceChangesSalt(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	const tokens = 1 << 40
	st := &stripes{cells: make([]cell, 1), shift: 64}
	st.cells[0].n.Store(tokens)
	deadline := time.Now().Add(10 * time.Second)
	var taken atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Go(func() {
			var mine int64
			defer func() { taken.Add(mine) }()
			for i := 0; i < 20_000_000 && st.salt.Load() == 0; i++ {
				if _, ok := st.take(1); !ok {
					t.Error("a cell of 2^40 tokens ran dry")
					return
				}
				mine++
				if i%100_000 == 0 && time.Now().After(deadline) {
					return
				}
			}
		})
	}
	wg.Wait()
	if st.salt.Load() == 0 {
		t.Fatalf("%d takes by two goroutines from one cell lost no compare-and-swap, or losing one left the salt unchanged", taken.Load())
	}
	if left := st.cells[0].n.Load(); left+taken.Load() != tokens {
		t.Fatalf("cell holds %d after %d takes, want %d", left, taken.Load(), tokens-taken.Load())
	}
}

// TestGrantedAheadFallsDue: a token Redis grants ahead is served once it
// falls due and not before; callers before then are denied until it does,
// without asking Redis again; and a grant ahead that falls due sooner than
// the one a denial was computed from is served when it falls due.
func TestGrantedAheadFallsDue(t *testing.T) {
	b := &fakeBucket{tokens: 100, ahead: 50 * time.Millisecond}
	l, clk := newTestLimiter(t, b, ratelimit.PerSecond(10))
	ctx := context.Background()
	d, err := l.Allow(ctx, "k") // an inline refill: its tokens fall due 50 ms after the reply
	if err != nil || d.Allowed || d.RetryAfter != 50*time.Millisecond {
		t.Fatalf("first request: %+v, %v; want denied for 50ms, until its token falls due", d, err)
	}
	_, _, takes := b.state()
	for i := 1; i < 5; i++ {
		clk.Advance(10 * time.Millisecond)
		d, err := l.Allow(ctx, "k")
		if want := time.Duration(50-10*i) * time.Millisecond; err != nil || d.Allowed || d.RetryAfter != want {
			t.Fatalf("%d ms: %+v, %v; want denied for %v", 10*i, d, err, want)
		}
	}
	if _, _, now := b.state(); len(now) != len(takes) {
		t.Fatalf("callers before the token fell due asked Redis %d more times", len(now)-len(takes))
	}
	clk.Advance(10 * time.Millisecond)
	if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
		t.Fatalf("50 ms, the token due: %+v, %v; want allowed", d, err)
	}

	// On another key, with Redis granting nothing for an hour (so that no
	// refill schedules tokens of its own): a denial for a token due in
	// 90 ms is remembered; a grant that falls due in 5 ms is served then.
	waitRefills(t, l)
	b.mu.Lock()
	b.tokens, b.retry = 0, time.Hour
	b.mu.Unlock()
	if d, err := l.Allow(ctx, "k2"); err != nil || d.Allowed {
		t.Fatalf("k2, Redis empty: %+v, %v; want denied", d, err)
	}
	waitRefills(t, l)
	e := l.entries.Load("k2")
	e.mu.Lock()
	e.schedule(1, l.now()+int64(90*time.Millisecond))
	e.mu.Unlock()
	if d, err := l.Allow(ctx, "k2"); err != nil || d.Allowed || d.RetryAfter != 90*time.Millisecond {
		t.Fatalf("k2, a token due in 90 ms: %+v, %v; want denied for 90ms", d, err)
	}
	e.mu.Lock()
	e.schedule(1, l.now()+int64(5*time.Millisecond))
	e.mu.Unlock()
	clk.Advance(5 * time.Millisecond)
	if d, err := l.Allow(ctx, "k2"); err != nil || !d.Allowed {
		t.Fatalf("k2 at 5 ms, a newer grant's token due: %+v, %v; want allowed", d, err)
	}
}

// TestUnleasedCountedOnce: decisions that spent no leased token, counted
// from many goroutines, are each in unleased (and so in demand) once,
// whether the key counts them in its extra state or, once hot, in its
// stripes; becoming hot loses none counted before.
func TestUnleasedCountedOnce(t *testing.T) {
	e := newEntry("k", 0)
	count := func(k int) {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Go(func() {
				for i := 0; i < k; i++ {
					e.countUnleased()
				}
			})
		}
		wg.Wait()
	}
	count(250)
	if got := e.unleased(); got != 1000 {
		t.Fatalf("a cold key counted %d unleased decisions, want 1000", got)
	}
	e.mu.Lock()
	e.add(1000, 0) // a hot grant: striped
	e.mu.Unlock()
	if e.striped.Load() == nil {
		t.Fatal("a grant of 1,000 tokens did not stripe the key")
	}
	count(500)
	e.mu.Lock()
	defer e.mu.Unlock()
	if got := e.unleased(); got != 3000 {
		t.Fatalf("after 2,000 more on the hot key, unleased = %d, want 3000", got)
	}
	if got, want := e.demand(), e.served()+3000; got != want {
		t.Fatalf("demand = %d, want served + unleased = %d", got, want)
	}
}

// TestExpiryKeepsStripesSpread: a janitor pass that takes back part of a
// hot key's tokens leaves the rest spread over its stripes, not gathered
// in its own counter, where every core would take from one cache line.
func TestExpiryKeepsStripesSpread(t *testing.T) {
	e := newEntry("k", 0)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.add(8000, 0)   // old grant: striped
	e.add(8000, 100) // fresh grant
	st := e.striped.Load()
	if st == nil {
		t.Fatal("a grant of 8,000 tokens did not stripe the key")
	}
	if took := e.expire(50); took != 8000 {
		t.Fatalf("expire took %d tokens, want the old grant's 8,000", took)
	}
	if home := e.tokens.Load(); home >= int64(len(st.cells)) {
		t.Errorf("after expiry the key's own counter holds %d tokens, want under %d: the rest belongs in the stripes", home, len(st.cells))
	}
	for i := range st.cells {
		if n := st.cells[i].n.Load(); n < 8000/int64(len(st.cells)) {
			t.Errorf("stripe %d holds %d tokens after expiry, want %d", i, n, 8000/len(st.cells))
		}
	}
	if h := e.held(); h != 8000 {
		t.Errorf("held %d after expiry, want 8,000", h)
	}
}

// TestHotKeyCacheFollowsEviction: a key hot enough to be striped is cached
// in Limiter.hot; once the janitor evicts it its slot is empty, and the
// next request for it makes a new entry, served like any other.
func TestHotKeyCacheFollowsEviction(t *testing.T) {
	b := &fakeBucket{tokens: 1 << 30}
	l, clk := newTestLimiter(t, b, ratelimit.PerSecond(1<<30))
	ctx := context.Background()
	for i := 0; i < 10_000; i++ {
		clk.Advance(10 * time.Microsecond) // 100,000 requests/s: a demand estimate to size by
		if d, err := l.Allow(ctx, "hot"); err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v, %v", i, d, err)
		}
	}
	waitRefills(t, l)
	e := l.entries.Load("hot")
	if e == nil || e.striped.Load() == nil {
		t.Fatal("10,000 requests did not make the key hot (striped)")
	}
	if got := l.hot[hotSlot("hot")].Load(); got != e {
		t.Fatalf("hot slot holds %p, want the key's entry %p", got, e)
	}
	l.sweep() // records the key's activity
	clk.Advance(2 * time.Hour)
	l.sweep() // idle for longer than the idle timeout (the lease TTL, 1 h): evicted
	if s := l.Stats(); s.Evicted != 1 {
		t.Fatalf("stats %+v: want the key evicted", s)
	}
	if got := l.hot[hotSlot("hot")].Load(); got != nil {
		t.Fatalf("hot slot holds %p after eviction, want nil", got)
	}
	if d, err := l.Allow(ctx, "hot"); err != nil || !d.Allowed {
		t.Fatalf("after eviction: %+v, %v", d, err)
	}
	if e2 := l.entries.Load("hot"); e2 == nil || e2 == e {
		t.Fatalf("after eviction the key's entry is %p (old %p), want a new one", e2, e)
	}
}

// TestHotSlotCollisions: two hot keys sharing a slot are both served from
// their own entries, whichever the slot holds.
func TestHotSlotCollisions(t *testing.T) {
	a, c := "k1", "k9" // '1' and '9' differ in bit 3 only: the same slot among 8
	if hotSlot(a) != hotSlot(c) {
		t.Fatalf("hotSlot(%q) = %d, hotSlot(%q) = %d: want a collision", a, hotSlot(a), c, hotSlot(c))
	}
	b := &fakeBucket{tokens: 1 << 30}
	l, _ := newTestLimiter(t, b, ratelimit.PerSecond(1<<30), WithClock(ratelimit.SystemClock{}))
	ctx := context.Background()
	for i := 0; i < 20_000; i++ {
		k := a
		if i%2 == 1 {
			k = c
		}
		if d, err := l.Allow(ctx, k); err != nil || !d.Allowed {
			t.Fatalf("request %d for %s: %+v, %v", i, k, d, err)
		}
	}
	waitRefills(t, l)
	s := l.Stats()
	if s.Keys != 2 || s.AllowedLocal+s.AllowedRedis != 20_000 {
		t.Fatalf("stats %+v: want 2 keys and 20,000 admissions", s)
	}
	if got := l.hot[hotSlot(a)].Load(); got != l.entries.Load(a) && got != l.entries.Load(c) {
		t.Fatalf("the shared hot slot holds %p, neither key's entry", got)
	}
}

// TestDegradedQuietKeyRecovers: a quiet key whose bucket is under half
// full, degraded by one Redis failure, goes back to Redis once it answers:
// its probe must not be skipped as a prefetch a quiet key does not need.
func TestDegradedQuietKeyRecovers(t *testing.T) {
	b := &fakeBucket{tokens: 3, retry: time.Second}
	l, clk := newTestLimiter(t, b, ratelimit.PerSecond(10).WithBurst(10), WithFailurePolicy(ratelimit.FailOpen))
	ctx := context.Background()
	if d, err := l.Allow(ctx, "q"); err != nil || !d.Allowed || d.Source != ratelimit.SourceRedis {
		t.Fatalf("first request: %+v, %v; want admitted by Redis", d, err)
	}
	b.mu.Lock()
	b.err = errors.New("down")
	b.mu.Unlock()
	if d, err := l.Allow(ctx, "q"); err != nil || d.Source != ratelimit.SourceFallback {
		t.Fatalf("while Redis is down: %+v, %v; want the failure policy", d, err)
	}
	b.mu.Lock()
	b.err = nil
	b.mu.Unlock()
	var last ratelimit.Decision
	for i := 0; i < 20; i++ {
		clk.Advance(200 * time.Millisecond)
		d, err := l.Allow(ctx, "q")
		if err != nil {
			t.Fatal(err)
		}
		last = d
		waitRefills(t, l)
	}
	_, _, takes := b.state()
	if last.Source == ratelimit.SourceFallback || len(takes) < 3 {
		t.Fatalf("20 requests after Redis came back: last %+v, %d takes in all; want Redis deciding again", last, len(takes))
	}
}

// TestSharedRefillOutPastMaxWaitIsSlow: a busy key (low watermark above
// zero, so no inline refill) whose shared refill is still out at the
// maximum wait is decided by the failure policy and marked degraded, not
// denied as if Redis had answered.
func TestSharedRefillOutPastMaxWaitIsSlow(t *testing.T) {
	b := &fakeBucket{tokens: 1000}
	l, _ := newTestLimiter(t, b, ratelimit.PerSecond(1000).WithBurst(1000), WithRefillTimeout(time.Minute),
		WithMaxWait(20*time.Millisecond), WithFailurePolicy(ratelimit.FailClosed))
	ctx := context.Background()
	if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
		t.Fatalf("first request: %+v, %v", d, err)
	}
	waitRefills(t, l)
	e := l.entries.Load("k")
	e.mu.Lock()
	e.expire(1 << 62) // no leased tokens left
	e.mu.Unlock()
	e.low.Store(5) // a busy key's watermark: its callers share the refill
	b.mu.Lock()
	b.block = make(chan struct{})
	b.mu.Unlock()
	defer close(b.block)
	d, err := l.Allow(ctx, "k")
	if !errors.Is(err, ErrRefillWait) || d.Source != ratelimit.SourceFallback {
		t.Fatalf("with the refill out past the max wait: %+v, %v; want the failure policy's decision and ErrRefillWait", d, err)
	}
	if !e.degraded() {
		t.Fatal("the key is not marked degraded")
	}
}
