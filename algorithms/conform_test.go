package algorithms

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
)

// quietLog drops the breaker's log records: the fault tests open it on
// purpose.
var quietLog = limitertest.QuietLog

// TestConform runs the conformance suite of internal/limitertest on a
// Limiter of every algorithm: Redis killed, stalled, its scripts flushed,
// a key of the wrong type, and a Cluster's slot moves and failover. The
// default algorithm, GCRA, goes first: the scenarios that are about Redis
// rather than the scripts run it alone.
func TestConform(t *testing.T) {
	byName := map[string]Algorithm{}
	variants := []string{GCRA.Name()}
	for _, alg := range All {
		byName[alg.Name()] = alg
		if alg != GCRA {
			variants = append(variants, alg.Name())
		}
	}
	limitertest.Run(t, limitertest.Subject{
		Variants: variants,
		New: func(t *testing.T, rdb redis.Scripter, lim ratelimit.Limit, c limitertest.Config) limitertest.Limiter {
			return newLimiter(t, rdb, lim, WithLogger(quietLog), WithKeyspace(c.Keyspace), WithAlgorithm(byName[c.Variant]),
				WithTimeout(c.Timeout), WithFailurePolicy(c.Policy), WithInstances(c.Instances))
		},
	})
}
