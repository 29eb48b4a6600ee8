package algorithms

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
)

// TestSettleValidation checks SettleN's arguments and errors, before and
// after Redis.
func TestSettleValidation(t *testing.T) {
	rdb := &replyScripter{val: okReply}
	l := newLimiter(t, rdb, ratelimit.PerSecond(10).WithBurst(5))
	ctx := t.Context()
	for _, tc := range []struct {
		key              string
		reserved, actual int
		want             error
	}{
		{"k", -1, 1, ratelimit.ErrInvalidN},
		{"k", 6, 6, ratelimit.ErrInvalidN}, // reserved above the burst
		{"k", 1, -1, ratelimit.ErrInvalidN},
		{"k", 1, ratelimit.MaxRate + 1, ratelimit.ErrInvalidN},
		{"", 1, 2, ratelimit.ErrInvalidKey},
		{"", 2, 1, ratelimit.ErrInvalidKey},
		{"", 1, 1, ratelimit.ErrInvalidKey},
		{strings.Repeat("k", ratelimit.MaxKeyLen+1), 0, 3, ratelimit.ErrInvalidKey},
	} {
		if err := l.SettleN(ctx, tc.key, tc.reserved, tc.actual); !errors.Is(err, tc.want) {
			t.Errorf("SettleN(key of %d bytes, %d, %d): %v, want %v", len(tc.key), tc.reserved, tc.actual, err, tc.want)
		}
	}
	// Nothing to settle: no Redis call.
	for _, n := range []int{0, 1, 5} {
		if err := l.SettleN(ctx, "k", n, n); err != nil {
			t.Errorf("SettleN(%d, %d): %v", n, n, err)
		}
	}
	if n := rdb.calls.Load(); n != 0 {
		t.Fatalf("%d Redis calls, want none", n)
	}
	for _, c := range [][2]int{{0, 1}, {5, 0}, {1, 5}, {5, ratelimit.MaxRate}} {
		if err := l.SettleN(ctx, "k", c[0], c[1]); err != nil {
			t.Errorf("SettleN(%d, %d): %v", c[0], c[1], err)
		}
	}
	if n := rdb.calls.Load(); n != 4 {
		t.Fatalf("%d Redis calls, want 4", n)
	}

	failing := newLimiter(t, &replyScripter{err: errors.New("boom")}, ratelimit.PerSecond(5), WithCircuitBreaker(false))
	if err := failing.SettleN(ctx, "k", 1, 3); !errors.Is(err, ratelimit.ErrStore) || !strings.Contains(err.Error(), "gcra charge") {
		t.Errorf("a charge on a failing Redis: %v, want a StoreError of gcra charge", err)
	}
	if err := failing.SettleN(ctx, "k", 3, 1); !errors.Is(err, ratelimit.ErrStore) || !strings.Contains(err.Error(), "gcra refund") {
		t.Errorf("a refund on a failing Redis: %v, want a StoreError of gcra refund", err)
	}
	plain := newLimiter(t, rdb, ratelimit.PerSecond(5), WithAlgorithm(noRefund{GCRA}))
	if err := plain.SettleN(ctx, "k", 1, 3); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("a charge with an algorithm that cannot: %v, want errors.ErrUnsupported", err)
	}
}

// TestSettle checks, for every algorithm on miniredis with a frozen
// clock, both directions of SettleN, the debt they leave, and that a
// client who under-estimates every request is stopped once the actual
// costs reach the burst: admitted requests cost their true total, never
// more than the burst plus one request's under-estimate.
func TestSettle(t *testing.T) {
	for _, x := range quotaAlgorithms(t, ratelimit.PerHour(10)) {
		t.Run("alg="+x.alg.Name(), func(t *testing.T) {
			_, rdb := miniServer(t, t0)
			clk := limitertest.NewClock(time.UnixMicro(t0))
			l := newLimiter(t, rdb, x.lim, WithAlgorithm(x.alg), WithClock(clk))
			ctx := t.Context()
			peek := func(want int, where string) ratelimit.Decision {
				t.Helper()
				d, err := l.Peek(ctx, "k")
				if err != nil || d.Remaining != want {
					t.Fatalf("%s: Peek %+v, %v; want %d left", where, d, err, want)
				}
				return d
			}
			// A request reserved 4 and used 1: 3 come back.
			if d, err := l.AllowN(ctx, "k", 4); err != nil || !d.Allowed {
				t.Fatal(d, err)
			}
			if err := l.SettleN(ctx, "k", 4, 1); err != nil {
				t.Fatal(err)
			}
			peek(9, "after settling 4 as 1")
			// One reserved 2 and used 7: 5 more are spent.
			if _, err := l.AllowN(ctx, "k", 2); err != nil {
				t.Fatal(err)
			}
			if err := l.SettleN(ctx, "k", 2, 7); err != nil {
				t.Fatal(err)
			}
			peek(2, "after settling 2 as 7")
			// One reserved 1 and used 15: the key owes 14 - 2 = 12, which
			// is more than a burst: the debt stops at one burst.
			if _, err := l.Allow(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			if err := l.SettleN(ctx, "k", 1, 15); err != nil {
				t.Fatal(err)
			}
			d := peek(0, "in debt")
			if d.Allowed || d.RetryAfter <= 0 {
				t.Fatalf("in debt: %+v", d)
			}
			switch x.alg {
			case TokenBucket, GCRA:
				// -10 tokens: one token is 11 intervals away, the whole
				// burst 20.
				if d.RetryAfter != 11*6*time.Minute || d.ResetAfter != 20*6*time.Minute {
					t.Fatalf("in debt: %+v, want a token in 66m and the burst in 2h", d)
				}
			}
			// Refunding into a debt pays part of it.
			if err := l.SettleN(ctx, "k", 9, 0); err != nil {
				t.Fatal(err)
			}
			peek(0, "after a refund of 9 into the debt")

			// A client who reserves 1 and uses 3, again and again, from a
			// full key.
			if err := l.Reset(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			admitted := 0
			for range 10 {
				d, err := l.Allow(ctx, "k")
				if err != nil {
					t.Fatal(err)
				}
				if !d.Allowed {
					break
				}
				admitted++
				if err := l.SettleN(ctx, "k", 1, 3); err != nil {
					t.Fatal(err)
				}
			}
			// 10, 7, 4, 1 left before each: four requests, 12 tokens.
			if admitted != 4 {
				t.Fatalf("admitted %d under-estimated requests, want 4 (12 tokens of a burst of 10)", admitted)
			}
		})
	}
}

// TestSettleDebtPaidOff checks that a token bucket's debt is paid off by
// the refill, request by request: after settling into debt, the next
// request is admitted exactly at the RetryAfter that Peek gives.
func TestSettleDebtPaidOff(t *testing.T) {
	for _, alg := range []Algorithm{TokenBucket, GCRA} {
		t.Run("alg="+alg.Name(), func(t *testing.T) {
			mr, rdb := miniServer(t, t0)
			l := newLimiter(t, rdb, ratelimit.PerSecond(10), WithAlgorithm(alg))
			ctx := t.Context()
			if _, err := l.AllowN(ctx, "k", 5); err != nil {
				t.Fatal(err)
			}
			if err := l.SettleN(ctx, "k", 5, 17); err != nil { // 10 - 17 = -7
				t.Fatal(err)
			}
			d, err := l.Peek(ctx, "k")
			if err != nil || d.RetryAfter != 800*time.Millisecond {
				t.Fatalf("Peek in debt of 7: %+v, %v; want a token in 800ms", d, err)
			}
			setNow(mr, t0+d.RetryAfter.Microseconds()-1)
			if d, err := l.Allow(ctx, "k"); err != nil || d.Allowed {
				t.Fatalf("1µs before the retry time: %+v, %v", d, err)
			}
			setNow(mr, t0+d.RetryAfter.Microseconds())
			if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
				t.Fatalf("at the retry time: %+v, %v", d, err)
			}
		})
	}
}

// TestRealRedisSettle runs, for every algorithm on a real redis-server,
// three limiters with three goroutines each, as three instances would.
// Every goroutine reserves 1 token per request and settles it at 4, until
// it is denied. Whatever the interleaving, the key is charged exactly 4
// per admitted request, and the admitted requests cost at least the burst
// and at most the burst plus 3 for each goroutine (its one request in
// flight): 100 <= 4 × admitted <= 127.
func TestRealRedisSettle(t *testing.T) {
	srv, _, ks := realServer(t)
	const (
		instances  = 3
		goroutines = 3 // per instance
		burst      = 100
		cost       = 4
	)
	lim := ratelimit.Per(burst, burst*time.Hour) // a token an hour: no refill to speak of
	for _, x := range quotaAlgorithms(t, lim) {
		t.Run("alg="+x.alg.Name(), func(t *testing.T) {
			now := serverNow(t, srv.Client())
			if cal, ok := x.alg.(CalendarWindow); ok {
				skipNearWindowEnd(t, cal, now)
			} else if period := x.lim.Period.Microseconds(); period-now%period < 2*time.Minute.Microseconds() {
				t.Skip("a window ends within two minutes")
			}
			ctx := t.Context()
			key := "settle-" + x.alg.Name()
			var admitted, failed atomic.Int64
			var wg sync.WaitGroup
			for range instances {
				l := newLimiter(t, srv.Client(), x.lim, WithAlgorithm(x.alg), WithKeyspace(ks), WithTimeout(5*time.Second))
				for range goroutines {
					wg.Go(func() {
						for range burst {
							d, err := l.Allow(ctx, key)
							if err != nil {
								failed.Add(1)
								return
							}
							if !d.Allowed {
								return
							}
							admitted.Add(1)
							if err := l.SettleN(ctx, key, 1, cost); err != nil {
								failed.Add(1)
								return
							}
						}
					})
				}
			}
			wg.Wait()
			a := admitted.Load()
			if failed.Load() != 0 || cost*a < burst || cost*a > burst+(cost-1)*instances*goroutines {
				t.Fatalf("admitted %d (%d failed): cost %d, want between %d and %d", a, failed.Load(), cost*a,
					burst, burst+(cost-1)*instances*goroutines)
			}
			l := newLimiter(t, srv.Client(), x.lim, WithAlgorithm(x.alg), WithKeyspace(ks))
			if got := charged(t, l, srv.Client(), ks, key); got != cost*a {
				t.Fatalf("the key was charged %d, want %d × %d admitted = %d", got, cost, a, cost*a)
			}
		})
	}
}

// charged returns how many tokens the key has been charged since it was
// full: for the windows, the stored count; for the buckets, from Peek's
// ResetAfter, the time to earn them back at one token an hour (the test
// lasts seconds, less than a token).
func charged(t *testing.T, l *Limiter, rdb *redis.Client, ks ratelimit.Keyspace, key string) int64 {
	t.Helper()
	switch l.Algorithm() {
	case TokenBucket, GCRA:
		d, err := l.Peek(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		interval := l.Limit().Interval()
		return int64((d.ResetAfter + interval/2) / interval)
	}
	h, err := rdb.HGetAll(t.Context(), clientKey(t, ks, key, l.Algorithm())).Result()
	if err != nil {
		t.Fatal(err)
	}
	c, err := strconv.ParseInt(h["c"], 10, 64)
	if err != nil {
		t.Fatalf("stored count %v: %v", h, err)
	}
	return c
}
