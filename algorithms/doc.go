// Package algorithms holds the per-request rate-limiting algorithms: each
// check is one atomic Lua script in Redis, so every instance of a service
// that shares the Redis server enforces one limit together.
//
// # Algorithms
//
// Four [Algorithm] values read a [ratelimit.Limit] of Rate requests per
// Period with a Burst:
//
//   - [TokenBucket]: a bucket of Burst tokens refilled continuously at Rate
//     per Period. Smooth; the state is a token count and a timestamp.
//   - [GCRA]: the generic cell rate algorithm. It admits exactly what the
//     token bucket admits, but keeps one timestamp, the theoretical
//     arrival time, in exact whole-number arithmetic.
//   - [FixedWindow]: at most Burst per window of Period aligned to the Unix
//     epoch. The cheapest and easiest to explain, but a client may spend
//     2 × Burst across a window boundary.
//   - [SlidingWindow]: the sliding window counter, which weights the
//     previous window's count by how much of it still overlaps the last
//     Period. Close to a true sliding log at the cost of a fixed window.
//
// A fifth, [CalendarWindow], is a value with fields rather than one of
// [All]: a quota per calendar day, week or month in a time zone ("1,000 a
// day, Europe/Paris"), whose windows the Limiter computes in Go.
//
// Every script but reset reads the time from the Redis server (TIME), in
// microseconds, so the clocks of the calling machines do not matter; writes
// nothing for a denied request; sets a TTL so that a key disappears as soon
// as its state is the same as a missing key's; and returns four integers
// that [Limiter] turns into a [ratelimit.Decision]. Keys go through KEYS
// only, under one hash tag per client (see [ratelimit.Keyspace]), so the
// scripts run on Redis Cluster.
//
// Each operation of each algorithm is one script, lua/<name>.lua, whose
// header states its KEYS, ARGV and reply ([ScriptName] knows them by that
// name). Redis scripts cannot share code at run time, so the blocks they
// have in common (the exact arithmetic, reading and writing a key's state)
// are fragments in lua/lib, included into each script's text when the
// package is initialized; a script's SHA-1 depends only on those files.
//
// # Limiter
//
// [NewLimiter] wraps an Algorithm and a Redis client into a
// [ratelimit.Limiter] that runs one script per [Limiter.AllowN]. It also
// implements [ratelimit.Refunder]: [Limiter.RefundN] gives back tokens a
// request did not use (see [Refunder]); [ratelimit.Settler]:
// [Limiter.SettleN] settles a request's actual cost against what it
// reserved (see [Charger]); and [ratelimit.Inspector]: [Limiter.Peek] and
// [Limiter.Reset] (see [Inspector]). Each is one script. When Redis cannot
// answer, the failure policy decides ([WithFailurePolicy]), behind a
// circuit breaker ([WithCircuitBreaker]).
//
//	l, err := algorithms.NewLimiter(rdb, ratelimit.PerMinute(100),
//		algorithms.WithAlgorithm(algorithms.SlidingWindow))
//	d, err := l.Allow(ctx, "user:42")
//	if err == nil && !d.Allowed {
//		// reject; retry after d.RetryAfter
//	}
//
// # Leasing primitives
//
// [TakeUpTo], [ChargeTakeUpTo] and [ReturnN] take and return tokens of a
// token bucket in batches, for the lease package.
//
// # Reference models
//
// [TokenBucketModel], [GCRAModel], [FixedWindowModel],
// [SlidingWindowModel] and [CalendarWindowModel] compute, in Go, exactly
// what the scripts compute (checks, refunds, peeks and charges),
// from an explicit state and time. The tests check that each model and its
// script agree on random request sequences; local limiters and fallbacks
// can use them when Redis is out of reach. A model's Decision is the one
// its script's reply makes, Source included: a caller that decides locally
// sets Source to [ratelimit.SourceLocal] or [ratelimit.SourceFallback].
package algorithms
