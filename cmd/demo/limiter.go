package main

import (
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// newLimiter returns one instance's tiers.Limiter over rdb. Limits that
// ask for leasing get a lease.Limiter, the others a per-request limiter
// (tiers.Direct); -mode direct clears the lease flags beforehand (see
// withoutLease). Every Redis call is bounded by o.timeout, and tel, when
// on, wraps each limiter to record its metrics.
func newLimiter(rdb redis.UniversalClient, cfg tiers.Config, base ratelimit.Keyspace, o options, tel *metrics) (*tiers.Limiter, error) {
	direct := tiers.Direct(rdb, algorithms.WithTimeout(o.timeout))
	factory := func(s tiers.Spec) (ratelimit.Limiter, error) {
		var l ratelimit.Limiter
		var err error
		if s.Limit.Lease {
			l, err = lease.New(rdb, s.Limit.Limit, lease.WithKeyspace(s.Keyspace),
				lease.WithRefillTimeout(o.timeout), lease.WithInstances(o.instances))
		} else {
			l, err = direct(s)
		}
		if err != nil {
			return nil, err
		}
		return tel.instrument(s, l)
	}
	return tiers.New(factory, cfg, tiers.WithKeyspace(base))
}
