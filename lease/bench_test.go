package lease_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// BenchmarkAllow measures the leasing limiter against a real redis-server,
// with a limit high enough that nothing is denied: key=hot is the hit path
// of one key, keys=10000 spreads requests over 10,000 keys. Run it with
// -cpu 1,4,16 to vary the goroutines. The calls/1k metric is Redis calls per
// 1,000 decisions.
func BenchmarkAllow(b *testing.B) {
	srv := redistest.Start(b)
	lim := ratelimit.PerSecond(1 << 36).WithBurst(1 << 36)
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	for _, bc := range []struct {
		name string
		keys []string
	}{{"key=hot", keys[:1]}, {"keys=10000", keys}} {
		b.Run(bc.name, func(b *testing.B) {
			ks, _ := ratelimit.NewKeyspace(redistest.Prefix(b))
			l, err := lease.New(srv.Client(), lim, lease.WithKeyspace(ks))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(context.Background())
			ctx := context.Background()
			for _, k := range bc.keys { // warm up: one lease per key
				_, _ = l.Allow(ctx, k)
			}
			calls := l.Stats().RedisCalls
			var seq atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				if len(bc.keys) == 1 { // the hit path alone, as BenchmarkXTimeRateAllow runs
					k := bc.keys[0]
					for pb.Next() {
						if d, err := l.Allow(ctx, k); err != nil || !d.Allowed {
							b.Errorf("%+v %v", d, err)
							return
						}
					}
					return
				}
				i := int(seq.Add(1)) * 7919
				for pb.Next() {
					i++
					if d, err := l.Allow(ctx, bc.keys[i%len(bc.keys)]); err != nil || !d.Allowed {
						b.Errorf("%+v %v", d, err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(l.Stats().RedisCalls-calls)*1000/float64(b.N), "calls/1k")
		})
	}
}

// BenchmarkOverLimit is one key far over its limit against a real
// redis-server: 1,000/s, burst 1,000, and every goroutine asking as fast
// as it can, so that nearly every decision is a denial, made locally from
// what the last refill said (a remembered denial, or tokens granted ahead
// not yet due). The metrics are Redis calls and admissions per 1,000
// decisions.
func BenchmarkOverLimit(b *testing.B) {
	srv := redistest.Start(b)
	ks, _ := ratelimit.NewKeyspace(redistest.Prefix(b))
	l, err := lease.New(srv.Client(), ratelimit.PerSecond(1000), lease.WithKeyspace(ks))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(context.Background())
	ctx := context.Background()
	var allowed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine int64
		defer func() { allowed.Add(mine) }()
		for pb.Next() {
			d, err := l.Allow(ctx, "hot")
			if err != nil {
				b.Error(err)
				return
			}
			if d.Allowed {
				mine++
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(l.Stats().RedisCalls)*1000/float64(b.N), "calls/1k")
	b.ReportMetric(float64(allowed.Load())*1000/float64(b.N), "allowed/1k")
}

// BenchmarkXTimeRateAllow is golang.org/x/time/rate's Allow on one limiter
// that never denies, beside BenchmarkAllow/key=hot so that one run gives
// both: a mutex-guarded in-process limiter, the reference for the hit
// path's cost and for how it scales with -cpu.
func BenchmarkXTimeRateAllow(b *testing.B) {
	l := rate.NewLimiter(rate.Inf, 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !l.Allow() {
				b.Error("denied")
				return
			}
		}
	})
}

// BenchmarkAllowLocal is the hit path alone, on an in-memory bucket that
// grants whatever is asked: no Redis, no refill cost in the loop.
func BenchmarkAllowLocal(b *testing.B) {
	benchLocal(b, ratelimit.PerSecond(1<<36).WithBurst(1<<36), lease.WithBucket(endlessBucket{}), true)
}

// BenchmarkDenyLocal is the path of a request denied from a denial this
// instance remembers, on one key: what most requests of a key over its
// limit take. The in-memory bucket is empty for an hour, so no Redis and
// no refill in the loop.
func BenchmarkDenyLocal(b *testing.B) {
	benchLocal(b, ratelimit.PerSecond(1000), lease.WithBucket(emptyBucket{}), false)
}

// benchLocal runs Allow on one key from every goroutine, on a limiter of
// lim with its in-memory bucket, each decision wanted allowed or denied.
func benchLocal(b *testing.B, lim ratelimit.Limit, bucket lease.Option, allowed bool) {
	l, err := lease.New(nil, lim, bucket)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(context.Background())
	ctx := context.Background()
	_, _ = l.Allow(ctx, "hot")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, err := l.Allow(ctx, "hot"); err != nil || d.Allowed != allowed {
				b.Errorf("%+v %v", d, err)
				return
			}
		}
	})
}

// BenchmarkFloor is the floor under the hit path: one compare-and-swap on
// one counter and a Decision returned, from a method the compiler may not
// inline. A Decision is more than four words, so the caller receives it in
// registers, spills them and copies them again (golang/go#72897); most of
// this figure is that, and every Allow pays it.
func BenchmarkFloor(b *testing.B) {
	f := &floor{lim: ratelimit.PerSecond(1 << 36)}
	f.tokens.Store(1 << 62)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, err := f.AllowN(ctx, "hot", 1); err != nil || !d.Allowed {
				b.Errorf("%+v %v", d, err)
				return
			}
		}
	})
}

// floor is the least a limiter returning a Decision can do.
type floor struct {
	lim    ratelimit.Limit
	tokens atomic.Int64
}

//go:noinline
func (f *floor) AllowN(_ context.Context, _ string, n int) (d ratelimit.Decision, err error) {
	for {
		cur := f.tokens.Load()
		if cur < int64(n) {
			return d, nil
		}
		if f.tokens.CompareAndSwap(cur, cur-int64(n)) {
			d.Allowed = true
			d.Limit = f.lim
			d.Remaining = int(min(cur-int64(n), int64(f.lim.Burst)))
			d.Source = ratelimit.SourceLocal
			return d, nil
		}
	}
}

// endlessBucket grants every token asked for.
type endlessBucket struct{ quotaless }

func (endlessBucket) TakeUpTo(_ context.Context, _ string, lim ratelimit.Limit, n int, _ algorithms.Charge) (algorithms.Grant, error) {
	return algorithms.Grant{Granted: n, Remaining: lim.Burst}, nil
}

func (endlessBucket) Return(_ context.Context, _ string, lim ratelimit.Limit, n int) error {
	return nil
}

// emptyBucket grants nothing, and says so for an hour.
type emptyBucket struct{ quotaless }

func (emptyBucket) TakeUpTo(_ context.Context, _ string, _ ratelimit.Limit, _ int, _ algorithms.Charge) (algorithms.Grant, error) {
	return algorithms.Grant{RetryAfter: time.Hour, ResetAfter: time.Hour}, nil
}

func (emptyBucket) Return(_ context.Context, _ string, _ ratelimit.Limit, _ int) error {
	return nil
}

// BenchmarkMemoryPerKey reports, as B/key, the live heap one tracked key
// costs (as TestMemoryBytesPerKey measures it): b.N distinct keys of 13
// bytes, made before the baseline, each admitted once by a limiter that
// tracks them all. ns/op is the cost of a new key (with an in-memory
// bucket: no Redis).
func BenchmarkMemoryPerKey(b *testing.B) {
	names := make([]string, b.N)
	for i := range names {
		names[i] = keyName(1_000_000 + i)
	}
	base := liveHeap()
	l, err := lease.New(nil, ratelimit.PerSecond(100), lease.WithBucket(&oneTokenBucket{}), lease.WithMaxKeys(max(b.N, 1)),
		lease.WithLeaseTTL(time.Hour), lease.WithIdleTimeout(time.Hour), lease.WithLogger(quietLogger))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = l.Close(context.Background()) }()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d, err := l.Allow(ctx, names[i]); err != nil || !d.Allowed {
			b.Fatalf("key %s: %+v, %v", names[i], d, err)
		}
	}
	b.StopTimer()
	live := liveHeap()
	b.ReportMetric(float64(int64(live)-int64(base))/float64(b.N), "B/key")
	runtime.KeepAlive(l)
	runtime.KeepAlive(names)
}
