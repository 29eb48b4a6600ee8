package breaker

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// unavailable are the prefixes of Redis error replies that say the node
// cannot serve now, rather than that the command was wrong. The codes end
// in a space so that BUSY does not match BUSYKEY or BUSYGROUP.
var unavailable = []string{
	"LOADING ",     // loading its dataset after a restart
	"BUSY ",        // blocked by a long-running script
	"MASTERDOWN ",  // a replica that lost its master
	"CLUSTERDOWN ", // a cluster without full slot coverage
	"TRYAGAIN ",    // a multi-key command during resharding
	"READONLY ",    // a replica, typically a master demoted by a failover
	"NOREPLICAS ",  // min-replicas-to-write not met
	"OOM ",         // out of memory: writes refused
	"max number of clients reached",
}

// IsFailure reports whether err, returned by a Redis call, should count as
// a failure of the [Breaker] that guards it: whether it says Redis is
// unreachable, too slow, or unable to serve.
//
// It counts:
//   - deadlines ([context.DeadlineExceeded], including a limiter's own
//     per-call timeout) and network errors: refused, reset or closed
//     connections, i/o timeouts, a full connection pool;
//   - replies that say the node cannot serve: LOADING, BUSY, MASTERDOWN,
//     CLUSTERDOWN, TRYAGAIN, READONLY, NOREPLICAS, OOM, and "max number of
//     clients reached".
//
// It does not count nil; [context.Canceled] (the caller gave up); other
// Redis error replies, such as a script error or WRONGTYPE, since Redis
// answered; [ratelimit.ErrBadReply]; the errors of calls that never reached
// Redis ([ratelimit.ErrInvalidKey], [ratelimit.ErrInvalidLimit],
// [ratelimit.ErrInvalidN], [ratelimit.ErrClosed], [redis.ErrClosed]).
// Any other error counts.
//
// A deadline cannot tell a slow Redis from a caller whose own deadline was
// too short. Callers that can tell (the caller's context ended before the
// limiter's timeout) should [Breaker.Cancel] instead.
func IsFailure(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, context.Canceled),
		errors.Is(err, ratelimit.ErrBadReply),
		errors.Is(err, ratelimit.ErrInvalidKey),
		errors.Is(err, ratelimit.ErrInvalidLimit),
		errors.Is(err, ratelimit.ErrInvalidN),
		errors.Is(err, ratelimit.ErrClosed),
		errors.Is(err, redis.ErrClosed):
		return false
	case errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		for _, p := range unavailable {
			if redis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return false
	}
	return true
}
