// Package ratelimit is the shared vocabulary of a distributed rate limiter
// for Go services that run on many machines at once.
//
// A client is identified by a string key (an IP address, an API key, a user
// id). A [Limit] says how many requests a key may make per period and how
// large a burst it may take at once. Redis holds the shared state, so every
// instance of a service enforces one limit together.
//
// This package defines only what every implementation shares:
//
//   - [Limit], with constructors [PerSecond], [PerMinute], [PerHour] and [Per];
//   - [Decision], the value every check returns;
//   - [Limiter], the interface every implementation satisfies, and the
//     optional [Refunder], [Settler] and [Inspector];
//   - [FailurePolicy], what a limiter decides while Redis cannot answer;
//   - [Keyspace], which turns client keys into Cluster-safe Redis keys;
//   - [Clock], the seam for time, and [NoBound], the one sentinel every
//     option that bounds a duration takes for "no bound" (zero keeps an
//     option's default; a nil option is skipped);
//   - [Dynamic], a Limiter whose limit per key (a tenant's plan) comes
//     from a [LimitFunc], over limiters of any implementation;
//   - the errors callers branch on with [errors.Is].
//
// The implementations live in subpackages:
//
//   - algorithms: one atomic Redis script per request (token bucket, GCRA,
//     fixed window, sliding window counter, calendar window);
//   - lease: local token leasing, which serves most requests from an
//     in-process counter and leases tokens from Redis in batches.
//
// # Denials are results, not errors
//
// [Limiter.Allow] reports a denial as a [Decision] with Allowed set to false
// and a nil error; an error means the check itself failed (bad input, Redis
// unreachable). The layer that acts on a denial (a strategy of the reject
// package, such as reject.Reject or reject.Wait, or the HTTP middleware)
// returns [ErrRateLimitExceeded] wrapped in an [*ExceededError] that
// carries the decision.
package ratelimit
