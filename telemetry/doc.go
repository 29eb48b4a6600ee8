// Package telemetry reports what the rate limiter does as OpenTelemetry
// metrics: how many requests it admits, denies and shadows per tier, how
// fast it decides, how often it calls Redis and how that goes, and how
// accurate leasing is. docs/metrics.md lists every metric with its unit,
// attributes and what to alert on.
//
// The package depends only on the OpenTelemetry API. Until the application
// installs an SDK (see docs/metrics.md), the global meter provider, the
// default, records nothing; instruments made before then start recording
// when it is installed.
//
// # Pieces
//
//   - [ObserveLease] reports a leasing limiter's running totals (its
//     decisions; tokens leased, served, returned, expired; refills,
//     waits, keys...) and its accuracy (tokens held against the accuracy
//     budget). The lease counts its own decisions, for about 2 ns each.
//   - [Wrap] decorates any other [ratelimit.Limiter]: every decision is
//     counted by result, source and tier, and a sample is timed. It costs
//     one atomic add and no allocation per check, plus the call layer it
//     adds. It refuses a leasing limiter, so that no decision counts
//     twice.
//   - [Limiter.RecordShadowed] lets a rejection layer in shadow mode report
//     the denials it admitted anyway.
//   - [Factory] does both for every limiter of a tiers.Limiter: it
//     observes the leasing ones and wraps the others, named by tier and
//     limit.
//   - [NewRedisHook] returns a go-redis hook that counts, times and,
//     optionally, traces the calls of the limiter's Lua scripts.
//
// # Options
//
// Each constructor takes options of its own type, so that an option it
// would not read does not compile: [Option] (WithMeterProvider,
// WithAttributes) for every constructor; [LeaseOption] (WithTier,
// WithLimit) for ObserveLease and Wrap; [FactoryOption]
// (WithSampleEvery) for Factory and Wrap; [HookOption]
// (WithTracerProvider) for NewRedisHook. [WrapOption] is any of the first
// three.
//
// # Use
//
//	lim, err := lease.New(rdb, ratelimit.PerSecond(100), lease.WithKeyspace(ks))
//	...
//	reg, err := telemetry.ObserveLease(lim, telemetry.WithLimit("free", ""))
//	...
//	hook, err := telemetry.NewRedisHook()
//	...
//	rdb.AddHook(hook)
//
//	d, err := lim.Allow(ctx, key) // the lease, called directly
//
//	dl, err := algorithms.NewLimiter(rdb, ratelimit.PerSecond(100))
//	...
//	tl, err := telemetry.Wrap(dl, telemetry.WithLimit("free", ""))
//	...
//	d, err = tl.Allow(ctx, key) // use tl wherever dl was used
//
// For a tiers.Limiter, one call instruments the limiters of every limit:
//
//	plans, err := tiers.New(telemetry.Factory(tiers.Redis(rdb, nil)), cfg)
//
// The tiers.Limiter closes each limiter it no longer uses; closing a
// [Limiter] (or a limiter from Factory) stops its reporting and closes the
// limiter it wraps.
//
// # Decisions of the failure policy
//
// When Redis cannot answer, the failure policy decides. Those decisions
// count once, in ratelimit.decisions with ratelimit.source=fallback, by
// result: allowed (FailOpen, or FailLocal within this instance's share)
// or denied (FailLocal over it, or FailClosed, whose store error is not
// also counted as a failed check).
//
// # Attributes
//
// Attribute keys and values are constants of this package, pinned by its
// tests. No metric carries a client key: keys are unbounded and may
// identify people. Tier and limit names come from configuration and must
// stay few.
package telemetry
