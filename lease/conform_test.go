package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// quietLogger drops the limiters' log records: the fault tests open the
// breaker on purpose.
var quietLogger = limitertest.QuietLog

// faultKeyspace returns a keyspace unique to t.
func faultKeyspace(t *testing.T) ratelimit.Keyspace { return limitertest.Keyspace(t) }

// TestConform runs the conformance suite of internal/limitertest on the
// leasing limiter: Redis killed, stalled, its scripts flushed, a key of
// the wrong type, and a Cluster's slot moves and failover. checkLease
// adds what only a leasing limiter does.
func TestConform(t *testing.T) {
	limitertest.Run(t, limitertest.Subject{
		Variants: []string{algorithms.TokenBucket.Name()}, // the bucket it leases from
		New: func(t *testing.T, rdb redis.Scripter, lim ratelimit.Limit, c limitertest.Config) limitertest.Limiter {
			opts := []lease.Option{lease.WithKeyspace(c.Keyspace), lease.WithRefillTimeout(c.Timeout),
				lease.WithFailurePolicy(c.Policy), lease.WithInstances(c.Instances), lease.WithLogger(quietLogger)}
			if c.Counted {
				// Leases of up to a quarter of the burst that do not expire
				// during the test: every token Redis grants is served.
				opts = append(opts, lease.WithAccuracyBudget(0.25), lease.WithLeaseTTL(time.Minute))
			}
			l, err := lease.New(rdb, lim, opts...)
			if err != nil {
				t.Fatal(err)
			}
			// Closed when t ends, before the clients and servers started
			// earlier in t are stopped.
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = l.Close(ctx)
			})
			return l
		},
		// A caller waits at most the maximum wait, however long a refill
		// may take.
		MaxWait: lease.DefaultMaxWait,
		Leases:  true,
		// A key with a history of grants is limited at the share Redis
		// granted this instance, at most the whole limit.
		FailLocalShare: func(lim ratelimit.Limit, _ int) ratelimit.Limit { return lim },
		Check:          checkLease,
	})
}

// checkLease checks a leasing limiter's own counters after a scenario of
// the conformance suite.
func checkLease(t *testing.T, o limitertest.Outcome) {
	t.Helper()
	s := o.Limiter.(*lease.Limiter).Stats()
	switch o.Scenario {
	case limitertest.KillRestart:
		// A key serves at most what it held when Redis died, and one refill
		// in flight: a lease is at most the accuracy budget of the burst,
		// or, a long one, half of what the bucket held (docs/accuracy.md).
		maxLease := max(int(lease.DefaultAccuracyBudget*float64(o.Limit.Burst)), o.Limit.Burst/2)
		leased := map[string]int{}
		for _, c := range o.Outage {
			if c.D.Source == ratelimit.SourceLocal && c.Err == nil && c.D.Allowed {
				leased[c.Key]++
			}
		}
		for key, n := range leased {
			if n > 2*maxLease {
				t.Errorf("key %s: %d admissions from leases while Redis was down, want at most %d", key, n, 2*maxLease)
			}
		}
		if s.Breaker != "closed" || s.RefillErrors == 0 {
			t.Errorf("stats after recovery %+v: want refill errors counted and the breaker closed", s)
		}
		t.Logf("%d calls served from leases while Redis was down", leased["a"]+leased["b"]+leased["c"]+leased["d"])
	case limitertest.ScriptFlush:
		if s.RefillErrors != 0 || s.Refills < 4 {
			t.Errorf("stats %+v: want at least 4 refills and no refill error", s)
		}
	case limitertest.WrongKeyType:
		if s.Breaker != "closed" || s.RefillErrors != int64(o.Errors) {
			t.Errorf("stats after %d WRONGTYPE replies %+v: want %d refill errors and the breaker closed", o.Errors, s, o.Errors)
		}
	case limitertest.ClusterSlots:
		if s.RefillErrors != 0 || s.TokensServed != int64(o.Admitted) {
			t.Errorf("stats %+v: want %d tokens served and no refill error", s, o.Admitted)
		}
	case limitertest.ClusterMove:
		if o.Errors != 0 {
			t.Errorf("%d errors across the move, want none", o.Errors)
		}
	}
}
