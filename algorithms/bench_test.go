package algorithms

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// BenchmarkCheck measures one Allow, a script round trip, against a real
// redis-server on loopback: alone (conc=1) and from many goroutines at
// once (conc=16), on one hot key or spread over many. The limit never
// denies, so every call writes. Redis-backed: compare it with itself, not
// with the local BenchmarkModel.
//
//	go test -run='^$' -bench=Check -benchtime=2000x ./algorithms/
func BenchmarkCheck(b *testing.B) {
	srv := redistest.Start(b)
	lim := ratelimit.PerSecond(1_000_000) // more than Redis can serve: never denies
	for _, alg := range All {
		for _, keys := range []int{1, 1000} {
			names := make([]string, keys)
			for i := range names {
				names[i] = fmt.Sprintf("user:%d", i)
			}
			for _, conc := range []int{1, 16} {
				b.Run(fmt.Sprintf("alg=%s/keys=%d/conc=%d", alg.Name(), keys, conc), func(b *testing.B) {
					ks, err := ratelimit.NewKeyspace(redistest.Prefix(b))
					if err != nil {
						b.Fatal(err)
					}
					l, err := NewLimiter(srv.Client(func(o *redis.Options) { o.PoolSize = 2 * conc }), lim,
						WithAlgorithm(alg), WithKeyspace(ks))
					if err != nil {
						b.Fatal(err)
					}
					ctx := b.Context()
					b.ReportAllocs()
					if conc == 1 {
						i := 0
						for b.Loop() {
							if _, err := l.Allow(ctx, names[i%keys]); err != nil {
								b.Fatal(err)
							}
							i++
						}
					} else {
						var next atomic.Int64
						b.SetParallelism(max(1, conc/runtime.GOMAXPROCS(0)))
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								i := int(next.Add(1))
								if _, err := l.Allow(ctx, names[i%keys]); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
				})
			}
		}
	}
}

// BenchmarkModel measures the local reference models, which allocate
// nothing.
func BenchmarkModel(b *testing.B) {
	lim := ratelimit.PerSecond(1000)
	bench := func(b *testing.B, decide func(now int64) bool) {
		b.ReportAllocs()
		now := t0
		for b.Loop() {
			now += 700 // µs: most requests are admitted
			decide(now)
		}
	}
	b.Run("alg=token_bucket", func(b *testing.B) { bench(b, decider[TokenBucketState](TokenBucketModel{lim})) })
	b.Run("alg=gcra", func(b *testing.B) { bench(b, decider[GCRAState](GCRAModel{lim})) })
	b.Run("alg=fixed_window", func(b *testing.B) { bench(b, decider[FixedWindowState](FixedWindowModel{lim})) })
	b.Run("alg=sliding_window", func(b *testing.B) { bench(b, decider[SlidingWindowState](SlidingWindowModel{lim})) })
}

// decider returns a function that decides one token at a time with m, from
// a missing key, keeping the state. (M is a type parameter rather than
// an interface so that the calls are direct, as a caller of a model makes
// them.)
func decider[S any, M checkModel[S]](m M) func(now int64) bool {
	var s S
	return func(now int64) bool {
		var d ratelimit.Decision
		s, d = m.Decide(s, now, 1)
		return d.Allowed
	}
}
