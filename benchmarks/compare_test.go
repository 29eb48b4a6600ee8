package main

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// BenchmarkCompare runs the three implementations side by side against a
// real redis-server of its own (Redis-backed: the per-request rows measure
// a network round trip and a script; the lease's hot-key row mostly its
// local hit path). The limit is unlimited, so nothing is denied. key=hot is
// one key; keys=10000 spreads requests uniformly over 10,000 keys. The
// calls/1k metric is Redis calls per 1,000 decisions. Vary the goroutines
// with -cpu, and compare runs with benchstat:
//
//	go test -run '^$' -bench BenchmarkCompare -cpu 1,2,8 -count 10 ./benchmarks > new.txt
//	benchstat old.txt new.txt
func BenchmarkCompare(b *testing.B) {
	srv := redistest.Start(b)
	cases := []struct {
		name string
		keys int
	}{{"key=hot", 1}, {"keys=10000", 10_000}}
	for _, im := range impls {
		b.Run("impl="+im.String(), func(b *testing.B) {
			for _, kc := range cases {
				// Set up once per case: the sub-benchmark's function runs
				// again for every b.N it tries.
				prefix := redistest.Prefix(b) + kc.name + ":"
				d, err := newDecider(im, srv.Addr(), prefix, unlimitedLimit)
				if err != nil {
					b.Fatal(err)
				}
				keys := rowKeys(im, prefix, kc.keys)
				ctx := context.Background()
				for _, k := range keys { // one call per key: connections, scripts, leases
					if _, err := d.allow(ctx, k); err != nil {
						d.close()
						b.Fatal(err)
					}
				}
				b.Run(kc.name, func(b *testing.B) {
					calls := d.redisCalls()
					var seed atomic.Uint64
					b.ReportAllocs()
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						rng := (seed.Add(1) * 0x9E3779B97F4A7C15) | 1
						n := uint64(len(keys))
						for pb.Next() {
							k := keys[0]
							if n > 1 {
								rng = xorshift(rng)
								k = keys[rng%n]
							}
							o, err := d.allow(ctx, k)
							if err != nil || o != admitted {
								b.Errorf("allow(%q) = %v, %v; want admitted", k, o, err)
								return
							}
						}
					})
					b.StopTimer()
					b.ReportMetric(float64(d.redisCalls()-calls)*1000/float64(b.N), "calls/1k")
				})
				d.close()
			}
		})
	}
}
