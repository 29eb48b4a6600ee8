package main

import (
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// newLimiter returns one instance's tiers.Limiter over rdb, made as the
// README shows: tiers.Redis leases the limits that ask for it (lease.New)
// and checks the others per request (tiers.Direct); -mode direct clears
// the lease flags beforehand (see withoutLease). -timeout, when given,
// bounds every Redis call and every wait for a refill; -instances is how
// many instances share each limit, for the failure policy's share. tel,
// when on, instruments every limiter (telemetry.Factory); instance names
// the instance in its metrics (0: the only one).
func newLimiter(rdb redis.UniversalClient, cfg tiers.Config, base ratelimit.Keyspace, o options, tel *metrics, instance int) (*tiers.Limiter, error) {
	var directOpts []algorithms.Option
	leaseOpts := []lease.Option{lease.WithInstances(o.instances)}
	if o.timeout > 0 {
		directOpts = append(directOpts, algorithms.WithTimeout(o.timeout))
		leaseOpts = append(leaseOpts, lease.WithRefillTimeout(o.timeout), lease.WithMaxWait(o.timeout))
	}
	factory := tel.factory(tiers.Redis(rdb, directOpts, leaseOpts...), instance)
	return tiers.New(factory, cfg, tiers.WithKeyspace(base))
}
