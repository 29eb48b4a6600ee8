// Package tiers enforces plans: named tiers of several limits that all
// apply to each request, such as
//
//	free: 5/s burst 10, and 1,000/day, and all free clients together 2,000/s
//	pro:  100/s burst 200, and 100,000/day
//
// A [Config] is plain data: [Tier]s of [Limit]s, a static map of client
// keys to tiers, a default tier, and per-client [Override]s. Build it in
// code or load it from a YAML file with [LoadFile] (strictly: every
// mistake is reported with its file, line and field).
//
// A [Limiter] enforces a Config with one [ratelimit.Limiter] per limit,
// made by a [Factory]. Each limit may choose its algorithm and whether to
// lease: in code with [Limit.WithAlgorithm] and [Limit.WithLease], in YAML
// with "algorithm:" and "lease: true". [Redis] is the Factory most
// services want: it gives the limits that ask to lease a leasing limiter
// (lease.New) and the others a per-request one from the algorithms
// package; [Direct] makes only per-request limiters and refuses leasing
// with [ErrLeaseUnsupported].
//
// # All or nothing
//
// A request is admitted only if every limit of its tier admits it, and a
// denied request consumes from none of them: when a later limit denies,
// the limits that admitted earlier get their tokens back through
// [ratelimit.Refunder]. Per-client limits are checked before tier-wide
// ones, so a busy shared key is asked only for requests their own limits
// admit.
//
// [Limiter.Check] names the tier of a request explicitly (say, from an
// authenticated plan) where [Limiter.AllowN] resolves it from the key,
// and returns each limit's decision in a [Result]. For costs known only
// afterwards, [Limiter.Settle] settles the actual cost against what Check
// reserved on every limit of the tier; [Limiter.Inspect] and
// [Limiter.Peek] tell what a key has left, spending nothing; and
// [Limiter.Reset] gives a key its per-client budgets back.
//
// # Scopes and keys
//
// A [PerClient] limit gives each client key its own budget; a [PerTier]
// limit is one budget for the whole tier. Each limit has a Redis namespace
// of its own, "<base prefix><tier>:<limit>:" ([LimitKeyspace]); a
// per-client limit keys its state by the client key within it, a tier-wide
// limit by the tier name. Key names never depend on a limit's numbers, so
// a reload that changes them applies to the usage already counted.
//
// # Reloading
//
// [Limiter.Reload], [Limiter.ReloadFile] and [WatchFile] swap in a new
// config atomically after validating it; an invalid one keeps the old
// config in force and reports why. Checks in flight finish under the
// config they started with, and limiters the new config no longer uses
// are closed after them (or after a grace period).
package tiers
