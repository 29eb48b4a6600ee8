package tiers

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// A Spec describes one limiter that a [Limiter] needs: one limit of one
// tier, with the Redis namespace reserved for it. Specs are plain values
// that the Limiter builds; the zero value describes nothing usable.
type Spec struct {
	// Tier is the tier's name.
	Tier string
	// Limit is the limit to enforce. Limit.Algorithm and Limit.Lease say
	// how.
	Limit Limit
	// Keyspace is the namespace the limiter must keep its Redis keys in.
	// Its prefix is derived from the Limiter's base prefix, the tier name
	// and the limit name (see [LimitKeyspace]), never from the limit's
	// numbers, so a reload that changes the numbers keeps the state.
	Keyspace ratelimit.Keyspace
}

// A Factory makes the limiter that enforces one limit of one tier. The
// limiter must keep its keys in spec.Keyspace, enforce spec.Limit.Budget,
// and, for tiers of several limits, implement [ratelimit.Refunder]. If it
// has a Close(context.Context) error method, the [Limiter] calls it when
// the limiter is no longer used (after a reload or on Close).
//
// A [Limiter] calls its Factory from New and Reload only, one call at a
// time. It makes one limiter per distinct Spec and reuses the limiters of
// unchanged Specs across reloads.
//
// [Direct] makes per-request limiters; [Redis] also leases the limits that
// ask for it.
type Factory func(spec Spec) (ratelimit.Limiter, error)

// Direct returns a Factory of per-request limiters
// ([algorithms.NewLimiter]) on rdb. opts apply to every limiter; the
// Factory adds the Spec's keyspace and, when set, its algorithm. It
// refuses Specs that ask for leasing with [ErrLeaseUnsupported].
func Direct(rdb redis.Scripter, opts ...algorithms.Option) Factory {
	base := append([]algorithms.Option(nil), opts...)
	return func(s Spec) (ratelimit.Limiter, error) {
		if s.Limit.Lease {
			return nil, fmt.Errorf("%w: limit %q of tier %q asks for leasing", ErrLeaseUnsupported, s.Limit.Name, s.Tier)
		}
		o := make([]algorithms.Option, 0, len(base)+2)
		o = append(o, base...)
		o = append(o, algorithms.WithKeyspace(s.Keyspace))
		if s.Limit.Algorithm != nil {
			o = append(o, algorithms.WithAlgorithm(s.Limit.Algorithm))
		}
		return algorithms.NewLimiter(rdb, s.Limit.Budget, o...)
	}
}

// LimitKeyspace returns the namespace of limit of tier under base: its
// prefix is base's prefix followed by "<tier>:<limit>:". Client limits
// are keyed by the client key within it; shared limits by the tier name.
func LimitKeyspace(base ratelimit.Keyspace, tier, limit string) (ratelimit.Keyspace, error) {
	ks, err := ratelimit.NewKeyspace(base.Prefix() + tier + ":" + limit + ":")
	if err != nil {
		return ratelimit.Keyspace{}, fmt.Errorf("%w: key prefix of limit %q of tier %q: %v", ErrInvalidConfig, limit, tier, err)
	}
	return ks, nil
}
