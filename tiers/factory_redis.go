package tiers

import (
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// Redis returns the Factory most services want: limits that ask for
// leasing get a leasing limiter ([lease.New], which always runs the token
// bucket, whatever the limit's algorithm), the others a per-request one
// ([Direct]). directOpts and leaseOpts apply to every limiter of their kind;
// the Factory adds the Spec's keyspace.
func Redis(rdb redis.Scripter, directOpts []algorithms.Option, leaseOpts ...lease.Option) Factory {
	direct := Direct(rdb, directOpts...)
	base := append([]lease.Option(nil), leaseOpts...)
	return func(s Spec) (ratelimit.Limiter, error) {
		if !s.Limit.Lease {
			return direct(s)
		}
		o := append(append(make([]lease.Option, 0, len(base)+1), base...), lease.WithKeyspace(s.Keyspace))
		return lease.New(rdb, s.Limit.Budget, o...)
	}
}
