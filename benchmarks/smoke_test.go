package main

import (
	"context"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// TestRunAgainstRealRedis runs one short throughput row and one short
// accuracy row of each implementation against a real redis-server, to
// check the plumbing: every call succeeds, the per-request limiters count
// one Redis call per decision, the lease far fewer on the hot key, and
// nobody admits more than the limit allows.
func TestRunAgainstRealRedis(t *testing.T) {
	srv := redistest.Start(t)
	rn := &runner{
		addr:   srv.Addr(),
		prefix: redistest.Prefix(t),
		ph:     phases{warmup: 50 * time.Millisecond, measure: 200 * time.Millisecond, accuracy: 600 * time.Millisecond},
	}
	ctx := context.Background()
	hot := workload{instances: 2, goroutines: 2, keys: 1}
	over := workload{instances: 2, goroutines: 2, keys: 1, demand: 2}
	for _, im := range impls {
		t.Run(im.String(), func(t *testing.T) {
			r, err := rn.run(ctx, im, hot)
			if err != nil {
				t.Fatal(err)
			}
			if r.errs != 0 || r.fallbacks != 0 || r.ops == 0 || r.allowed != r.ops {
				t.Fatalf("throughput row: %d decisions, %d allowed, %d errors (first %v), %d fallbacks; want all allowed, none failed", r.ops, r.allowed, r.errs, r.firstErr, r.fallbacks)
			}
			if r.p50 <= 0 || r.p99 < r.p50 {
				t.Errorf("p50 %v, p99 %v", r.p50, r.p99)
			}
			calls := r.callsPer1k()
			if im == implLease {
				if calls >= 100 {
					t.Errorf("lease on the hot key made %.1f Redis calls per 1,000 decisions, want far fewer than 1,000", calls)
				}
			} else if calls < 999 || calls > 1001 {
				t.Errorf("%v made %.1f Redis calls per 1,000 decisions, want 1,000", im, calls)
			}

			r, err = rn.run(ctx, im, over)
			if err != nil {
				t.Fatal(err)
			}
			if r.errs != 0 || r.fallbacks != 0 || r.ops == 0 {
				t.Fatalf("accuracy row: %d decisions, %d errors (first %v), %d fallbacks", r.ops, r.errs, r.firstErr, r.fallbacks)
			}
			lim := over.limit()
			bound := float64(lim.Burst) + lim.PerSecondRate()*(r.elapsed.Seconds()+0.05)
			if float64(r.allowed) > bound {
				t.Errorf("admitted %d in %v at %v: more than burst + rate × (elapsed + 50 ms) = %.0f", r.allowed, r.elapsed, lim, bound)
			}
			if r.allowed < int64(lim.Burst) {
				t.Errorf("admitted %d, fewer than the burst %d", r.allowed, lim.Burst)
			}
		})
	}
}
