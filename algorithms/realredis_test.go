package algorithms

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// The tests in this file run the scripts on a real redis-server, whose Lua
// is not miniredis's gopher-lua. They cannot set the server's clock, so
// they check what holds whatever the time is.

// serverNow returns the real server's clock in µs.
func serverNow(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	now, err := rdb.Time(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now.UnixMicro()
}

// skipNearMidnight skips t when a UTC day, the window of the window
// algorithms in the tests that use a day, ends within a minute of nowUS.
func skipNearMidnight(t *testing.T, nowUS int64) {
	t.Helper()
	day := (24 * time.Hour).Microseconds()
	if day-nowUS%day < time.Minute.Microseconds() {
		t.Skip("a window of one day ends within a minute")
	}
}

// TestRealRedisBurst spends a burst, checks the denial that follows, that
// the denial wrote nothing, that the state has a TTL no longer than the
// reset time, and that refunds give tokens back and delete the key once it
// is full.
func TestRealRedisBurst(t *testing.T) {
	_, rdb, ks := realServer(t)
	ctx := t.Context()
	const day = 24 * time.Hour
	lim := ratelimit.Per(5, day) // a token every 4.8 h: no refill during the test
	interval := day / 5
	// retryWithin returns the bounds of the RetryAfter of a denial of n
	// once the burst is spent.
	retryWithin := func(alg Algorithm, n int) (lo, hi time.Duration) {
		wait := time.Duration(n) * interval
		switch alg {
		case FixedWindow:
			return 0, day // the window's end
		case SlidingWindow:
			return wait, day + wait // in the next window, once 5·(1-e) <= 5-n
		}
		return wait - time.Minute, wait
	}
	skipNearMidnight(t, serverNow(t, rdb))
	for _, alg := range All {
		t.Run("alg="+alg.Name(), func(t *testing.T) {
			l := newLimiter(t, rdb, lim, WithAlgorithm(alg), WithKeyspace(ks))
			rkey := clientKey(t, ks, "burst", alg)
			for i := range 5 {
				d, err := l.Allow(ctx, "burst")
				if err != nil || !d.Allowed || d.Remaining != 4-i || d.RetryAfter != 0 {
					t.Fatalf("request %d: %+v, %v; want allowed with %d remaining", i+1, d, err, 4-i)
				}
				if d.ResetAfter <= 0 || d.ResetAfter > 2*day || d.Limit != lim || d.Source != ratelimit.SourceRedis {
					t.Fatalf("request %d: %+v", i+1, d)
				}
				pttl, err := rdb.PTTL(ctx, rkey).Result()
				if err != nil || pttl <= 0 || pttl > d.ResetAfter+time.Millisecond || pttl < d.ResetAfter-time.Minute {
					t.Fatalf("request %d: PTTL %v, %v; want about ResetAfter %v", i+1, pttl, err, d.ResetAfter)
				}
			}

			before, err := rdb.HGetAll(ctx, rkey).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 5} {
				d, err := l.AllowN(ctx, "burst", n)
				if err != nil || d.Allowed || d.Remaining != 0 {
					t.Fatalf("AllowN(%d) after the burst: %+v, %v; want a denial", n, d, err)
				}
				if lo, hi := retryWithin(alg, n); d.RetryAfter <= lo || d.RetryAfter > hi {
					t.Fatalf("AllowN(%d) after the burst: RetryAfter %v, want in (%v, %v]", n, d.RetryAfter, lo, hi)
				}
			}
			after, err := rdb.HGetAll(ctx, rkey).Result()
			if err != nil || len(after) != len(before) {
				t.Fatalf("state %v, %v after denials, was %v", after, err, before)
			}
			for k, v := range before {
				if after[k] != v {
					t.Fatalf("denials changed the state from %v to %v", before, after)
				}
			}

			if err := l.RefundN(ctx, "burst", 2); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				d, err := l.Allow(ctx, "burst")
				if err != nil || d.Allowed != (i < 2) {
					t.Fatalf("request %d after refunding 2: %+v, %v", i+1, d, err)
				}
			}
			if err := l.RefundN(ctx, "burst", 5); err != nil {
				t.Fatal(err)
			}
			if n, err := rdb.Exists(ctx, rkey).Result(); err != nil || n != 0 {
				t.Fatalf("key exists (%d, %v) after refunding the whole burst", n, err)
			}
			if err := l.RefundN(ctx, "burst", 5); err != nil { // to a missing key
				t.Fatal(err)
			}
			if d, err := l.AllowN(ctx, "burst", 5); err != nil || !d.Allowed || d.Remaining != 0 {
				t.Fatalf("AllowN(5) after refunds: %+v, %v; want the whole burst, and no more", d, err)
			}
		})
	}
}

// TestRealRedisExpiry checks, in real time, that state disappears when the
// key is back to full: a key's TTL ends by its ResetAfter (rounded up to a
// millisecond), and then the whole burst is admitted again.
func TestRealRedisExpiry(t *testing.T) {
	_, rdb, ks := realServer(t)
	lim := ratelimit.Per(2, 100*time.Millisecond)
	for _, alg := range All {
		t.Run("alg="+alg.Name(), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			l := newLimiter(t, rdb, lim, WithAlgorithm(alg), WithKeyspace(ks))
			rkey := clientKey(t, ks, "expiry", alg)
			d, err := l.AllowN(ctx, "expiry", 2)
			if err != nil || !d.Allowed {
				t.Fatalf("AllowN(2): %+v, %v", d, err)
			}
			if d.ResetAfter <= 0 || d.ResetAfter > 2*lim.Period {
				t.Fatalf("ResetAfter %v, want in (0, %v]", d.ResetAfter, 2*lim.Period)
			}
			time.Sleep(d.ResetAfter + 5*time.Millisecond)
			// Redis expires a key lazily on access, and EXISTS is an access.
			if n, err := rdb.Exists(ctx, rkey).Result(); err != nil || n != 0 {
				t.Fatalf("key still exists (%d, %v) %v after its ResetAfter", n, err, d.ResetAfter)
			}
			if d, err := l.AllowN(ctx, "expiry", 2); err != nil || !d.Allowed {
				t.Fatalf("AllowN(2) after the reset: %+v, %v", d, err)
			}
		})
	}
}

// TestConcurrentExactTotal hammers one key per algorithm from several
// Limiters, each with its own client, on a real server. With a refill of
// one token a day, the number admitted must be exactly the burst: the
// scripts are atomic.
func TestConcurrentExactTotal(t *testing.T) {
	srv, rdb, ks := realServer(t)
	skipNearMidnight(t, serverNow(t, rdb))
	const (
		instances  = 4
		goroutines = 4 // per instance
		attempts   = 70
		burst      = 500 // < instances·goroutines·attempts = 1120
	)
	lim := ratelimit.Per(1, 24*time.Hour).WithBurst(burst)
	limiters := make([]*Limiter, instances)
	for _, alg := range All {
		t.Run("alg="+alg.Name(), func(t *testing.T) {
			for i := range limiters {
				limiters[i] = newLimiter(t, srv.Client(), lim, WithAlgorithm(alg), WithKeyspace(ks), WithTimeout(5*time.Second))
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			admitted, failed := hammer(ctx, limiters, goroutines, attempts)
			if failed != 0 || ctx.Err() != nil {
				t.Fatalf("%d calls failed; context: %v", failed, ctx.Err())
			}
			if admitted != burst {
				t.Fatalf("admitted %d of %d attempts, want exactly %d", admitted, instances*goroutines*attempts, burst)
			}
		})
	}
}

// hammer calls Allow(ctx, "hot") attempts times from each of goroutines
// goroutines per limiter, all at once, until ctx is done, and returns how
// many calls were admitted and how many failed.
func hammer(ctx context.Context, limiters []*Limiter, goroutines, attempts int) (admitted, failed int64) {
	var nAdmitted, nFailed atomic.Int64
	var wg sync.WaitGroup
	for _, l := range limiters {
		for range goroutines {
			wg.Go(func() {
				for range attempts {
					if ctx.Err() != nil {
						return
					}
					d, err := l.Allow(ctx, "hot")
					switch {
					case err != nil:
						nFailed.Add(1)
					case d.Allowed:
						nAdmitted.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	return nAdmitted.Load(), nFailed.Load()
}
